"""The documentation names real files: every path in docs/architecture.md exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# A path with at least one folder (`grants/usecases/deps.py`), or a bare file name in backticks (`pyproject.toml`).
# A placeholder such as `grants/adapters/kinds/<kind>_kind.py` is not a path and is skipped by the look-behind.
_PATH = re.compile(r"(?<![\w/<>.-])((?:[\w.-]+/)+[\w.-]+\.(?:py|toml|hcl|md|yaml|cfg))\b")
_BARE = re.compile(r"`([\w.-]+\.(?:py|toml|hcl|md|yaml|cfg))`")
_EXAMPLES = {"foo_kind.py"}  # the how-to's made-up kind


def mentioned_paths(text: str) -> set[str]:
    return {*_PATH.findall(text), *(name for name in _BARE.findall(text) if name not in _EXAMPLES)}


def test_every_file_named_in_the_architecture_doc_exists():
    paths = mentioned_paths(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(paths) > 40, "the doc names the files it maps"
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def test_the_three_files_of_a_new_credential_kind_are_named():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for path in ("grants/catalog.py", "grants/adapters/kinds/__init__.py", "grants/credentials.py"):
        assert path in text
    assert "credential_kinds" in (ROOT / "grants/adapters/kinds/__init__.py").read_text(encoding="utf-8")
    assert "credential_kinds" in text
    for capability in ("needs_public_key", "ends_by_itself", "revoke_caveat", "services"):
        assert f"`{capability}`" in text
        assert capability in (ROOT / "grants/catalog.py").read_text(encoding="utf-8")
    assert "tests/unit/test_kind_seam.py" in text


def test_the_path_finder_sees_paths_and_skips_placeholders():
    found = mentioned_paths("see `grants/x.py`, bot/y/z.py and `pyproject.toml`; not `kinds/<kind>_kind.py` nor `foo_kind.py`")
    assert found == {"grants/x.py", "bot/y/z.py", "pyproject.toml"}
