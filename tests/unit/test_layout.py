"""The tests' layout holds: the use-case tests mirror `grants/usecases/`, and no test builds a bot by hand."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def test_each_use_case_test_module_is_named_after_a_use_case_module() -> None:
    modules = {p.stem for p in (ROOT / "grants" / "usecases").glob("*.py")} - {"__init__"}
    tests = {p.stem.removeprefix("test_") for p in (TESTS / "unit" / "usecases").glob("test_*.py")}
    assert tests and tests <= modules, f"no use-case module for {sorted(tests - modules)}"


def test_only_the_factory_builds_a_bot_in_a_test() -> None:
    """`local_bot` (tests/conftest.py) is the one place a test builds `LocalBot` or its `Settings`."""
    built = re.compile(r"\bLocalBot\(|\bSettings\(")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in TESTS.rglob("*.py")
        if path.name != "conftest.py" or path.parent != TESTS
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if built.search(line)
    ]
    assert found == [], f"build the bot with tests.conftest.local_bot instead: {found}"
