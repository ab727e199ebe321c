"""The built package runs the product: the wheel installed in a fresh venv outside the repository (its declared
dependencies, at constraints.txt's versions) runs `jitbot --version`, `jitbot check` and `jitbot demo`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@dataclass
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    home: Path  # an empty working directory: nothing of the checkout is reachable from it

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JITBOT_", "VAULT_", "SLACK_"))}
        env["PATH"] = f"{self.venv / 'bin'}:/usr/bin:/bin"
        return subprocess.run(args, cwd=self.home, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    dist, base = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("installed")
    # sdist first, then the wheel built from the unpacked sdist (build's default): a file the sdist lacks breaks the wheel.
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,), (sdist,) = dist.glob("*.whl"), dist.glob("*.tar.gz")
    venv, home = base / "venv", base / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", f"{wheel}[demo]", "-c", str(ROOT / "constraints.txt")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    yield Installed(wheel, sdist, venv, home)


def test_the_wheel_and_the_sdist_hold_what_the_product_needs(installed: Installed) -> None:
    wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    for needed in (
        "vault_policies/catalog.toml",
        "vault_policies/jitbot-bot.hcl",
        "bot/cli.py",
        "devkit/playground/static/app.js",
        "devkit/stepup.py",  # the demo's step-up sign-ins
        "devkit/jira.py",  # the demo's Jira stand-in
        "bot/templates/stepup.html",  # the step-up page the demo signs in on
    ):
        assert needed in wheel, needed
    assert any(name.startswith("grants/adapters/migrations/versions/0001") for name in wheel)
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in wheel)
    sdist = {name.split("/", 1)[1] for name in tarfile.open(installed.sdist).getnames() if "/" in name}
    for needed in ("tests/conftest.py", "tests/e2e/test_package.py", "constraints.txt", "LICENSE", "SECURITY.md", ".ci/run"):
        assert needed in sdist, needed


def test_the_installed_package_is_the_one_that_runs(installed: Installed) -> None:
    where = installed.run("python", "-c", "import bot, grants, devkit; print(bot.__file__, grants.__file__, devkit.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(installed.venv)) for path in where.stdout.split()), where.stdout
    version = installed.run("jitbot", "--version")
    assert version.returncode == 0 and version.stdout.strip() == "jitbot 0.1.0", version.stdout + version.stderr
    assert installed.run("python", "-m", "pip", "check").returncode == 0


def test_check_validates_the_shipped_example_from_the_installed_package(installed: Installed) -> None:
    (shipped,) = installed.venv.glob("lib/python3*/site-packages/vault_policies/catalog.toml")
    result = installed.run("env", f"JITBOT_CATALOG={shipped}", "jitbot", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{shipped}: catalog and policies are valid." in result.stdout


def test_the_demo_runs_from_the_installed_package(installed: Installed) -> None:
    demo = installed.run("jitbot", "demo", timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "policy jitbot-bot: created" in demo.stdout and "Step 1 ·" in demo.stdout
    assert "Demo complete." in demo.stdout and "Traceback" not in demo.stderr
    # The steps that need more than the product: the dev kit's OpenBao IdP (TOTP sign-ins) and its Jira stand-in.
    assert "approval_added (signed in with totp), actor Ari" in demo.stdout
    assert "approved (signed in with totp), actor Ben" in demo.stdout
    assert "revoked (ticket_closed), actor system" in demo.stdout
