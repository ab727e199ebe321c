"""constraints.txt matches pyproject.toml, and the check says so when it does not (deploy/lock.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lock", ROOT / "deploy" / "lock.py")
assert _spec is not None and _spec.loader is not None
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)


def test_the_shipped_lock_matches_pyproject():
    assert lock.problems() == []


def test_a_new_dependency_without_a_new_lock_is_stale(tmp_path):
    pyproject, constraints = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    shutil.copy(ROOT / "constraints.txt", constraints)
    pyproject.write_text(
        (ROOT / "pyproject.toml").read_text().replace("dependencies = [\n", 'dependencies = [\n  "left-pad>=1",\n', 1)
    )
    assert lock.problems(pyproject, constraints) == [
        "constraints.txt is stale: pyproject.toml's dependencies changed since it was written; run deploy/lock.sh"
    ]
    # A hand-edited stamp does not hide it: the package itself has no pin.
    text = constraints.read_text()
    old = text.split(lock.STAMP, 1)[1].split("\n", 1)[0]
    constraints.write_text(text.replace(old, lock.stamp(pyproject)))
    assert lock.problems(pyproject, constraints) == ["constraints.txt pins no version of left-pad: run deploy/lock.sh"]


def test_a_pin_outside_the_declared_range_is_named(tmp_path):
    pyproject, constraints = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    shutil.copy(ROOT / "pyproject.toml", pyproject)
    text = (ROOT / "constraints.txt").read_text()
    pinned = next(line for line in text.splitlines() if line.startswith("waitress=="))
    constraints.write_text(text.replace(pinned, "waitress==2.1.0"))
    assert lock.problems(pyproject, constraints) == [
        "constraints.txt pins waitress==2.1.0, outside pyproject.toml's `waitress>=3.0,<4`: run deploy/lock.sh"
    ]
