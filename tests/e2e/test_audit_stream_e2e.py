"""The audit trail streamed as it happens, end to end on SQLite and PostgreSQL: Debian's rsyslog (TCP, and TLS with
its gtls driver) receives every event of a story through Slack byte for byte as `jitbot audit export` writes it; an
HTTPS webhook receiver gets the same lines in signed batches; with the collectors down and the bot killed -9
meanwhile, every event arrives once per seq, in order, after both are back."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from devkit.processes import ServeProcess
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from grants.adapters.clock import SystemClock
from grants.audit import AuditQuery
from grants.usecases.auditing import export
from tests.conftest import (
    APPROVER,
    AUDITOR,
    BOT_TOKEN,
    REQUESTER,
    USERS,
    SettlingClient,
    World,
    make_catalog_dir,
    serve_env,
)
from tests.siem_fixtures import Rsyslog, WebhookReceiver, first_per_seq

SECRET = "audit-webhook-secret-6a1f0c"


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def story(client: SignedSlackClient, slack: SlackStandIn) -> str:
    """Requests, a refusal, an approval, a revoke: a few kinds of events, with people's own words in them; the
    last request's ack."""
    status, body = client.slash(REQUESTER, "payments-read 20m INC-31 replay the refunds — «naïve» café")
    assert status == 200, body
    rid = body["text"].split("`")[1]
    slack.wait_for(lambda: slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    assert client.click(REQUESTER, "approve", rid)[0] == 200  # self-approval: refused and audited
    assert client.click(APPROVER, "approve", rid)[0] == 200
    slack.wait_for(lambda: next((m for m in slack.dm_messages(REQUESTER) if rid in shown(m) and "unwrap" in shown(m)), None))
    assert client.slash(REQUESTER, f"revoke {rid}")[0] == 200
    status, body = client.slash(REQUESTER, "staging-read 10m INC-32 look at the staging logs")
    assert status == 200, body
    return str(body["text"])


def exported(world: World) -> list[str]:
    assert world.bot.runtime is not None
    out = io.StringIO()
    export(world.bot.runtime.store, SystemClock(), AUDITOR, AuditQuery(), out, "jsonl")
    return out.getvalue().splitlines()


@pytest.fixture
def rsyslog(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rsyslog]:
    folder = tmp_path / "rsyslog"
    folder.mkdir()
    collector = Rsyslog(folder, tls=getattr(request, "param", False)).start()
    yield collector
    collector.stop()


@pytest.fixture
def catalog_edits(rsyslog: Rsyslog) -> dict[str, str]:
    ca = f'"\nsyslog_ca = "{rsyslog.cert}' if rsyslog.tls else ""
    return {"[groups]": f'[settings.audit_stream]\nsyslog = "{rsyslog.url}{ca}"\n\n[groups]'}


@pytest.mark.parametrize("rsyslog", [False, True], ids=["tcp", "tls"], indirect=True)
def test_rsyslog_receives_every_event_byte_for_byte_as_the_export_writes_it(world: World, rsyslog: Rsyslog) -> None:
    rid = story(world.client, world.slack).split("`")[1]
    # Auto-approved, then issued after the ack (Slack is answered before Vault): the story ends at its credential DM.
    world.slack.wait_for(
        lambda: next((m for m in world.slack.dm_messages(REQUESTER) if rid in shown(m) and "unwrap" in shown(m)), None), 30
    )
    head = world.rows("SELECT max(seq) FROM audit_events")[0][0]
    lines = exported(world)
    assert len(lines) >= head >= 6
    # Wait for the condition, not a count taken earlier: every seq the export holds in rsyslog's file.
    seqs = {json.loads(line)["seq"] for line in lines}
    wait_until(lambda: seqs <= {json.loads(line)["seq"] for line in rsyslog.lines()}, what="every exported seq in rsyslog")
    received = first_per_seq(rsyslog.lines())
    assert received[: len(lines)] == lines  # the MSG of each message is the export's line, byte for byte
    assert [json.loads(line)["seq"] for line in received] == list(range(1, len(received) + 1))
    wait_until(lambda: any(json.loads(line)["event"] == "exported" for line in rsyslog.lines()), what="the export's own event")
    raw = (rsyslog.folder / "received.log").read_bytes()
    assert "«naïve» café".encode() in raw  # UTF-8 arrives as it was typed


def streaming_env(
    tmp_path: Path, db_url: str, openbao, bot_vault_token: str, slack: SlackStandIn, edits: dict[str, str]
) -> dict[str, str]:
    catalog = make_catalog_dir(tmp_path, edits) / "catalog.toml"
    return serve_env(slack, openbao.addr, bot_vault_token, db_url, catalog, JITBOT_AUDIT_WEBHOOK_SECRET=SECRET)


def trail(db_url: str) -> list[int]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        seqs = [int(r[0]) for r in connection.execute(text("SELECT seq FROM audit_events ORDER BY seq"))]
    engine.dispose()
    return seqs


def test_collectors_down_and_the_bot_killed_meanwhile_lose_nothing_and_keep_the_order(
    tmp_path: Path, db_url: str, openbao, bot_vault_token: str
) -> None:
    folder = tmp_path / "rsyslog"
    folder.mkdir()
    collector = Rsyslog(folder).start()
    receiver = WebhookReceiver(tmp_path, SECRET)
    edits = {
        "[groups]": f'[settings.audit_stream]\nsyslog = "{collector.url}"\nwebhook = "{receiver.url}"\nwebhook_ca = "{receiver.cert}"\n\n[groups]'
    }
    with SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        env = streaming_env(tmp_path, db_url, openbao, bot_vault_token, slack, edits)
        bot = ServeProcess(env, tmp_path / "serve-1.log").start()
        try:
            client = SettlingClient(bot, slack)
            story(client, slack)
            wait_until(lambda: len(first_per_seq(collector.lines())) >= len(trail(db_url)), what="the first part")
            collector.stop()  # the SIEM goes away …
            receiver.refusing = True
            story(client, slack)  # … while the story goes on
            time.sleep(1.5)  # a few delivery rounds fail against the stopped collector
            bot.kill()  # and the bot dies with events unsent
        finally:
            bot.kill()
        written = trail(db_url)
        assert len(first_per_seq(collector.lines())) < len(written)  # some really were held back
        collector.start()
        receiver.refusing = False
        again = ServeProcess(env, tmp_path / "serve-2.log").start()
        try:
            wait_until(lambda: len(first_per_seq(collector.lines())) >= len(written), what="rsyslog to catch up")
            wait_until(lambda: len(first_per_seq(receiver.lines())) >= len(written), what="the webhook to catch up")
        finally:
            again.stop()
            collector.stop()
            receiver.close()
    for lines in (collector.lines(), receiver.lines()):
        kept = first_per_seq(lines)
        assert [json.loads(line)["seq"] for line in kept][: len(written)] == written  # every seq, once, in order
    assert receiver.bad_signatures == 0
    # The webhook's batches carry the very lines rsyslog got (the export's, as the test above shows), HMAC-signed.
    assert first_per_seq(receiver.lines())[: len(written)] == first_per_seq(collector.lines())[: len(written)]
