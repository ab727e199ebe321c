"""approval = "vault" on real OpenBao and both databases: the bot's token alone gets a pending request, approvers'
own identities release it, the database says nothing, and one approval mints one credential."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
import requests
from sqlalchemy import text

from bot.wiring import migrate_engine
from devkit.openbao import OpenBaoDevServer
from grants.adapters.sql_store import SqlStore, make_engine
from grants.audit import AuditQuery
from grants.catalog import CatalogError, load_catalog
from grants.credentials import CredentialError, IssuedCredential
from grants.domain import AuditEvent, InvalidRequest, NotAllowed, Request, State
from grants.service import ElevationService
from grants.signin import SignIn
from tests.fakes import FakeClock, FakeNotifier, FakeTimer
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, SCOPE, STRANGER, VaultApprovals, catalog_dir, start


class Delivered(FakeNotifier):
    """The Slack side as far as the credential goes: what the requester would receive."""

    wrapping: dict[str, str]

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        super().deliver_credential(request, credential)
        self.wrapping[request.id] = str(credential.delivery.secret)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VaultApprovals, Path]]:
    with OpenBaoDevServer() as server:
        world = start(server)
        for person in (APPROVER_1, APPROVER_2, REQUESTER):  # STRANGER is named in the catalog but never linked
            world.link(person)
        policies = catalog_dir(tmp_path_factory.mktemp("cg"))
        world.sync(policies)
        yield world, policies


@pytest.fixture
def bot(vault: tuple[VaultApprovals, Path], db_url: str) -> Iterator[tuple[ElevationService, Delivered, str]]:
    world, policies = vault
    catalog = load_catalog(policies / "catalog.toml")
    token = world.bot_token()
    gates, kinds = world.gates(token)
    engine = make_engine(db_url)
    migrate_engine(engine)
    store = SqlStore(engine)
    clock = FakeClock(datetime.now(UTC))
    notifier = Delivered()
    notifier.wrapping = {}
    service = ElevationService(catalog, store, kinds, notifier, FakeTimer(clock), clock)  # type: ignore[arg-type]
    service.deps.control_groups = gates
    yield service, notifier, token
    store.close()


def sign_in(world: VaultApprovals, who: str) -> SignIn:
    return SignIn(who, world.entities[who], world.addr, world.entities[who], datetime.now(UTC), "totp")


def authorize(world: VaultApprovals, service: ElevationService, who: str, request_id: str) -> Request:
    """What the step-up page does once the person signed in: authorize with their own token, then approve in the core."""
    assert service.deps.control_groups is not None
    service.deps.control_groups.authorize(request_id, world.login(who))  # type: ignore[attr-defined]
    return service.approve(request_id, who, sign_in(world, who))


def unwrap(addr: str, wrapping: str) -> requests.Response:
    return requests.post(f"{addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrapping}, timeout=10)


def held_token(world: VaultApprovals, request_id: str) -> str:
    read = world.root.secrets.kv.v2.read_secret_version(
        path=f"jitbot/control-groups/{request_id}", mount_point="secret", raise_on_deleted_version=True
    )
    return str(read["data"]["data"]["token"])


def ask(service: ElevationService) -> Request:
    return service.request(REQUESTER, SCOPE, "30m", "CHG-1 rotate the payment keys")


def test_two_approvers_release_one_working_credential_and_the_control_group_token_dies(vault, bot):
    world, _ = vault
    service, notifier, _ = bot
    request = ask(service)
    cg_token = held_token(world, request.id)
    assert unwrap(world.addr, cg_token).status_code == 400  # nobody authorized: nothing comes out
    assert authorize(world, service, APPROVER_1, request.id).state is State.PENDING
    active = authorize(world, service, APPROVER_2, request.id)
    assert active.state is State.ACTIVE
    released = unwrap(world.addr, notifier.wrapping[request.id]).json()["data"]
    grant = hvac.Client(url=world.addr, token=released["token"]).auth.token.lookup_self()["data"]
    assert "payments-read" in grant["policies"] and grant["accessor"] == active.grant.handle.id  # type: ignore[union-attr]
    assert 1700 < grant["ttl"] <= 1800 and not grant["renewable"]
    assert unwrap(world.addr, notifier.wrapping[request.id]).status_code == 400  # the DM's wrap is single use
    # Pitfall (b): Vault would answer an approved request again and again; jitbot revoked it after the one delivery.
    assert unwrap(world.addr, cg_token).status_code == 400
    trail = events(service, request.id)
    approvals = [e.detail["sign_in"] for e in trail if e.event in ("approval_added", "approved")]
    assert [a["slack_user"] for a in approvals] == [APPROVER_1, APPROVER_2]
    assert approvals[0]["entity_id"] == world.entities[APPROVER_1] and approvals[0]["mfa"] == "totp"


def events(service: ElevationService, request_id: str | None) -> list[AuditEvent]:
    return [e for e in service.deps.store.events(AuditQuery()) if request_id is None or e.request_id == request_id]


def test_bot_token_and_database_write_access_get_no_credential(vault, bot, db_url):
    world, _ = vault
    service, notifier, bot_token = bot
    request = ask(service)
    # The bot's own token: the protected path answers only a pending request (also through a trailing slash).
    for path in (f"auth/token/create/jitbot-{SCOPE}", f"auth/token/create/jitbot-{SCOPE}/"):
        answer = requests.post(
            f"{world.addr}/v1/{path}",
            json={"policies": ["payments-read"], "ttl": "1h", "explicit_max_ttl": "1h", "renewable": False},
            headers={"X-Vault-Token": bot_token, "X-Vault-Wrap-TTL": "300s"},
            timeout=10,
        ).json()
        assert answer.get("auth") is None
        wrap = answer.get("wrap_info") or {}
        assert not wrap.get("wrapped_accessor"), "the bot's token minted a token without the approvers"
        assert unwrap(world.addr, wrap["token"]).status_code == 400 if wrap else True
    # ... and cannot authorize anything itself.
    refused = requests.post(
        f"{world.addr}/v1/sys/control-group/authorize",
        json={"accessor": service.deps.control_groups.accessor(request.id)},  # type: ignore[union-attr]
        headers={"X-Vault-Token": bot_token},
        timeout=10,
    )
    assert refused.status_code == 403
    # The insider marks the request approved (with approvers, sign-ins, whatever) and lets the bot issue it.
    store = service.deps.store
    with store.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            text("UPDATE requests SET state = 'approved', version = version + 1 WHERE id = :id"), {"id": request.id}
        )
    forged = store.get(request.id)
    assert forged is not None and forged.state is State.APPROVED
    from grants.usecases import granting

    ended = granting.issue(service.deps, forged)
    assert ended.state is State.FAILED
    assert request.id not in notifier.wrapping  # nothing was delivered
    names = [e.event for e in events(service, request.id)]
    assert names[-1] == "issue_failed"


def test_one_approver_authorizing_twice_stays_pending_and_the_requester_cannot_authorize(vault, bot):
    world, _ = vault
    service, notifier, _ = bot
    gates = service.deps.control_groups
    request = ask(service)
    assert gates.authorize(request.id, world.login(APPROVER_1)) is False  # type: ignore[union-attr]
    with pytest.raises(CredentialError):
        gates.authorize(request.id, world.login(APPROVER_1))  # type: ignore[union-attr]
    assert gates.approved(request.id) is False  # type: ignore[union-attr]
    # The requester's own identity is not among the approvers Vault counts: its authorization changes nothing.
    assert gates.authorize(request.id, world.login(REQUESTER)) is False  # type: ignore[union-attr]
    assert gates.approved(request.id) is False  # type: ignore[union-attr]
    # Through jitbot, the requester is refused (and audited) before Vault is even asked.
    with pytest.raises(NotAllowed):
        service.check_approve(request.id, REQUESTER)
    assert "rejected" in [e.event for e in events(service, request.id)]


def test_a_click_without_sign_in_never_approves_a_step_up_scope(vault, bot):
    world, _ = vault
    service, _, _ = bot
    request = ask(service)
    with pytest.raises(NotAllowed) as refused:
        service.approve(request.id, APPROVER_1)  # an old message, a replayed click: no evidence
    assert refused.value.rule == "step_up_required"
    someone_else = replace(sign_in(world, APPROVER_2), slack_user=APPROVER_2)
    with pytest.raises(NotAllowed):
        service.approve(request.id, APPROVER_1, someone_else)  # another person's sign-in does not count
    refusals = [e for e in events(service, request.id) if e.event == "rejected"]
    assert [e.detail["rule"] for e in refusals] == ["step_up_required"]  # the repeat is counted in the same burst
    assert service.deps.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]


def test_an_approver_without_a_vault_entity_is_named_in_the_refusal(vault, bot):
    service, _, _ = bot
    with pytest.raises(InvalidRequest, match=STRANGER):
        service.request(REQUESTER, f"{SCOPE}-unlinked", "30m", "CHG-2")
    assert service.deps.store.find(requester=REQUESTER) == []
    refusals = [e for e in events(service, None) if e.event == "rejected"]
    assert refusals[-1].detail["rule"] == "approver_not_in_vault" and refusals[-1].actor == REQUESTER


def test_vault_sync_writes_the_control_group_with_its_top_level_ttl(vault):
    world, policies = vault
    policy = world.root.sys.read_acl_policy("jitbot-bot")["data"]["policy"]
    stanza = policy[policy.index(f'path "auth/token/create/jitbot-{SCOPE}"') :]
    assert 'control_group = {\n    ttl = "4200s"' in stanza and "approvals = 2" in stanza
    group = world.root.read(f"identity/group/name/jitbot-approvers-{SCOPE}-1")["data"]
    assert sorted(group["member_entity_ids"]) == sorted([world.entities[APPROVER_1], world.entities[APPROVER_2]])
    _, lines = world.sync(policies)
    assert any(STRANGER in line and "no Vault entity" in line for line in lines)


def test_check_explains_a_hand_written_control_group_without_its_ttl(tmp_path):
    policies = catalog_dir(tmp_path)
    (policies / "hand-written.hcl").write_text(
        'path "secret/data/x" {\n  capabilities = ["read"]\n  control_group = {\n    factor "ops" {\n'
        '      identity { group_names = ["ops"] approvals = 1 }\n    }\n  }\n}\n'
    )
    with pytest.raises(CatalogError) as problems:
        load_catalog(policies / "catalog.toml")
    assert any("hand-written.hcl" in p and "top-level" in p and "silently" in p for p in problems.value.problems)


def has_hold(world: VaultApprovals, request_id: str) -> bool:
    try:
        held_token(world, request_id)
    except hvac.exceptions.InvalidPath:
        return False
    return True


def test_a_timed_out_request_leaves_no_control_group_request_in_vault(vault, bot):
    world, _ = vault
    service, _, _ = bot
    request = ask(service)
    assert has_hold(world, request.id)
    cg_token = held_token(world, request.id)
    service.clock.advance(service.catalog.settings.pending_timeout + timedelta(seconds=1))  # type: ignore[attr-defined]
    service.wake(request.id)
    assert service.get(request.id).state is State.TIMED_OUT
    assert not has_hold(world, request.id)  # the KV entry is gone …
    assert (
        requests.post(  # … and the control-group request's wrapping token is revoked
            f"{world.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": cg_token}, timeout=10
        ).status_code
        == 403
    )


def test_a_store_failure_on_create_leaves_no_hold_and_the_retry_of_the_same_id_succeeds(vault, bot, monkeypatch):
    world, _ = vault
    service, _, _ = bot
    store = service.deps.store
    real_commit, failed = store.commit, []

    def fails_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append(True)
            raise RuntimeError("the database went away mid-write")
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(store, "commit", fails_once)
    with pytest.raises(RuntimeError):
        service.request(REQUESTER, SCOPE, "30m", "CHG-3 rotate", request_id="JIT-RETRY-1")
    assert store.get("JIT-RETRY-1") is None and not has_hold(world, "JIT-RETRY-1")
    retried = service.request(REQUESTER, SCOPE, "30m", "CHG-3 rotate", request_id="JIT-RETRY-1")  # the inbox's retry
    assert retried.state is State.PENDING and has_hold(world, retried.id)
    service.deny(retried.id, APPROVER_1, "test over")
    assert not has_hold(world, retried.id)


def test_the_stuck_approval_retry_racing_the_issuer_leaves_the_winners_credential_alive(vault, bot, monkeypatch):
    """The page's process released the one credential; before it records it, the due work's retry of the approval
    (15 s later) finds the hold used. It must look again later, not commit a failure that makes the winner revoke."""
    world, _ = vault
    service, notifier, _ = bot
    kinds = service.deps.issuer
    real_issue, retried = kinds.issue, []

    def slow_winner(order, scope):  # type: ignore[no-untyped-def]
        credential = real_issue(order, scope)  # Vault released it: the hold is gone
        monkeypatch.setattr(kinds, "issue", real_issue)
        service.clock.advance(timedelta(seconds=16))  # type: ignore[attr-defined]
        with pytest.raises(CredentialError, match="issued elsewhere"):
            service.wake(order.request_id)  # the stuck-approval retry, meanwhile
        retried.append(service.get(order.request_id).state)
        return credential

    request = ask(service)
    authorize(world, service, APPROVER_1, request.id)
    monkeypatch.setattr(kinds, "issue", slow_winner)
    active = authorize(world, service, APPROVER_2, request.id)
    assert retried == [State.APPROVED]  # the retry committed nothing
    assert active.state is State.ACTIVE and service.get(request.id).state is State.ACTIVE
    released = unwrap(world.addr, notifier.wrapping[request.id]).json()["data"]
    assert hvac.Client(url=world.addr, token=released["token"]).auth.token.lookup_self()["data"]["ttl"] > 0
    assert "issue_failed" not in [e.event for e in events(service, request.id)]
    service.revoke(request.id, REQUESTER)


def test_an_approval_whose_credential_the_retry_issued_first_answers_with_the_grant(vault, bot, monkeypatch):
    """The other way round: the stuck-approval retry released and recorded the credential before the approver's own
    process reached Vault. That process finds the hold used and answers with the grant, not with a failure."""
    world, _ = vault
    service, notifier, _ = bot
    kinds = service.deps.issuer
    real_issue = kinds.issue

    def retry_first(order, scope):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(kinds, "issue", real_issue)
        service.clock.advance(timedelta(seconds=16))  # type: ignore[attr-defined]
        service.wake(order.request_id)  # the due work's retry issues it
        assert service.get(order.request_id).state is State.ACTIVE
        return real_issue(order, scope)  # the hold is used now

    request = ask(service)
    authorize(world, service, APPROVER_1, request.id)
    monkeypatch.setattr(kinds, "issue", retry_first)
    answered = authorize(world, service, APPROVER_2, request.id)
    assert answered.state is State.ACTIVE and service.get(request.id).state is State.ACTIVE
    assert unwrap(world.addr, notifier.wrapping[request.id]).status_code == 200  # the retry's credential, delivered
    assert "issue_failed" not in [e.event for e in events(service, request.id)]
    service.revoke(request.id, REQUESTER)
