"""Runs the image as the Procfile says, against a dev OpenBao, the Slack stand-in and this host's PostgreSQL: the
release step, then `web` and `worker`, each until its /readyz answers 200; the user they run as, and a clean stop on
SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine

from devkit.harness import free_port
from devkit.openbao import OpenBaoDevServer
from devkit.standin import SlackStandIn
from grants.adapters.kinds import credential_kinds
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import load_catalog

POLICIES = Path(__file__).resolve().parent.parent / "vault_policies"
BOT_TOKEN, SIGNING_SECRET = "xoxb-image-check", "image-check-signing-secret"
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def readyz(port: int, timeout: float = 120) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    answer: tuple[int, dict[str, str]] = (0, {})
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
                return response.status, json.load(response), time.monotonic() - started
        except urllib.error.HTTPError as error:
            answer = (error.code, json.load(error))
        except OSError:
            pass
        time.sleep(0.5)
    return (*answer, time.monotonic() - started)


def main(image: str, runtime: str = "runc") -> int:
    engine = create_engine(f"{SERVER}/test", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP DATABASE IF EXISTS jitbot_image_check")
        connection.exec_driver_sql("CREATE DATABASE jitbot_image_check")
    engine.dispose()
    with OpenBaoDevServer() as bao, SlackStandIn(BOT_TOKEN) as slack:
        root = vault_client(bao.addr, bao.root_token)
        sync(root, POLICIES, load_catalog(POLICIES / "catalog.toml"), credential_kinds(VaultSession(root)))
        token = root.auth.token.create(policies=["jitbot-bot"], no_default_policy=True, ttl="1h")["auth"]["client_token"]
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.url,
            "VAULT_ADDR": bao.addr, "VAULT_TOKEN": token,
            "DATABASE_URL": f"{SERVER}/jitbot_image_check",
        }  # fmt: skip
        run = ["podman", "--runtime", runtime, "run", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024"]
        run += ["--ulimit", "nproc=1024:1024", *[f"--env={k}={v}" for k, v in env.items()]]
        release = subprocess.run([*run, image, "jitbot", "db", "upgrade"], capture_output=True, text=True, timeout=300)
        print(f"release: exit {release.returncode}: {release.stdout.strip()} {release.stderr.strip()[-500:]}")
        outcomes = [release.returncode == 0]
        for process in ("web", "worker"):
            outcomes.append(run_process(run, image, process, free_port()))
        return 0 if all(outcomes) else 1


def run_process(run: list[str], image: str, process: str, port: int) -> bool:
    """One Procfile process in the container until /readyz is 200; its uid; a clean exit on SIGTERM."""
    name = f"jitbot-image-check-{process}"
    command = [] if process == "web" else ["jitbot", "worker", "--port", str(port)]  # web: the image's default CMD
    container = subprocess.Popen(
        [*run, f"--env=PORT={port}", "--name", name, image, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        status, body, after = readyz(port)
        print(f"{process}: /readyz {status} {body} after {after:.1f}s")
        user = subprocess.run(["podman", "exec", name, "id", "-u"], capture_output=True, text=True)
        print(f"{process}: runs as uid {user.stdout.strip()}")
    finally:
        subprocess.run(["podman", "stop", "--time", "10", name], capture_output=True, timeout=60)
        code = container.wait(timeout=60)
    print(f"{process}: exit {code} on SIGTERM")
    ok = status == 200 and user.stdout.strip() not in ("", "0") and code == 0
    if not ok and container.stdout is not None:
        print(container.stdout.read().decode()[-3000:])
    return ok


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
