"""constraints.txt, the deploys' lock: written by pip-compile from pyproject.toml, and checked to still match it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
STAMP = "# pyproject-dependencies-sha256: "


def stamp(pyproject: Path) -> str:
    """A hash of what the lock is resolved from: requires-python, the dependencies and the `demo` extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    inputs = [project["requires-python"], sorted(project["dependencies"]), sorted(project["optional-dependencies"]["demo"])]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def problems(pyproject: Path = ROOT / "pyproject.toml", lock: Path = LOCK) -> list[str]:
    """Why `lock` does not match `pyproject` (empty when it does)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a venv with pip alone (CI's first step): pip's own copy
        from pip._vendor.packaging.requirements import Requirement

    if not lock.is_file():
        return [f"{lock.name} is missing: run deploy/lock.sh"]
    text = lock.read_text(encoding="utf-8")
    if f"{STAMP}{stamp(pyproject)}" not in text:
        return [f"{lock.name} is stale: pyproject.toml's dependencies changed since it was written; run deploy/lock.sh"]
    pins = {m[0].lower().replace("_", "-"): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", text, re.M)}
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["demo"]]:
        requirement = Requirement(line)
        name = requirement.name.lower().replace("_", "-")
        if name not in pins:
            found.append(f"{lock.name} pins no version of {requirement.name}: run deploy/lock.sh")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            found.append(f"{lock.name} pins {name}=={pins[name]}, outside pyproject.toml's `{line}`: run deploy/lock.sh")
    return found


def write() -> None:
    subprocess.run(
        [
            sys.executable, "-m", "piptools", "compile", "--quiet", "--extra", "demo", "--strip-extras",
            "--no-emit-index-url", "--no-emit-trusted-host", "--no-emit-find-links", "--output-file", LOCK.name,
            "pyproject.toml",
        ],
        check=True,
        cwd=ROOT,
    )  # fmt: skip
    text = LOCK.read_text(encoding="utf-8")
    LOCK.write_text(
        f"# The versions deploys install: pip install 'jitbot[demo]' -c constraints.txt (written by deploy/lock.sh;\n"
        f"# CI fails when pyproject.toml's dependencies change without it).\n{STAMP}{stamp(ROOT / 'pyproject.toml')}\n{text}",
        encoding="utf-8",
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        found = problems()
        for problem in found:
            print(problem, file=sys.stderr)
        sys.exit(1 if found else 0)
    write()
