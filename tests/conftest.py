"""Shared fixtures: a real OpenBao, fresh SQLite/PostgreSQL databases, the Slack stand-in and a real bot."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from devkit.harness import LocalBot
from devkit.openbao import OpenBaoDevServer
from devkit.processes import ServeProcess
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
    """The signed client of a test's bot (`LocalBot`, or a `ServeProcess` through its DATABASE_URL). A new request is
    made from an inbox row after the ack, so after a slash command or a form submission it waits until the inbox has
    made every new request it recorded: a person cannot click the receipt's buttons that fast, a test can. A request
    still not made at the deadline fails the test, naming the rows; a test that leaves one unmade on purpose (its
    database or Vault is down, its process killed after the ack) says so with `settle=False`."""

    def __init__(self, bot: LocalBot | ServeProcess, standin: SlackStandIn, *, timeout: float = 15, **options: Any) -> None:
        super().__init__(bot.url, SIGNING_SECRET, standin=standin, **options)
        self.bot, self.settle_timeout = bot, timeout

    @contextmanager
    def _database(self) -> Iterator[Engine]:
        if isinstance(self.bot, LocalBot):
            assert self.bot.runtime is not None, "the bot is stopped: nothing would settle the inbox"
            yield self.bot.runtime.store.engine  # the running runtime's: a restarted bot has a new one
            return
        engine = create_engine(self.bot.env["DATABASE_URL"], poolclass=NullPool)
        try:
            yield engine
        finally:
            engine.dispose()

    def settle(self) -> None:
        """Wait until no new request waits in the inbox; AssertionError naming what is left at the deadline."""
        deadline = time.monotonic() + self.settle_timeout
        with self._database() as engine:
            while True:
                with engine.connect() as connection:
                    left = list(connection.execute(UNSETTLED))
                if not left:
                    return
                if time.monotonic() >= deadline:
                    rows = "; ".join(f"inbox row {r.id}: {r.attempts} attempts, claimed by {r.claimed_by}" for r in left)
                    raise AssertionError(
                        f"the inbox never settled: {len(left)} new request(s) still not made {self.settle_timeout:g} s "
                        f"after the slash command or form submission ({rows}); pass settle=False where that is the point"
                    )
                time.sleep(0.02)

    def slash(self, *args: Any, settle: bool = True, **kwargs: Any) -> tuple[int, Any]:
        answer = super().slash(*args, **kwargs)
        if settle:
            self.settle()
        return answer

    def submit_view(self, *args: Any, settle: bool = True, **kwargs: Any) -> tuple[int, Any]:
        answer = super().submit_view(*args, **kwargs)
        if settle:
            self.settle()
        return answer


UNSETTLED = text("SELECT id, attempts, claimed_by FROM inbox WHERE kind = 'request' AND done_at IS NULL ORDER BY id")


@dataclass
class World:
    bot: LocalBot
    slack: SlackStandIn
    client: SettlingClient
    vault: hvac.Client | None  # the root token's client, where the test has one
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


@contextmanager
def local_bot(
    tmp_path: Path,
    vault_addr: str,
    vault_token: str,
    *,
    vault: hvac.Client | None = None,
    db_url: str | None = None,
    catalog: Path | None = None,
    catalog_edits: dict[str, str] | None = None,
    slack: SlackStandIn | None = None,
    start: bool = True,
    **settings: Any,
) -> Iterator[World]:
    """The one way a test starts a bot in this process: the real runtime behind waitress with the tests' Slack app,
    on `vault_addr` with the bot's `vault_token` (`vault`: the root's client, for the test), its database `db_url` (default: a SQLite file in `tmp_path`), the
    shipped catalog with `catalog_edits` (or `catalog`), a Slack stand-in of its own unless `slack` is shared (replicas),
    any other setting as a keyword (`jitbot_ssh_krl=...`), and a settling signed client.

    With `start=False` the bot is built (its URL is known) but the caller starts and stops it (`with world.bot:`)."""
    with ExitStack() as stack:
        if slack is None:
            slack = stack.enter_context(SlackStandIn(BOT_TOKEN, users=USERS))
        db_url = db_url or sqlite_url(tmp_path)
        catalog = catalog or make_catalog_dir(tmp_path, catalog_edits) / "catalog.toml"
        bot = LocalBot(**{**bot_settings(slack.url, vault_addr, vault_token, db_url, catalog), **settings})
        if start:
            stack.enter_context(bot)
        yield World(bot, slack, SettlingClient(bot, slack), vault, vault_addr, db_url)


def bot_settings(slack_url: str, vault_addr: str, vault_token: str, db_url: str, catalog: Path) -> dict[str, Any]:
    """The settings every test bot runs with (`catalog`: the catalog.toml)."""
    return {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack_url,
        "vault_addr": vault_addr,
        "vault_token": vault_token,
        "database_url": db_url,
        "jitbot_catalog": catalog,
    }


def serve_env(slack: SlackStandIn, vault_addr: str, vault_token: str, db_url: str, catalog: Path, **more: Any) -> dict[str, str]:
    """The same settings as the environment of a `jitbot serve` (`web`, `worker`) process, with `more` by variable
    name (`JITBOT_OUTBOX_LEASE=3`)."""
    settings = {**bot_settings(slack.url, vault_addr, vault_token, db_url, catalog), **more}
    return {name.upper(): str(value) for name, value in settings.items()}


@contextmanager
def process_env(
    tmp_path: Path,
    vault_addr: str,
    vault_token: str,
    *,
    db_url: str | None = None,
    catalog: Path | None = None,
    catalog_edits: dict[str, str] | None = None,
    users: dict[str, str] = USERS,
    app_token: str | None = None,
    **more: Any,
) -> Iterator[tuple[SlackStandIn, dict[str, str]]]:
    """`local_bot`'s counterpart for bots in processes of their own (`devkit/processes.py`): a Slack stand-in (also on
    Socket Mode with `app_token`) and the environment `jitbot serve` runs with, the same defaults as `local_bot`."""
    with SlackStandIn(BOT_TOKEN, users=users, app_token=app_token) as slack:
        catalog = catalog or make_catalog_dir(tmp_path, catalog_edits) / "catalog.toml"
        socket = {"SLACK_APP_TOKEN": app_token} if app_token else {}
        yield slack, serve_env(slack, vault_addr, vault_token, db_url or sqlite_url(tmp_path), catalog, **socket, **more)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jitbot.db'}"


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
    with local_bot(tmp_path, openbao.addr, bot_vault_token, vault=vault_root, db_url=db_url, catalog_edits=catalog_edits) as w:
        yield w
