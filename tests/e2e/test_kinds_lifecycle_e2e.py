"""Each credential kind through its whole life in Slack, on SQLite and PostgreSQL: expiry (by itself where the kind
can), extension, break-glass and its review for every kind, App Home, `list` and the audit export, against the real bot, OpenBao,
PostgreSQL and sshd."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import hvac
import psycopg
import pytest

from devkit.openbao import OpenBaoDevServer
from devkit.standin import message_text as shown
from tests.conftest import APPROVER, APPROVER_2, AUDITOR, REQUESTER, World, local_bot
from tests.e2e.test_kinds_e2e import (
    CERTIFICATE,
    PLATFORM,
    approve,
    ask,
    can_read,
    fetch_krl,
    linked_requester,  # noqa: F401
    revoke,
    web_ssh_role,  # noqa: F401
)
from tests.e2e.test_slack_workflows import open_home, wait_home
from tests.integration.test_kind_database import (
    PG_HOST,
    TABLE,
    _open_locked_session,
    _role_exists,
    _session_is_dead,
    _wait_until_gone,
    database_engine,  # noqa: F401  (the DB operator's one-time setup, as a fixture)
)
from tests.ssh_fixtures import SshServer, can_log_in, new_key

# Short minimums so that expiry happens within a test; one self-service extension per kind; break-glass on every kind
# (db-oncall on the database, developers on their own identity: inline tables, as the scopes' own tables follow).
KIND_EDITS = {
    'connect_hint = "psql -h db.staging -d orders"\nmin_duration = "1m"':
        'connect_hint = "psql -h db.staging -d orders"\nmin_duration = "2s"\nmax_extensions = 1\nextension_requires_approval = false\n'
        'break_glass = { requesters = ["group:db-oncall"], max_duration = "10m", review_within = "24h" }',
    'principals = ["web-admin"]           # never root: the certificate carries exactly these\nmin_duration = "1m"':
        'principals = ["web-admin"]\nmin_duration = "2s"\nmax_extensions = 1\nextension_requires_approval = false',
    'on_behalf_of = ["entity:ci-deployer"]\nmin_duration = "1m"':
        'on_behalf_of = ["entity:ci-deployer"]\nmin_duration = "2s"\nmax_extensions = 1\nextension_requires_approval = false\n'
        'break_glass = { requesters = ["group:developers"], max_duration = "10m", review_within = "24h" }',
    "[scopes.payments-identity]":
        '[scopes.web-ssh.break_glass]\nrequesters = ["group:platform"]\nmax_duration = "10m"\nreview_within = "24h"\n\n'
        "[scopes.payments-identity]",
}  # fmt: skip


@pytest.fixture
def world(tmp_path, db_url, openbao: OpenBaoDevServer, bot_vault_token, vault_root) -> Iterator[World]:
    with kinds_world(tmp_path, db_url, openbao, bot_vault_token, vault_root) as world:
        yield world


@contextmanager
def kinds_world(
    tmp_path: Path, db_url: str, openbao: OpenBaoDevServer, bot_vault_token: str, vault_root: hvac.Client
) -> Iterator[World]:
    """The real bot on this test's database (SQLite or PostgreSQL), its SSH revocation list in this test's folder."""
    krl = tmp_path / "krl" / "revoked.krl"
    with local_bot(tmp_path, openbao.addr, bot_vault_token, vault=vault_root, db_url=db_url, catalog_edits=KIND_EDITS,
                   jitbot_ssh_krl=krl) as world:  # fmt: skip
        yield world


def nth_dm(world: World, user: str, rid: str, words: str, nth: int = 1, timeout: float = 15) -> str:
    def found() -> str | None:
        texts = [shown(m) for m in world.slack.dm_messages(user) if rid in shown(m) and words in shown(m)]
        return texts[nth - 1] if len(texts) >= nth else None

    return str(world.slack.wait_for(found, timeout=timeout))


def unwrapped_login(world: World, dm: str) -> tuple[str, dict[str, str]]:
    wrapping = re.search(r"unwrap ([A-Za-z0-9._-]{20,})", dm).group(1)  # type: ignore[union-attr]
    return wrapping, hvac.Client(url=world.vault_addr, token=wrapping).sys.unwrap()["data"]


def extend(world: World, rid: str, by: str) -> None:
    status, _ = world.client.slash(REQUESTER, f"extend {rid} {by}")
    assert status == 200
    world.wait_audit(rid, "extended")


def restart(world: World) -> None:
    """Stop the runtime without revoking anything (timers lost, as in a crash), then start a new one on the same database."""
    world.bot.stop()
    world.bot.start()


def registered_key(world: World, user: str, folder: Path, name: str) -> Path:
    key = new_key(folder, name)
    status, body = world.client.slash(user, f"ssh-key {key.with_suffix('.pub').read_text()}")
    assert status == 200 and "SHA256:" in body["text"], body
    return key


def certificate_file(dm: str, path: Path) -> Path:
    path.write_text(CERTIFICATE.search(dm).group(1) + "\n")  # type: ignore[union-attr]
    return path


def group_expires_at(vault: hvac.Client, rid: str) -> datetime:
    return datetime.fromisoformat(vault.read(f"identity/group/name/jit-{rid}")["data"]["metadata"]["expires_at"])


def wait_until(check, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_database_login_dies_by_the_reader_tokens_ttl_with_the_bot_down_and_extension_replaces_it(
    world: World,
    database_engine: None,  # noqa: F811
) -> None:
    rid = ask(world, "orders-db-read 8s INC-20 count stuck orders")
    approve(world, rid, APPROVER)
    _, creds = unwrapped_login(world, nth_dm(world, REQUESTER, rid, "unwrap"))
    session = _open_locked_session(creds)
    world.wait_audit(rid, "issued")
    world.bot.stop()  # nobody will revoke anything: only the reader token's TTL can end the login now
    _wait_until_gone(creds["username"], within=30)
    assert _session_is_dead(session) and not _role_exists(creds["username"])
    session.close()
    world.bot.start()  # reconcile records the expiry the bot missed; revoking a token already gone is success
    world.wait_audit(rid, "expired")
    assert world.audit_names(rid) == ["requested", "approved", "issued", "expired"]

    rid = ask(world, "orders-db-read 1m INC-21 keep counting")
    approve(world, rid, APPROVER)
    _, old = unwrapped_login(world, nth_dm(world, REQUESTER, rid, "unwrap"))
    old_session = _open_locked_session(old)
    extend(world, rid, "5m")
    _, new = unwrapped_login(world, nth_dm(world, REQUESTER, rid, "unwrap", nth=2))
    assert new["username"] != old["username"]  # a new login: a reader token's max TTL cannot be raised
    _wait_until_gone(old["username"], within=15)
    assert _session_is_dead(old_session)
    old_session.close()
    with psycopg.connect(f"postgresql://{PG_HOST}/test", user=new["username"], password=new["password"]) as fresh:
        assert fresh.execute(f"SELECT count(*) FROM {TABLE}").fetchone() is not None
    extended = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'extended'")[0][0]
    assert "password" not in extended
    revoke(world, rid)
    _wait_until_gone(new["username"], within=15)


def take_break_glass(world: World, user: str, text: str) -> str:
    status, body = world.client.slash(user, f"break-glass {text}")
    assert status == 200 and "Break-glass JIT-" in body["text"] and "yours until" in body["text"], body
    return re.search(r"Break-glass (JIT-[A-Za-z0-9]+):", body["text"]).group(1)  # type: ignore[union-attr]


def review_follows(world: World, rid: str, taker: str, reviewer: str) -> None:
    """The approvers get a loud notice with review buttons; the taker cannot review it, another approver does."""
    notice = world.slack.wait_for(
        lambda: world.slack.find_message(lambda m: "BREAK-GLASS" in shown(m) and rid in shown(m) and "[Acknowledge]" in shown(m))
    )
    assert "[Flag]" in shown(notice)
    status, body = world.client.slash(AUDITOR, "reviews")
    assert status == 200 and rid in body["text"], body
    if taker != reviewer:
        status, _ = world.client.click(taker, "review_acknowledged", rid)
        assert status == 200
    status, _ = world.client.click(reviewer, "review_acknowledged", rid)
    assert status == 200
    world.wait_audit(rid, "review_acknowledged")
    nth_dm(world, taker, rid, "acknowledged your break-glass use")
    status, body = world.client.slash(AUDITOR, "reviews")
    assert rid not in body["text"], body
    reviewed = world.rows(f"SELECT actor FROM audit_events WHERE request_id = '{rid}' AND event = 'review_acknowledged'")
    assert reviewed == [(reviewer,)]


def test_break_glass_gives_a_database_login_at_once_and_an_approver_reviews_it(
    world: World,
    database_engine: None,  # noqa: F811
) -> None:
    status, body = world.client.slash(REQUESTER, "break-glass orders-db-read 5m INC-60 orders stuck")
    assert status == 200 and "Break-glass JIT-" not in body["text"], body  # developers are not its break-glass takers
    rid = take_break_glass(world, APPROVER, "orders-db-read 5m INC-60 orders stuck")
    _, creds = unwrapped_login(world, nth_dm(world, APPROVER, rid, "unwrap"))
    assert creds["username"].startswith(f"jit_{rid.lower()}_")
    with psycopg.connect(f"postgresql://{PG_HOST}/test", user=creds["username"], password=creds["password"]) as login:
        assert login.execute(f"SELECT count(*) FROM {TABLE}").fetchone() is not None
    world.wait_audit(rid, "issued")
    issued = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert '"kind":"database"' in issued.replace(" ", "") and "password" not in issued
    review_follows(world, rid, APPROVER, APPROVER_2)
    revoke(world, rid, APPROVER)
    _wait_until_gone(creds["username"], within=15)
    # The taker's own click on Acknowledge is refused and audited; the other approver's counts.
    assert world.audit_names(rid) == ["requested", "approved", "issued", "rejected", "review_acknowledged", "revoked"]


def test_break_glass_raises_the_takers_own_identity_at_once_and_an_approver_reviews_it(
    world: World,
    linked_requester: str,  # noqa: F811
) -> None:
    assert not can_read(world, linked_requester)
    rid = take_break_glass(world, REQUESTER, "payments-identity 5m INC-61 refunds stuck")
    world.wait_audit(rid, "issued")
    assert can_read(world, linked_requester)  # the taker's existing token, at once, no approval
    assert world.vault.read(f"identity/group/name/jit-{rid}")["data"]["metadata"]["requester"] == REQUESTER
    review_follows(world, rid, REQUESTER, APPROVER)
    revoke(world, rid)
    assert not can_read(world, linked_requester)
    assert world.vault.read(f"identity/group/name/jit-{rid}") is None
    # The taker's own click on Acknowledge is refused and audited; the other approver's counts.
    assert world.audit_names(rid) == ["requested", "approved", "issued", "rejected", "review_acknowledged", "revoked"]


def test_ssh_certificates_stop_at_validity_extend_by_signing_again_and_break_glass_needs_a_key(
    world: World,
    web_ssh_role: None,  # noqa: F811
    sshd: SshServer,
    tmp_path: Path,
) -> None:
    sshd.allow_principals("web-admin")
    status, body = world.client.slash(PLATFORM, "break-glass web-ssh 6s INC-30 web tier down")
    assert status == 200 and "ssh-key" in body["text"] and "Break-glass JIT-" not in body["text"], body
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 0  # refused before anything was created
    key = registered_key(world, PLATFORM, tmp_path, "pat")
    status, body = world.client.slash(PLATFORM, "break-glass web-ssh 6s INC-30 web tier down")
    rid = re.search(r"Break-glass (JIT-[A-Za-z0-9]+):", body["text"]).group(1)  # type: ignore[union-attr]
    certificate = certificate_file(nth_dm(world, PLATFORM, rid, "ssh-ed25519-cert-v01@openssh.com"), tmp_path / "pat-cert.pub")
    assert can_log_in(sshd, key, certificate)
    world.wait_audit(rid, "expired", timeout=20)
    # Nothing was added to the hosts' KRL: the certificate's own validity is what stops it.
    wait_until(lambda: not can_log_in(sshd, key, certificate), within=5, what="the certificate still logs in after its validity")
    issued = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert '"kind":"ssh"' in issued.replace(" ", "")

    key = registered_key(world, REQUESTER, tmp_path, "dana")
    rid = ask(world, "web-ssh 1m INC-31 restart nginx")
    approve(world, rid, PLATFORM)
    first = certificate_file(nth_dm(world, REQUESTER, rid, "ssh-ed25519-cert-v01@openssh.com"), tmp_path / "first-cert.pub")
    extend(world, rid, "5m")
    second = certificate_file(
        nth_dm(world, REQUESTER, rid, "ssh-ed25519-cert-v01@openssh.com", nth=2), tmp_path / "second-cert.pub"
    )
    assert first.read_text() != second.read_text()  # signed again for the longer validity
    status, krl = fetch_krl(world)
    assert status == 200
    sshd.krl_path.write_bytes(krl)  # the replaced certificate is revoked for new logins
    assert not can_log_in(sshd, key, first) and can_log_in(sshd, key, second)
    revoke(world, rid)


def test_an_identity_group_is_deleted_at_expiry_by_the_bots_timer_and_extension_moves_its_end(
    world: World,
    linked_requester: str,  # noqa: F811
) -> None:
    rid = ask(world, "payments-identity 4s INC-40 check a refund")
    approve(world, rid, APPROVER)
    world.wait_audit(rid, "issued")
    assert can_read(world, linked_requester)
    world.wait_audit(rid, "expired", timeout=20)
    assert world.vault.read(f"identity/group/name/jit-{rid}") is None and not can_read(world, linked_requester)
    expired = world.rows(f"SELECT actor FROM audit_events WHERE request_id = '{rid}' AND event = 'expired'")
    assert expired == [("system",)]

    rid = ask(world, "payments-identity 1m INC-41 check another refund")
    approve(world, rid, APPROVER)
    world.wait_audit(rid, "issued")
    before = group_expires_at(world.vault, rid)
    extend(world, rid, "5m")
    after = group_expires_at(world.vault, rid)
    assert timedelta(minutes=5) - timedelta(seconds=2) <= after - before <= timedelta(minutes=5) + timedelta(seconds=2)
    assert can_read(world, linked_requester)  # the same group, stretched in place
    revoke(world, rid)
    assert not can_read(world, linked_requester)


def test_home_list_and_the_audit_export_show_every_kind_and_no_secret(
    world: World,
    database_engine: None,  # noqa: F811
    web_ssh_role: None,  # noqa: F811
    linked_requester: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    key = registered_key(world, REQUESTER, tmp_path, "dana")
    rids = {
        "vault_token": ask(world, "payments-read 10m INC-50 token"),
        "database": ask(world, "orders-db-read 10m INC-50 database"),
        "ssh": ask(world, "web-ssh 10m INC-50 ssh"),
        "vault_identity": ask(world, "payments-identity 10m INC-50 identity"),
    }
    for kind, rid in rids.items():
        approve(world, rid, PLATFORM if kind == "ssh" else APPROVER)
        world.wait_audit(rid, "issued")
    token_wrap = world.wrapping_token(REQUESTER, rids["vault_token"])
    token = world.unwrap(token_wrap)
    db_wrap, creds = unwrapped_login(world, nth_dm(world, REQUESTER, rids["database"], "unwrap"))

    _, listed = world.client.slash(REQUESTER, "list")
    assert all(rid in listed["text"] for rid in rids.values()), listed
    open_home(world, REQUESTER)
    wait_home(world, REQUESTER, *rids.values())

    for rid in rids.values():
        revoke(world, rid)
    status, _ = world.client.slash(AUDITOR, "audit --since 1d --format jsonl")
    assert status == 200
    upload = world.slack.wait_for(lambda: next((f for f in world.slack.files.values() if f.get("content")), None))
    export = upload["content"].decode()
    events = [json.loads(line) for line in export.strip().splitlines()]
    for kind, rid in rids.items():
        mine = [e for e in events if e["request_id"] == rid]
        assert [e["event"] for e in mine] == ["requested", "approved", "issued", "revoked"], (kind, mine)
        assert mine[2]["detail"]["kind"] == kind
    private_key = "".join(key.read_text().splitlines()[1:-1])
    for secret in (token_wrap, token, db_wrap, creds["password"], private_key, *key.read_text().splitlines()[1:-1]):
        assert secret not in export
