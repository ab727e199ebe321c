"""Reconcile per kind after a crash, through Slack on SQLite and PostgreSQL: an identity group the bot never ended,
groups no grant holds (audited), and a crash between the Vault call and the store write, for every kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hvac.exceptions import InvalidRequest
from sqlalchemy import create_engine, text

from grants.adapters.kinds.identity import create_grant_group, requester_entity_id
from grants.credentials import IssuedCredential, IssueOrder
from grants.domain import AuditEvent
from tests.conftest import APPROVER, REQUESTER, World
from tests.databases import PG_ADMIN
from tests.e2e.test_kinds_e2e import PLATFORM, approve, ask, can_read, linked_requester, revoke, web_ssh_role  # noqa: F401
from tests.e2e.test_kinds_lifecycle_e2e import certificate_file, kinds_world, nth_dm, registered_key, unwrapped_login, wait_until
from tests.integration.test_kind_database import _wait_until_gone, database_engine  # noqa: F401
from tests.ssh_fixtures import SshServer, can_log_in


@pytest.fixture
def world(tmp_path, db_url, openbao, bot_vault_token, vault_root) -> Iterator[World]:
    with kinds_world(tmp_path, db_url, openbao, bot_vault_token, vault_root) as world:
        yield world


class Killed(Exception):
    """Stands for the process dying: raised where the store write would have happened, so nothing is written."""


def crash_after_vault(world: World) -> list[tuple[IssueOrder, IssuedCredential]]:
    """Make the next `issued` store write die after the kind created the credential; what each kind issued, in order."""
    runtime = world.bot.runtime
    assert runtime is not None
    kinds = runtime.service.deps.issuer.inner  # type: ignore[attr-defined]  (the metered registry's inner registry)
    issued: list[tuple[IssueOrder, IssuedCredential]] = []
    real_issue, real_commit = kinds.issue, runtime.store.commit

    def issue(order: IssueOrder, scope: Any) -> IssuedCredential:
        credential = real_issue(order, scope)
        issued.append((order, credential))
        return credential

    def commit(request: Any, event: AuditEvent, notices: Any = (), expected_version: int | None = None) -> bool:
        if event.event == "issued":
            raise Killed("the bot died between the Vault call and the store write")
        return bool(real_commit(request, event, notices, expected_version))

    kinds.issue, runtime.store.commit = issue, commit
    return issued


def restart_after_a_while(world: World, rid: str) -> None:
    """The crashed bot is gone (its timers with it, nothing revoked); it comes back once the approval is old enough
    that reconcile treats it as interrupted (on the database's clock the approval happened a minute ago)."""
    world.bot.stop()
    engine = create_engine(world.db_url)
    with engine.begin() as connection:
        state = connection.execute(text("SELECT state FROM requests WHERE id = :id"), {"id": rid}).scalar_one()
        assert state == "approved"  # the store never heard of the credential
        connection.execute(
            text("UPDATE requests SET decided_at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(minutes=1), "id": rid},
        )
    engine.dispose()
    world.bot.start()


def test_an_identity_group_the_bot_never_ended_is_ended_with_its_expired_event_at_restart(
    world: World,
    linked_requester: str,  # noqa: F811
) -> None:
    rid = ask(world, "payments-identity 3s INC-60 check a refund")
    approve(world, rid, APPROVER)
    world.wait_audit(rid, "issued")
    world.bot.stop()  # killed: nothing ends the group, which has no TTL
    time.sleep(4)
    assert can_read(world, linked_requester)  # this kind fails open while the bot is down: why reconcile and sweep exist
    world.bot.start()
    world.wait_audit(rid, "expired")
    assert world.vault.read(f"identity/group/name/jit-{rid}") is None and not can_read(world, linked_requester)
    actor, detail = world.rows(f"SELECT actor, detail FROM audit_events WHERE request_id = '{rid}' AND event = 'expired'")[0]
    assert actor == "system" and '"lag_seconds":' in detail.replace(" ", "")
    assert world.audit_names(rid) == ["requested", "approved", "issued", "expired"]


def test_reconcile_ends_and_audits_groups_no_grant_holds(world: World, linked_requester: str) -> None:  # noqa: F811
    rid = ask(world, "payments-identity 20m INC-61 check")
    approve(world, rid, APPROVER)
    world.wait_audit(rid, "issued")
    with world.bot.runtime.store.engine.begin() as connection:  # type: ignore[union-attr]
        connection.execute(text(f"UPDATE requests SET state = 'revoked' WHERE id = '{rid}'"))  # the row lost the grant
    stray = "JIT-NOREQ0061"  # a group whose request never reached the store (or was deleted)
    entity = requester_entity_id(world.vault, REQUESTER, "slack")
    create_grant_group(world.vault, stray, ["payments-read"], entity, datetime.now(UTC) + timedelta(hours=1), REQUESTER)

    assert world.bot.runtime is not None
    assert world.bot.runtime.service.reconcile()["orphans_ended"] >= 2
    assert world.vault.read(f"identity/group/name/jit-{rid}") is None
    assert world.vault.read(f"identity/group/name/jit-{stray}") is None
    wait_until(lambda: not can_read(world, linked_requester), within=5, what="the orphan groups still raise the token")
    rows = world.rows("SELECT request_id, actor, subject, detail FROM audit_events WHERE event = 'orphan_ended' ORDER BY seq")
    by_credential = {row[3].split('"credential":')[1].split('"')[1]: row for row in rows}
    own = by_credential[f"vault_identity:jit-{rid}"]
    assert own[:3] == (rid, "system", REQUESTER) and '"request_state":"revoked"' in own[3].replace(" ", "")
    none = by_credential[f"vault_identity:jit-{stray}"]
    assert none[0] is None and f'"named_request":"{stray}"' in none[3].replace(" ", "")
    assert '"request_state":"none"' in none[3].replace(" ", "")


def test_a_crashed_identity_issue_is_retried_into_the_same_single_group(world: World, linked_requester: str) -> None:  # noqa: F811
    issued = crash_after_vault(world)
    rid = ask(world, "payments-identity 20m INC-62 crash me")
    approve(world, rid, APPROVER)
    wait_until(lambda: issued, within=10, what="the group was never created")
    assert can_read(world, linked_requester)  # the group exists though the store does not know it
    restart_after_a_while(world, rid)
    world.wait_audit(rid, "issued")
    assert world.audit_names(rid) == ["requested", "approved", "issued"]
    recorded = world.rows(f"SELECT accessor FROM requests WHERE id = '{rid}'")[0][0]
    assert recorded == str(issued[0][1].handle) == f"vault_identity:jit-{rid}"
    # The kind guarantees one credential: the retry rewrote the very group the crashed attempt created.
    assert [name for name in world.vault.list("identity/group/name")["data"]["keys"] if rid in name] == [f"jit-{rid}"]
    nth_dm(world, REQUESTER, rid, "log in to Vault as usual")  # the DM follows the issued commit through the outbox
    assert len([m for m in world.slack.dm_messages(REQUESTER) if rid in str(m) and "log in to Vault as usual" in str(m)]) == 1
    revoke(world, rid)
    assert not can_read(world, linked_requester)


def _logins_of(rid: str) -> list[str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"jit_{rid.lower()}_%",)).fetchall()
    return [str(row[0]) for row in rows]


def test_a_crashed_database_issue_is_retried_once_and_the_orphan_login_dies_by_its_ttl(
    world: World,
    database_engine: None,  # noqa: F811
) -> None:
    issued = crash_after_vault(world)
    rid = ask(world, "orders-db-read 8s INC-63 crash me")
    approve(world, rid, APPROVER)
    wait_until(lambda: issued, within=10, what="the reader token was never created")
    orphan_order, orphan = issued[0]
    restart_after_a_while(world, rid)
    world.wait_audit(rid, "issued")
    assert world.audit_names(rid) == ["requested", "approved", "issued"]
    _, creds = unwrapped_login(world, nth_dm(world, REQUESTER, rid, "unwrap"))
    recorded = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'issued'")[0][0]
    assert orphan.handle.id not in recorded  # the crashed attempt's reader token is not the grant's
    # Nobody holds the orphan's wrapping token (it was never delivered), and its reader token ends at the first
    # attempt's end: Vault revokes its lease then, and the revocation statements drop its login. The interrupted
    # approval is due work retried 15 s after its decision, so on a slow machine the 8 s orphan may be gone already.
    assert creds["username"] in _logins_of(rid)
    if datetime.now(UTC) < orphan_order.until - timedelta(seconds=1):
        reader = world.vault.auth.token.lookup_accessor(orphan.handle.id.partition("@")[0])["data"]
        assert datetime.fromisoformat(reader["expire_time"]) <= orphan_order.until + timedelta(seconds=1)
        assert len(_logins_of(rid)) == 2
    world.wait_audit(rid, "expired", timeout=20)
    wait_until(lambda: not _logins_of(rid), within=30, what="a login of the crashed grant survived its TTL")
    with pytest.raises(InvalidRequest):
        world.vault.auth.token.lookup_accessor(orphan.handle.id.partition("@")[0])


def test_a_crashed_ssh_issue_is_retried_once_and_the_orphan_certificate_ends_at_its_validity(
    world: World,
    web_ssh_role: None,  # noqa: F811
    sshd: SshServer,
    tmp_path: Path,
) -> None:
    sshd.allow_principals("web-admin")
    key = registered_key(world, REQUESTER, tmp_path, "dana")
    issued = crash_after_vault(world)
    rid = ask(world, "web-ssh 8s INC-64 crash me")
    approve(world, rid, PLATFORM)
    wait_until(lambda: issued, within=10, what="the certificate was never signed")
    orphan_order, orphan = issued[0]
    assert orphan.valid_until is not None and orphan.valid_until <= orphan_order.until + timedelta(seconds=1)
    restart_after_a_while(world, rid)
    world.wait_audit(rid, "issued")
    assert world.audit_names(rid) == ["requested", "approved", "issued"]
    # The DM goes out through the outbox after the `issued` commit: wait for it, then count (a loaded CI host took over
    # the moment between the two).
    delivered = certificate_file(nth_dm(world, REQUESTER, rid, "ssh-ed25519-cert-v01@openssh.com"), tmp_path / "retry-cert.pub")
    dms = [m for m in world.slack.dm_messages(REQUESTER) if rid in str(m) and "ssh-ed25519-cert-v01@openssh.com" in str(m)]
    assert len(dms) == 1  # one certificate delivered
    assert orphan.delivery.code is not None and orphan.delivery.code.split()[1] not in delivered.read_text()
    stray = tmp_path / "orphan-cert.pub"
    stray.write_text(orphan.delivery.code + "\n")
    assert can_log_in(sshd, key, delivered)
    # Vault cannot recall a certificate: the orphan (public, for the requester's own key, never delivered) ends
    # at its validity, which never outlasts the approved time of the attempt that signed it.
    remaining = (orphan.valid_until - datetime.now(UTC)).total_seconds()
    time.sleep(max(0.0, remaining) + 1)
    assert not can_log_in(sshd, key, stray)
    world.wait_audit(rid, "expired", timeout=20)
    wait_until(lambda: not can_log_in(sshd, key, delivered), within=5, what="the retried certificate outlived its grant")
