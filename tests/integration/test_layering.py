"""The layering contracts hold, and the check really fails when a contract is broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
