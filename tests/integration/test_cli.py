"""The command line: settings errors, audit export filters and streaming, verify on a tampered trail, vault sync."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.settings import SettingsError, load_settings
from devkit.openbao import OpenBaoDevServer
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine
from grants.domain import AuditEvent
from tests.conftest import ROOT

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def jitbot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


@pytest.fixture
def trail(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    store = SqlStore(engine)
    for i in range(50):
        store.record(
            AuditEvent(
                event="requested",
                at=T0 + timedelta(hours=i),
                actor=f"U0USER{i % 3:03d}",
                request_id=f"JIT-{i}",
                scope="payments-read" if i % 2 else "db-admin-staging",
                subject=f"U0USER{i % 3:03d}",
                detail={"reason": f'INC-{i}, with "quotes"\nand a newline'},
            )
        )
    yield db_url, engine
    engine.dispose()


def test_export_filters_and_formats(trail):
    db_url, _ = trail
    result = jitbot(
        "audit",
        "export",
        "--format",
        "csv",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-02T12:00Z",
        "--scope",
        "payments-read",
        DATABASE_URL=db_url,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["request_id"] for r in rows] == ["JIT-15", "JIT-17", "JIT-19", "JIT-21", "JIT-23", "JIT-25"][: len(rows)] and rows
    assert all(r["scope"] == "payments-read" for r in rows)
    assert json.loads(rows[0]["detail"])["reason"].endswith('"quotes"\nand a newline')
    result = jitbot("audit", "export", "--format", "jsonl", "--user", "U0USER001", DATABASE_URL=db_url)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(e["actor"] == "U0USER001" for e in lines)
    assert "exported 17 events" in result.stderr


def test_exports_are_audited_and_verify_passes(trail):
    db_url, engine = trail
    jitbot("audit", "export", DATABASE_URL=db_url)
    with engine.connect() as connection:
        last = connection.execute(text("SELECT event, actor, detail FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
    assert last[0] == "exported" and last[1] == "system" and '"via":"cli"' in last[2]
    result = jitbot("audit", "verify", DATABASE_URL=db_url)
    assert result.returncode == 0 and "51 events verified" in result.stdout


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ('UPDATE audit_events SET detail = \'{"reason":"nothing to see"}\' WHERE seq = 7', "hash does not match"),
        ("DELETE FROM audit_events WHERE seq = 7", "sequence gap"),
        ("UPDATE audit_events SET actor = 'U0MALLORY' WHERE seq = 7", "hash does not match"),
    ],
)
def test_a_tampered_row_breaks_verify_naming_it(trail, sql, why):
    db_url, engine = trail
    with engine.begin() as connection:
        connection.execute(text(sql))
    result = jitbot("audit", "verify", DATABASE_URL=db_url)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout and why in result.stdout
    assert "seq 7" in result.stdout or "seq 8" in result.stdout


def test_settings_errors_name_the_variable_without_echoing_it(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "not-a-token-supersecret")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "SLACK_BOT_TOKEN" in str(error.value) and "xoxb-" in str(error.value)
    assert "supersecret" not in str(error.value)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    settings = load_settings(slack_signing_secret=None)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET is missing"):
        settings.require_slack()
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError, match=r"DATABASE_URL is malformed.*postgresql"):
        load_settings()


def test_serve_without_settings_stops_with_one_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAULT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is missing: set it to" in result.stderr and "Traceback" not in result.stderr


def test_vault_sync_cli_is_idempotent():
    with OpenBaoDevServer() as fresh:  # its own: the session's server may have been synced by an earlier test
        env = {"VAULT_ADDR": fresh.addr, "VAULT_TOKEN": fresh.root_token}
        first = jitbot("vault", "sync", **env)
        assert "policy jitbot-bot: created" in first.stdout, first.stderr
        second = jitbot("vault", "sync", **env)
    assert "unchanged" in second.stdout
    assert "created" not in second.stdout and "updated" not in second.stdout


def test_db_upgrade_says_what_it_did(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    newest = max(p.name[:4] for p in (ROOT / "grants/adapters/migrations/versions").glob("0*.py"))
    result = jitbot("db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 0 and result.stdout.strip() == f"database schema created (revision {newest})", result.stdout
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == newest
    engine.dispose()
    again = jitbot("db", "upgrade", DATABASE_URL=url)
    assert (
        again.returncode == 0 and again.stdout.strip() == f"database schema already up to date (revision {newest}); nothing to do"
    )


def test_db_upgrade_from_an_older_revision_names_both(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    newest = max(p.name[:4] for p in (ROOT / "grants/adapters/migrations/versions").glob("0*.py"))
    result = jitbot("db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 0 and result.stdout.strip() == f"database schema migrated from revision 0001 to {newest}"


def test_vault_sync_without_a_token_asks_for_an_admin_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "vault", "sync"],
        cwd=ROOT,
        env={**env, "VAULT_ADDR": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "ADMIN token" in result.stderr and "Traceback" not in result.stderr
    assert "holding the jitbot-bot policy" not in result.stderr


def test_vault_sync_fails_naming_the_ssh_role_it_could_not_write():
    # The shipped catalog has an ssh scope; a fresh OpenBao has no SSH mount, so its role cannot be written.
    with OpenBaoDevServer() as server:
        result = jitbot("vault", "sync", VAULT_ADDR=server.addr, VAULT_TOKEN=server.root_token)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert any("scope web-ssh" in line and "ssh role" in line for line in failed), result.stdout
    assert "could not be set up" in result.stderr and "Traceback" not in result.stderr


def test_deleting_the_newest_events_breaks_verify(trail):
    db_url, engine = trail
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > 45"))
    result = jitbot("audit", "verify", DATABASE_URL=db_url)
    assert result.returncode == 1 and "the newest were deleted" in result.stdout
