"""The documentation names real things: every file, link, command, option, subcommand and variable the pages name."""

from __future__ import annotations

import argparse
import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import _parser as bench_parser
from bench.soak import _parser as soak_parser
from bot import cli, slack_catalog
from bot.slack_catalog import SUBCOMMANDS
from grants.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PAGES = sorted(ROOT.glob("docs/*.md"))
DOCS = [README, *PAGES, ROOT / "bench" / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "SECURITY.md"]

# A path with at least one folder (`grants/usecases/deps.py`), or a bare file name in backticks (`pyproject.toml`).
# A placeholder such as `grants/adapters/kinds/<kind>_kind.py` is not a path and is skipped by the look-behind.
_PATH = re.compile(r"(?<![\w/<>.-])((?:[\w.-]+/)+[\w.-]+\.(?:py|toml|hcl|md|yaml|cfg))\b")
_BARE = re.compile(r"`([\w.-]+\.(?:py|toml|hcl|md|yaml|cfg))`")
_EXAMPLES = {"foo_kind.py"}  # the how-to's made-up kind
_FOLDER = re.compile(r"`((?:[\w.-]+/)+)`")  # `devkit/standin/`
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.S)
_ENV = re.compile(r"\b((?:JITBOT|SLACK|VAULT|METRICS)_[A-Z0-9_]+)\b")


def mentioned_paths(text: str) -> set[str]:
    return {*_PATH.findall(text), *(name for name in _BARE.findall(text) if name not in _EXAMPLES)}


def code_spans(text: str) -> list[str]:
    """Every inline code span and every line of every fenced block."""
    spans: list[str] = []
    for block, inline in _CODE.findall(text):
        spans += block.splitlines() if block else [inline]
    return spans


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {prefix: parser}
    for name, child in subs[0].choices.items():
        found |= leaves(child, (*prefix, name))
    return found


