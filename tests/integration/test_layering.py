"""The layering contracts hold, and the check really fails when a contract is broken."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINT, "--no-cache"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def copy_tree(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    for name in ("grants", "bot", "devkit"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target)
    return target


def test_the_real_tree_keeps_its_layers(tmp_path):
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout and "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("grants/service.py", "import bot.messages", "never imports the Slack side"),
        ("grants/guards.py", "import sqlalchemy", "Only the core's adapters"),
        ("grants/catalog.py", "import hvac", "Only the core's adapters"),
        ("bot/listeners/actions.py", "import apscheduler", "Only the core's adapters"),
        ("bot/app.py", "import grants.adapters.sql_store", "Only the wiring builds adapters"),
        ("grants/usecases/granting.py", "import grants.usecases.deciding", "Use cases import one way"),
        ("grants/usecases/deciding.py", "import grants.usecases.requesting", "Use cases import one way"),
        ("grants/usecases/deps.py", "import grants.service", "Use cases import one way"),
        ("bot/cli.py", "import devkit.demo", "The product never imports the dev kit"),
        ("grants/audit.py", "from devkit.standin import SlackStandIn", "The product never imports the dev kit"),
    ],
)
def test_a_forbidden_import_breaks_the_check(tmp_path, module, line, contract):
    repo = copy_tree(tmp_path)
    path = repo / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint(repo)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and contract in result.stdout


def core_modules() -> list[Path]:
    return [p for p in (ROOT / "grants").rglob("*.py") if "adapters" not in p.relative_to(ROOT / "grants").parts]


def test_every_use_case_module_is_in_the_one_way_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["name"].startswith("Use cases import one way")]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    modules = {f"grants.usecases.{p.stem}" for p in (ROOT / "grants" / "usecases").glob("*.py") if p.stem != "__init__"}
    assert modules - named == set(), "a use case outside the layers contract escapes the one-way rule: add it to pyproject.toml"


def test_every_protocol_of_the_core_is_in_the_ports_module():
    stray = []
    for path in core_modules():
        where = str(path.relative_to(ROOT))
        if where == "grants/ports.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and "Protocol" in [ast.unparse(b) for b in node.bases]:
                stray.append(f"{where}: {node.name}")
    assert stray == [], f"ports live in grants/ports.py, not beside their users: {stray}"


# Slack's ID shapes (U…/W… users, S… user groups, C…/G… channels, written as patterns or as `U…` in messages) and
# its command words belong to the Slack side (bot/slack_catalog.py), which checks them at start-up and in `jitbot check`.
_SLACK_SHAPES = re.compile(r"\[UW\]|\[CG\]|\^S\[|\b[UWSCG]…|subcommand", re.I)


def test_the_core_names_no_slack_id_format_nor_subcommand():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in core_modules()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _SLACK_SHAPES.search(line)
    ]
    assert found == [], found
    slack_side = (ROOT / "bot" / "slack_catalog.py").read_text(encoding="utf-8")
    assert len(_SLACK_SHAPES.findall(slack_side)) >= 5, "the pattern finds what it looks for"
