"""Shared fixtures: a real OpenBao, fresh SQLite/PostgreSQL databases, the Slack stand-in and a real bot."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from sqlalchemy import text

from devkit.harness import LocalBot
from devkit.openbao import OpenBaoDevServer
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn, message_text
from tests.databases import fresh_database
from tests.pki_fixtures import mtls_server, pki_ca  # noqa: F401
from tests.ssh_fixtures import ssh_ca, sshd  # noqa: F401
from tests.vault_fixtures import bot_vault_token, openbao, vault_root, vault_synced  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-test-0000-jitbot"
SIGNING_SECRET = "test-signing-secret-8f14e45fceea167a"
USERS = {
    "U0DEV0001": "dana",
    "U0DEV0002": "devon",
    "U0DEV0003": "dee",
    "U0APPR001": "ari",
    "U0APPR002": "ben",
    "U0APPR003": "cleo",
    "U0APPR004": "dmitri",
    "U0AUDIT01": "audrey",
    "U0ADMIN01": "adam",
    "U0OUTSIDE": "olga",
    "U0SEC0001": "sam",
    "U0SEC0002": "sue",
    "U0APPR005": "pat",
    "U0APPR006": "pia",
}
REQUESTER, APPROVER, APPROVER_2, APPROVER_3, AUDITOR, OUTSIDER = (
    "U0DEV0001",
    "U0APPR001",
    "U0APPR002",
    "U0APPR003",
    "U0AUDIT01",
    "U0OUTSIDE",
)
WRAP_TOKEN = re.compile(r"unwrap ([A-Za-z0-9._-]{20,})")


def make_catalog_dir(tmp_path: Path, edits: dict[str, str] | None = None) -> Path:
    """The shipped catalog and policies, with the staging scopes allowed down to 2 s for expiry tests,
    and any other `edits` (text replacements) applied."""
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "vault_policies", target)
    catalog = target / "catalog.toml"
    text_ = catalog.read_text().replace('min_duration = "10s"', 'min_duration = "2s"')
    for old, new in (edits or {}).items():
        assert old in text_, f"catalog edit target not found: {old}"
        text_ = text_.replace(old, new)
    catalog.write_text(text_)
    return target


@pytest.fixture(autouse=True)
def fresh_audit_anchor(request: pytest.FixtureRequest) -> None:
    """Each test that uses the session's OpenBao is a deployment of its own, with its own database: it starts with
    no audit anchor, as an operator's `bao kv metadata delete` would leave it. Otherwise the bot would rightly
    refuse to anchor a fresh trail over the anchor of another test's database (and alert and audit that)."""
    if "openbao" in request.fixturenames:
        root: hvac.Client = request.getfixturevalue("vault_root")
        try:
            root.secrets.kv.v2.delete_metadata_and_all_versions(path="jitbot/audit-anchor", mount_point="secret")
        except hvac.exceptions.InvalidPath:
            pass


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    """Text replacements for the test catalog; a test module overrides this fixture to tune it."""
    return {}


class SettlingClient(SignedSlackClient):
    """The signed client that, after a slash command or a form submission, waits until the inbox made the new request
    it may have recorded (after the ack): a person cannot click the receipt's buttons that fast, a test can."""

    engine: Any = None

    def _settled(self) -> None:
        deadline = time.monotonic() + 15
        query = text("SELECT count(*) FROM inbox WHERE kind = 'request' AND done_at IS NULL")
        while self.engine is not None and time.monotonic() < deadline:
            with self.engine.connect() as connection:
                if not connection.execute(query).scalar():
                    return
            time.sleep(0.02)

    def slash(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        answer = super().slash(*args, **kwargs)
        self._settled()
        return answer

    def submit_view(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        answer = super().submit_view(*args, **kwargs)
        self._settled()
        return answer


@dataclass
class World:
    bot: LocalBot
    slack: SlackStandIn
    client: SignedSlackClient
    vault: hvac.Client
    vault_addr: str
    db_url: str

    def rows(self, sql: str) -> list[Any]:
        assert self.bot.runtime is not None
        with self.bot.runtime.store.engine.connect() as connection:
            return list(connection.execute(text(sql)))

    def audit_names(self, request_id: str) -> list[str]:
        return [r[0] for r in self.rows(f"SELECT event FROM audit_events WHERE request_id = '{request_id}' ORDER BY seq")]

    def wait_audit(self, request_id: str, event: str, timeout: float = 15) -> None:
        import time

        deadline = time.monotonic() + timeout
        while event not in self.audit_names(request_id):
            assert time.monotonic() < deadline, f"no `{event}` for {request_id}: {self.audit_names(request_id)}"
            time.sleep(0.05)

    def wrapping_token(self, user: str, request_id: str, timeout: float = 10) -> str:
        message = self.slack.wait_for(
            lambda: next(
                (m for m in self.slack.dm_messages(user) if request_id in message_text(m) and "unwrap" in message_text(m)), None
            ),
            timeout=timeout,
        )
        match = WRAP_TOKEN.search(message_text(message))
        assert match, message_text(message)
        return match.group(1)

    def unwrap(self, wrapping_token: str) -> str:
        response = hvac.Client(url=self.vault_addr, token=wrapping_token).sys.unwrap()
        return str(response["auth"]["client_token"])


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def world(
    tmp_path,
    db_url,
    openbao: OpenBaoDevServer,  # noqa: F811 - the fixtures imported above
    vault_root,  # noqa: F811
    bot_vault_token,  # noqa: F811
    catalog_edits,
) -> Iterator[World]:
    policies = make_catalog_dir(tmp_path, catalog_edits)
    with SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        bot = LocalBot(
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.url,
            vault_addr=openbao.addr,
            vault_token=bot_vault_token,
            database_url=db_url,
            jitbot_catalog=policies / "catalog.toml",
        )
        with bot:
            client = SettlingClient(bot.url, SIGNING_SECRET, standin=slack)
            client.engine = bot.runtime.store.engine if bot.runtime is not None else None
            yield World(bot, slack, client, vault_root, openbao.addr, db_url)