def spellings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_page_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    paths = mentioned_paths(text)
    missing = sorted(p for p in paths if not (ROOT / p).is_file() and not (doc.parent / p).is_file())
    missing += sorted(f for f in _FOLDER.findall(text) if not (ROOT / f).is_dir() and not (doc.parent / f).is_dir())
    assert missing == [], f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_page_leads_somewhere(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: are not the repository's
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            broken.append(target)
    assert broken == [], f"{doc.relative_to(ROOT)} links to what does not exist: {broken}"


def test_the_readme_links_every_page_and_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 120, "the README is the first-run page; the manual lives in docs/"
    for page in [*PAGES, ROOT / "bench" / "README.md"]:
        assert f"]({page.relative_to(ROOT)})" in text, f"README.md does not link {page.relative_to(ROOT)}"
    demo = "python3.11 -m venv .venv && .venv/bin/pip install -e '.[demo]' && .venv/bin/jitbot demo"
    assert demo in text and "\nbash .ci/run\n" in text
    assert (ROOT / ".ci" / "run").is_file()
    assert "demo" in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    if (ROOT / "docs" / "playground.png").is_file():
        assert "](docs/playground.png)" in text, "the playground's picture exists: show it in the README"


CLI = leaves(cli._parser())
BENCH = bench_parser()
SOAK = soak_parser()  # `python -m bench soak` has options of its own


def wrong_commands(text: str) -> list[str]:
    """Each `jitbot …` or `python -m bench …` in code that names a command or option the parser lacks."""
    wrong = []
    for span in code_spans(text):
        for command in re.findall(r"(?:^|(?<=[\s(/]))jitbot ([^`|;&)]*)", span):
            words = tuple(re.match(r"(?:[a-z][a-z-]*(?: |$))*", command)[0].split())  # type: ignore[index]
            if words and (words[0],) not in CLI:
                wrong.append(f"jitbot {command.strip()}: no such command")
            while words not in CLI:
                words = words[:-1]  # `jitbot vault sync --x` or `jitbot check the catalog`: the longest known command
            if unknown := set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", command)) - spellings(CLI[words]):
                wrong.append(f"jitbot {command.strip()}: {sorted(unknown)}")
        bench = SOAK if "-m bench soak" in span else BENCH
        if "-m bench" in span and (unknown := set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", span)) - spellings(bench)):
            wrong.append(f"{span}: {sorted(unknown)}")
    return wrong


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_a_page_names_exists_with_its_options(doc: Path) -> None:
    wrong = wrong_commands(doc.read_text(encoding="utf-8"))
    assert wrong == [], f"{doc.relative_to(ROOT)} names commands or options the parsers lack: {wrong}"


SLACKS_OWN = {"failed"}  # Slack's error text quoting the command: `/elevate failed with the error …`
SCOPES = set(tomllib.loads((ROOT / "vault_policies" / "catalog.toml").read_text(encoding="utf-8"))["scopes"])


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_slash_subcommand_a_page_names_exists(doc: Path) -> None:
    words = {w for span in code_spans(doc.read_text(encoding="utf-8")) for w in re.findall(r"/elevate ([a-z][a-z0-9-]*)", span)}
    assert words - SUBCOMMANDS - SCOPES - SLACKS_OWN == set(), (
        f"{doc.relative_to(ROOT)} names /elevate words that are neither a subcommand nor a scope"
    )


SOURCES = "\n".join(
    p.read_text(encoding="utf-8") for d in ("bot", "grants", "devkit", "bench", "tests") for p in (ROOT / d).rglob("*.py")
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_environment_variable_a_page_names_is_read_by_the_code(doc: Path) -> None:
    names = set(_ENV.findall(doc.read_text(encoding="utf-8")))
    unread = sorted(name for name in names if name.lower() not in SOURCES.lower())  # settings fields are lower case
    assert unread == [], f"{doc.relative_to(ROOT)} names environment variables no code reads: {unread}"


def test_every_file_named_in_the_architecture_doc_exists() -> None:
    assert len(mentioned_paths(ARCHITECTURE.read_text(encoding="utf-8"))) > 40, "the doc names the files it maps"


def test_the_kind_recipe_names_every_file_a_kind_touches_and_each_use_case_module() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    recipe = text[text.index("### How to add a credential kind") :]
    recipe = recipe[: recipe.index("\n## ")]
    # Every kind; and one built with settings of its own (the ssh kind's JITBOT_SSH_KRL, its table): wiring and settings.
    kind_files = ("grants/catalog_kinds.py", "grants/adapters/kinds/__init__.py", "vault_policies/jitbot-bot.hcl")
    for path in (*kind_files, "grants/catalog.py", "bot/wiring.py"):
        assert path in recipe, path
    assert "bot/settings.py" in recipe and "jitbot_ssh_krl" in (ROOT / "bot/settings.py").read_text(encoding="utf-8")
    assert "credential_kinds" in (ROOT / "bot/wiring.py").read_text(encoding="utf-8")
    assert "credential_kinds" in (ROOT / "grants/adapters/kinds/__init__.py").read_text(encoding="utf-8")
    for capability in ("needs_public_key", "ends_by_itself", "revoke_caveat", "services"):
        assert f"`{capability}`" in recipe
        assert capability in (ROOT / "grants/catalog_scopes.py").read_text(encoding="utf-8")  # `ScopeBase`'s default
    assert "tests/unit/test_kind_seam.py" in recipe
    modules = sorted(f"grants/usecases/{p.name}" for p in (ROOT / "grants" / "usecases").glob("*.py") if p.stem != "__init__")
    assert [m for m in modules if m not in text] == [], "docs/architecture.md lists every use-case module"


def test_the_checkers_see_what_they_check_and_skip_placeholders() -> None:
    found = mentioned_paths("see `grants/x.py`, bot/y/z.py and `pyproject.toml`; not `kinds/<kind>_kind.py` nor `foo_kind.py`")
    assert found == {"grants/x.py", "bot/y/z.py", "pyproject.toml"}
    assert slug("Metrics (`GET /metrics`, Prometheus)") == "metrics-get-metrics-prometheus"
    assert code_spans("a `jitbot check` b\n```sh\njitbot serve --nope\n```\n") == ["jitbot check", "jitbot serve --nope"]
    assert wrong_commands("`jitbot serve --port 1` and\n```\n.venv/bin/jitbot vault sync\n```") == []
    assert len(wrong_commands("`jitbot serve --nope`, `jitbot db upgrade -x`, `python -m bench --fast`")) == 3
    assert wrong_commands("`python -m bench soak --rate 1 --quick`") and not wrong_commands("`python -m bench soak --rate 1`")
    assert len(wrong_commands("`jitbot frobnicate --port 1`")) == 2


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_the_catalog_pages_examples_are_valid_catalogs() -> None:
    """The reference block is a whole valid catalog (the core's and Slack's checks); each workflow snippet, put into
    it, is well-formed: no key the models lack, no malformed value. (A snippet shows keys, not a whole policy: the
    step-up one's `approval = "vault"` wants requesters apart from approvers, which no example scope has.)"""
    text = (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    *snippets, reference = [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", text, re.S)]
    slack_catalog.parse_catalog(reference)
    base = reference["scopes"]["payments-read"]
    for snippet in snippets:
        scopes = {name: _merged(base, scope) for name, scope in snippet["scopes"].items()}
        for scope in scopes.values():
            if "approval_steps" in scope:  # instead of approvers, as the page says
                scope.pop("approvers", None), scope.pop("approvals_required", None)
        data = _merged(_merged(reference, {"scopes": scopes}), {k: v for k, v in snippet.items() if k != "scopes"})
        Catalog.model_validate(data)  # pydantic: unknown keys and malformed values raise


def test_what_the_product_tells_people_to_read_exists() -> None:
    """A message or docstring that sends someone to the docs names a page that exists (and, quoted after it, one of
    its headings); the README is the first-run page now, so nothing sends anyone there for the manual."""
    wrong = []
    for folder in ("bot", "grants", "devkit"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if "README" in node.value:
                    wrong.append(f"{where}: names the README")
                for page, heading in re.findall(r"(docs/[\w-]+\.md)(?:, “([^”]+)”)?", node.value):
                    if not (ROOT / page).is_file() or (heading and slug(heading) not in anchors(ROOT / page)):
                        wrong.append(f"{where}: {page} {heading}")
    assert wrong == [], wrong


def test_every_setting_the_bot_reads_is_in_the_install_pages_table() -> None:
    from bot.settings import Settings

    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    first_cells = re.findall(r"^\s*\| ([^|]+) \|", text, re.M)
    rows = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in rows)
    assert missing == [], f"docs/install.md's environment table leaves out {missing}"
