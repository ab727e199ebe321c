"""The image a platform team runs, built and run here: deploy/image.sh makes the wheel and builds Containerfile with
buildah on a Debian base bootstrapped with mmdebstrap (no registry is reachable), then runs the Procfile's processes
in it: the release step, `web` and `worker` each ready on /readyz, not root, a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_the_image_builds_from_the_wheel_and_runs_the_procfile_as_a_platform_would() -> None:
    for tool in ("buildah", "podman", "runc", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: `.ci/run` installs it (apt-get install buildah podman runc mmdebstrap)"
    tag = f"localhost/jitbot:test-{os.getpid()}"
    env = {**os.environ, "BASE": "local", "TAG": tag}
    build = subprocess.run(["deploy/image.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        check = subprocess.run(["deploy/image.sh", "--check", tag], cwd=ROOT, capture_output=True, text=True, timeout=300)
        out = check.stdout + check.stderr
        assert check.returncode == 0, out[-4000:]
        for process in ("web", "worker"):
            assert f"{process}: /readyz 200" in out and f"{process}: runs as uid 10001" in out, out[-4000:]
            assert f"{process}: exit 0 on SIGTERM" in out, out[-4000:]
        assert "release: exit 0" in out
        inspect = subprocess.run(["podman", "image", "inspect", tag], capture_output=True, text=True, check=True)
        image = json.loads(inspect.stdout)[0]
        assert image["Config"]["User"] == "10001:10001"
        assert not [
            e
            for e in image["Config"].get("Env", [])
            if e.split("=")[0] in ("VAULT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
        ]
        size_mb = image["Size"] / 1e6
        assert size_mb < 450, f"the image grew to {size_mb:.0f} MB"
        print(f"\nimage {tag}: {size_mb:.0f} MB; {out.count('/readyz 200')} processes ready")
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, timeout=120)
