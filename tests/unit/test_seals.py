"""Credential seals: what they bind, and how the core uses them at revocation (proof, legacy rows, forgeries)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from grants.credentials import CredentialHandle
from grants.domain import State
from grants.seals import Sealer
from tests.catalogs import ADMIN, APPROVER_1, REQUESTER, make_catalog
from tests.fakes import Core, bootstrap

KEY = bytes(range(32))


@pytest.fixture
def world() -> Core:
    core = bootstrap(make_catalog())
    core.service.deps.sealer = Sealer(KEY)
    return core


def test_a_seal_binds_kind_handle_and_request_and_needs_the_key():
    sealer = Sealer(KEY)
    handle = CredentialHandle("vault_token", "acc-1")
    seal = sealer.seal(handle, "JIT-A")
    assert sealer.check(handle, "JIT-A", seal)
    assert not sealer.check(handle, "JIT-B", seal)
    assert not sealer.check(CredentialHandle("vault_token", "acc-2"), "JIT-A", seal)
    assert not sealer.check(CredentialHandle("database", "acc-1"), "JIT-A", seal)
    # Field boundaries count: moving characters between the handle and the request ID makes another seal.
    assert sealer.seal(CredentialHandle("vault_token", "acc-1J"), "IT-A") != seal
    assert not Sealer(bytes(32)).check(handle, "JIT-A", seal)
    assert KEY.hex() not in repr(sealer) and "hidden" in repr(sealer)
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(b"short")


def _active(world: Core, reason: str = "INC-1") -> str:
    request = world.service.request(REQUESTER, "payments-read", "30m", reason)
    world.service.approve(request.id, APPROVER_1)
    return request.id


def test_a_sealed_grant_is_revoked_on_the_seal_alone(world):
    rid = _active(world)
    grant = world.store.get(rid).grant
    assert grant.seal == Sealer(KEY).seal(grant.handle, rid)
    world.timer.advance(timedelta(minutes=30))
    assert world.store.get(rid).state is State.EXPIRED
    assert world.issuer.proven == [True] and not world.issuer.live
    assert "rejected" not in world.store.names()


def test_a_row_from_before_seals_is_looked_up_and_raises_no_alarm(world):
    rid = _active(world)
    stored = world.store.requests[rid]
    world.store.requests[rid] = replace(stored, grant=replace(stored.grant, seal=None))
    assert world.service.revoke(rid, ADMIN).state is State.REVOKED
    assert world.issuer.proven == [False] and not world.issuer.live
    assert "rejected" not in world.store.names()


def _swap_in_anothers(world: Core, mine: str, trail_too: bool) -> CredentialHandle:
    """The insider copies another request's handle and seal into `mine`'s row (and, if `trail_too`, its trail)."""
    other = world.service.request("U0REQ0002", "payments-read", "30m", "INC-2 theirs")
    world.service.approve(other.id, APPROVER_1)
    theirs = world.store.get(other.id).grant
    stored = world.store.requests[mine]
    world.store.requests[mine] = replace(stored, grant=replace(stored.grant, handle=theirs.handle, seal=theirs.seal))
    if trail_too:
        [issued] = [e for e in world.store.audit if e.request_id == mine and e.event == "issued"]
        issued.detail["accessor"] = theirs.handle.id
    return theirs.handle


def test_another_requests_handle_and_seal_in_the_row_lose_to_the_trail(world):
    mine = _active(world, "INC-1 mine")
    real = world.store.get(mine).grant.handle
    theirs = _swap_in_anothers(world, mine, trail_too=False)
    assert world.service.revoke(mine, ADMIN).state is State.REVOKED
    assert theirs.id in world.issuer.live and real.id not in world.issuer.live
    assert world.issuer.proven == [False]  # the trail's handle has no seal in the row: the kind looks it up
    assert [e.detail["rule"] for e in world.store.audit if e.event == "rejected"] == ["credential_mismatch"]


def test_another_requests_handle_and_seal_in_row_and_trail_are_refused_audited_and_alerted(world):
    mine = _active(world, "INC-1 mine")
    theirs = _swap_in_anothers(world, mine, trail_too=True)
    world.service.revoke(mine, ADMIN)
    assert world.issuer.proven == [False]  # the kind's own check decides, and it refuses another request's token
    assert theirs.id in world.issuer.live
    assert world.store.get(mine).state is State.ACTIVE and world.store.names()[-1] == "revoke_failed"
    [refusal] = [e for e in world.store.audit if e.event == "rejected"]
    assert refusal.detail == {"action": "revoke", "rule": "credential_seal", "accessor": theirs.id}
    alerts = [row["notice"].args for row in world.store.outbox if row["notice"].kind == "alert"]
    assert {"alert": "bad_seal", "context": {"accessor": theirs.id}} in alerts


def test_without_a_seal_key_grants_are_unsealed_and_looked_up():
    core = bootstrap(make_catalog())
    rid = _active(core)
    assert core.store.get(rid).grant.seal is None
    core.service.revoke(rid, ADMIN)
    assert core.issuer.proven == [False]


def test_an_extension_seals_the_new_credential_and_revokes_the_old_on_its_seal():
    from grants.catalog import parse_catalog
    from tests.unit.usecases.worlds import DEV, Directory, data

    core = bootstrap(parse_catalog(data()), directory=Directory())
    core.service.deps.sealer = Sealer(KEY)
    request = core.service.request(DEV, "staging", "1h", "")  # auto-approved, self-service extension
    first = request.grant
    extended = core.service.extend(request.id, DEV, "1h")
    grant = extended.grant
    assert grant.handle != first.handle and grant.seal == Sealer(KEY).seal(grant.handle, extended.id)
    assert core.issuer.proven == [True] and first.handle.id not in core.issuer.live
