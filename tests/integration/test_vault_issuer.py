"""The vault_token kind and `vault sync` against a real OpenBao dev server, with the bot's least-privilege token.

Fixtures `openbao`, `vault_root`, `vault_synced` and `bot_vault_token` come from tests/vault_fixtures.py via conftest.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from devkit.openbao import OpenBaoDevServer
from grants.adapters.kinds import credential_kinds
from grants.adapters.kinds.vault_token import VaultTokenKind, role_settings
from grants.adapters.vault_client import VaultSession, vault_client
from grants.adapters.vault_sync import sync
from grants.catalog import Catalog, CatalogError, load_catalog
from grants.catalog_kinds import VaultTokenScope
from grants.credentials import CredentialError, CredentialHandle, ForeignCredential, IssueOrder
from grants.domain import new_request_id

POLICY_DIR = Path(__file__).resolve().parents[2] / "vault_policies"

REQUESTER = "U0REQ0001"
PAYMENTS_READ = VaultTokenScope(
    description="Read payment secrets", policies=["payments-read"], requesters=["*"], approvers=["U0APPR001"]
)
K8S_PROD_READ = VaultTokenScope(
    description="Read k8s prod secrets",
    policies=["k8s-prod-read"],
    no_default_policy=True,
    requesters=["*"],
    approvers=["U0APPR001"],
)


def approved(scope: str, duration: timedelta) -> IssueOrder:
    now = datetime.now(UTC)
    return IssueOrder(request_id=new_request_id(), scope=scope, requester=REQUESTER, ttl=duration, until=now + duration)


@pytest.fixture
def issuer(openbao: OpenBaoDevServer, bot_vault_token: str) -> VaultTokenKind:
    return VaultTokenKind(vault_client(openbao.addr, bot_vault_token))


@pytest.fixture
def bot(openbao: OpenBaoDevServer, bot_vault_token: str) -> hvac.Client:
    return vault_client(openbao.addr, bot_vault_token)


def unwrap(root: hvac.Client, wrapping_token: str) -> str:
    """What the requester does with `bao unwrap`: trade the wrapping token for the grant's token."""
    return str(root.sys.unwrap(wrapping_token)["auth"]["client_token"])


def token_scopes(catalog: Catalog) -> dict[str, VaultTokenScope]:
    return {name: s for name, s in catalog.scopes.items() if isinstance(s, VaultTokenScope)}


def test_sync_writes_every_policy_and_one_role_per_scope_and_is_idempotent(
    vault_root: hvac.Client, vault_synced: list[str], tmp_path: Path
) -> None:
    catalog = load_catalog(POLICY_DIR / "catalog.toml")
    stems = sorted(p.stem for p in POLICY_DIR.glob("*.hcl"))
    roles = [f"token role jitbot-{name}" for name in token_scopes(catalog)]
    assert {"jitbot-bot", "payments-read", "payments-write", "db-admin-staging", "k8s-prod-read"} <= set(stems)
    # The session's first sync (other tests may have synced the same files before: then it said `unchanged`).
    # Policies first, then the vault_token kind's roles; the other kinds' lines follow (tested with each kind).
    count = len(stems) + len(roles)
    assert [line.rsplit(": ", 1)[0] for line in vault_synced[:count]] == [f"policy {s}" for s in stems] + roles

    again = sync(vault_root, POLICY_DIR, catalog, credential_kinds(VaultSession(vault_root)))
    assert again[:count] == [f"policy {s}: unchanged" for s in stems] + [f"{r}: unchanged" for r in roles]
    for stem in stems:
        assert vault_root.sys.read_acl_policy(stem)["data"]["policy"] == (POLICY_DIR / f"{stem}.hcl").read_text()
    for name, scope in token_scopes(catalog).items():
        role = vault_root.auth.token.read_role(f"jitbot-{name}")["data"]
        default = [] if scope.no_default_policy else ["default"]
        assert role["allowed_policies"] == sorted({*scope.policies, *default})  # this scope's, never another's
        assert (role["orphan"], role["renewable"], role["token_type"]) == (True, False, "service")
        assert role["token_explicit_max_ttl"] == int(scope.max_total.total_seconds())


def test_sync_creates_then_updates_what_drifted_and_refuses_a_policy_without_its_file(
    vault_root: hvac.Client, tmp_path: Path
) -> None:
    name, scratch = f"s{uuid.uuid4().hex[:8]}", f"scratch-{uuid.uuid4().hex[:8]}"
    catalog = Catalog(scopes={name: PAYMENTS_READ})
    kinds = credential_kinds(VaultSession(vault_root))
    role = f"jitbot-{name}"
    (tmp_path / "payments-read.hcl").write_text((POLICY_DIR / "payments-read.hcl").read_text())
    (tmp_path / f"{scratch}.hcl").write_text('path "secret/data/scratch/*" {\n  capabilities = ["read"]\n}\n')
    lines = sync(vault_root, tmp_path, catalog, kinds)
    assert f"policy {scratch}: created" in lines and lines[-1].startswith(f"token role {role}: created (")

    (tmp_path / f"{scratch}.hcl").write_text('path "secret/data/scratch/*" {\n  capabilities = ["list"]\n}\n')
    vault_root.write_data(f"auth/token/roles/{role}", data={"renewable": True})  # someone edited the role by hand
    lines = sync(vault_root, tmp_path, catalog, kinds)
    assert f"policy {scratch}: updated" in lines and lines[-1].startswith(f"token role {role}: updated")
    assert vault_root.auth.token.read_role(role)["data"]["renewable"] is False
    assert role_settings(PAYMENTS_READ)["token_explicit_max_ttl"] == 3600

    (tmp_path / "payments-read.hcl").unlink()
    with pytest.raises(CatalogError, match="payments-read"):
        sync(vault_root, tmp_path, catalog, kinds)


def test_sync_warns_when_the_bot_policy_does_not_cover_the_roles(vault_root: hvac.Client, tmp_path: Path) -> None:
    catalog = Catalog(scopes={"payments-read": PAYMENTS_READ})
    (tmp_path / "payments-read.hcl").write_text((POLICY_DIR / "payments-read.hcl").read_text())
    (tmp_path / "jitbot-bot.hcl").write_text('path "auth/token/create/elevate" {\n  capabilities = ["update"]\n}\n')
    try:
        lines = sync(vault_root, tmp_path, catalog, credential_kinds(VaultSession(vault_root)))
    finally:  # the session's OpenBao is shared: put the real bot policy back
        vault_root.sys.create_or_update_acl_policy("jitbot-bot", (POLICY_DIR / "jitbot-bot.hcl").read_text())
    assert lines[-1] == "warning: jitbot-bot.hcl does not allow auth/token/create/jitbot-*; the bot cannot issue"


def test_issue_delivers_a_single_use_wrapping_token_for_exactly_the_scope(
    issuer: VaultTokenKind, vault_root: hvac.Client
) -> None:
    order = approved("payments-read", timedelta(minutes=30))
    credential = issuer.issue(order, PAYMENTS_READ)
    wrapping = credential.delivery.secret
    assert wrapping and credential.delivery.code == f"bao unwrap {wrapping}"
    assert "within 5m" in credential.delivery.lines[0]
    assert wrapping not in repr(credential)
    info = vault_root.adapter.post("/v1/sys/wrapping/lookup", json={"token": wrapping})["data"]
    assert info["creation_path"] == "auth/token/create/jitbot-payments-read" and info["creation_ttl"] == 300

    token = unwrap(vault_root, wrapping)
    with pytest.raises(InvalidRequest):  # single use: a second unwrap (an eavesdropper, a replay) fails
        vault_root.sys.unwrap(wrapping)

    info = vault_client(vault_root.url, token).auth.token.lookup_self()["data"]
    assert credential.handle == CredentialHandle("vault_token", info["accessor"])
    assert info["policies"] == ["default", "payments-read"]
    assert info["explicit_max_ttl"] == 1800 and 1790 <= info["ttl"] <= 1800
    assert (info["renewable"], info["orphan"], info["type"]) == (False, True, "service")
    assert info["role"] == "jitbot-payments-read"
    assert info["meta"] == {"request_id": order.request_id, "requester": REQUESTER, "scope": "payments-read"}
    assert info["display_name"] == f"token-jitbot-{order.request_id}"  # Vault prefixes the mount name


def test_a_scope_without_the_default_policy_gets_only_its_own(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    credential = issuer.issue(approved("k8s-prod-read", timedelta(minutes=5)), K8S_PROD_READ)
    token = unwrap(vault_root, credential.delivery.secret or "")
    info = vault_root.auth.token.lookup(token)["data"]  # lookup-self is in `default`, which this token lacks
    assert info["policies"] == ["k8s-prod-read"] and info["explicit_max_ttl"] == 300


def test_the_grant_reads_what_its_policy_allows_and_nothing_else(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret("payments/stripe", secret={"key": "sk_live_x"})
    vault_root.secrets.kv.v2.create_or_update_secret("k8s/prod/registry", secret={"password": "hunter2"})
    order = approved("payments-read", timedelta(minutes=5))
    credential = issuer.issue(order, PAYMENTS_READ)
    grant = vault_client(vault_root.url, unwrap(vault_root, credential.delivery.secret or ""))

    secret = grant.secrets.kv.v2.read_secret_version("payments/stripe", raise_on_deleted_version=True)
    assert secret["data"]["data"] == {"key": "sk_live_x"}
    with pytest.raises(Forbidden):
        grant.secrets.kv.v2.read_secret_version("k8s/prod/registry", raise_on_deleted_version=True)
    with pytest.raises(Forbidden):  # read, not write
        grant.secrets.kv.v2.create_or_update_secret("payments/stripe", secret={"key": "mine"})


def test_revoke_by_accessor_ends_the_grant_and_is_idempotent(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    order = approved("payments-read", timedelta(minutes=5))
    credential = issuer.issue(order, PAYMENTS_READ)
    grant = vault_client(vault_root.url, unwrap(vault_root, credential.delivery.secret or ""))
    assert grant.auth.token.lookup_self()["data"]["accessor"] == credential.handle.id

    issuer.revoke(credential.handle, order.request_id)
    with pytest.raises(Forbidden):
        grant.auth.token.lookup_self()
    issuer.revoke(credential.handle, order.request_id)  # already gone: success
    issuer.revoke(CredentialHandle("vault_token", "NoSuchAccessor0000000000"), order.request_id)  # never existed: success


def test_revoke_before_unwrap_leaves_a_dead_token_inside_the_wrapping(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    order = approved("payments-read", timedelta(minutes=5))
    credential = issuer.issue(order, PAYMENTS_READ)
    issuer.revoke(credential.handle, order.request_id)
    token = unwrap(vault_root, credential.delivery.secret or "")  # OpenBao still unwraps: the wrapping outlives what it wraps
    with pytest.raises(Forbidden):
        vault_client(vault_root.url, token).auth.token.lookup_self()


def test_vault_itself_ends_a_short_grant(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    order = approved("payments-read", timedelta(seconds=2))
    credential = issuer.issue(order, PAYMENTS_READ)
    grant = vault_client(vault_root.url, unwrap(vault_root, credential.delivery.secret or ""))
    assert grant.auth.token.lookup_self()["data"]["explicit_max_ttl"] == 2
    time.sleep(2.5)  # the one real wait: Vault's own TTL is the backstop when the bot is down
    with pytest.raises(Forbidden):
        grant.auth.token.lookup_self()
    issuer.revoke(credential.handle, order.request_id)  # expiring on its own made it "already gone"


def test_issue_outside_the_role_is_a_credential_error_without_secrets(issuer: VaultTokenKind, bot_vault_token: str) -> None:
    rogue = VaultTokenScope(description="x", policies=["root"], requesters=["*"], approvers=["U0APPR001"])
    with pytest.raises(CredentialError, match="subset of the role") as caught:
        issuer.issue(approved("payments-read", timedelta(minutes=5)), rogue)
    assert bot_vault_token not in str(caught.value)


def test_the_bot_token_can_do_its_job_and_nothing_more(bot: hvac.Client) -> None:
    assert bot.auth.token.lookup_self()["data"]["policies"] == ["jitbot-bot"]
    refusals = {
        "write a policy": lambda: bot.sys.create_or_update_acl_policy(name="evil", policy='path "*" { capabilities = ["sudo"] }'),
        "change a role": lambda: bot.write_data("auth/token/roles/jitbot-payments-read", data={"allowed_policies": ["root"]}),
        "create a token outside the role": lambda: bot.auth.token.create(policies=["payments-read"], ttl="60s"),
        "ask for a renewable token": lambda: bot.auth.token.create(
            role_name=ROLE, policies=["payments-read"], renewable=True, wrap_ttl="60s"
        ),
        "ask for a periodic token": lambda: bot.auth.token.create(
            role_name=ROLE, policies=["payments-read"], period="24h", wrap_ttl="60s"
        ),
        "pick the token's id": lambda: bot.auth.token.create(
            role_name=ROLE, id="mine", policies=["payments-read"], wrap_ttl="60s"
        ),
        # A stolen bot token cannot take the token itself: wrapping is required on every create path.
        "create an unwrapped token": lambda: bot.auth.token.create(role_name=ROLE, policies=["payments-read"], ttl="60s"),
        "read a secret": lambda: bot.secrets.kv.v2.read_secret_version("payments/stripe", raise_on_deleted_version=True),
        "mount an engine": lambda: bot.sys.enable_secrets_engine("kv", path="bot-kv"),
    }
    for what, attempt in refusals.items():
        with pytest.raises(Forbidden):
            attempt()
            pytest.fail(f"the bot's token could {what}")
    # Through a scope's role, only that scope's policies: not the bot's own, not another scope's, not a mix.
    for policies in (["jitbot-bot"], ["payments-write"], ["payments-read", "payments-write"]):
        with pytest.raises(InvalidRequest, match="subset"):
            bot.auth.token.create(role_name=ROLE, policies=policies, renewable=False, ttl="60s", wrap_ttl="60s")
    # And never past the scope's own cap (payments-read: 1h, one extension of 1h: 2h in all).
    wrapped = bot.auth.token.create(
        role_name=ROLE, policies=["payments-read"], renewable=False, ttl="8h", explicit_max_ttl="8h", wrap_ttl="60s"
    )
    accessor = wrapped["wrap_info"]["wrapped_accessor"]
    assert bot.auth.token.lookup_accessor(accessor)["data"]["ttl"] <= 2 * 3600


ROLE = "jitbot-payments-read"


def test_a_foreign_accessor_is_never_revoked(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    """A database insider swaps a grant's accessor for another token's (a CI pipeline's, say): the bot refuses."""
    ci = vault_root.auth.token.create(policies=["default"], ttl="1h", meta={"purpose": "ci"})["auth"]
    order = approved("payments-read", timedelta(minutes=5))
    with pytest.raises(ForeignCredential, match=order.request_id):
        issuer.revoke(CredentialHandle("vault_token", ci["accessor"]), order.request_id)
    assert vault_root.auth.token.lookup(ci["client_token"])["data"]["accessor"] == ci["accessor"]  # still alive
    other = issuer.issue(approved("payments-read", timedelta(minutes=5)), PAYMENTS_READ)  # another request's grant
    with pytest.raises(ForeignCredential):
        issuer.revoke(other.handle, order.request_id)


@pytest.mark.parametrize(
    "lookalike",
    [
        {"display_name": "ci-pipeline"},  # the metadata says it is the request's; the name is not what jitbot gives it
        {"display_name": "jitbot-{rid}", "request_id": "JIT-SOMEONE0"},  # the name is right; the metadata names another
    ],
)
def test_a_token_with_only_one_of_the_requests_marks_is_never_revoked(
    issuer: VaultTokenKind, vault_root: hvac.Client, lookalike: dict[str, str]
) -> None:
    """Metadata is whatever its creator wrote: the owner check wants the request in the metadata *and* the display
    name jitbot gives that request's token."""
    rid = new_request_id()
    token = vault_root.auth.token.create(
        policies=["default"],
        ttl="1h",
        display_name=lookalike["display_name"].format(rid=rid),
        meta={"request_id": lookalike.get("request_id", rid)},
    )["auth"]
    handle = CredentialHandle("vault_token", token["accessor"])
    with pytest.raises(ForeignCredential, match=r"not revoking it|belongs to JIT-SOMEONE0"):
        issuer.revoke(handle, rid)
    with pytest.raises(ForeignCredential):
        issuer.status(handle, rid)  # reconcile refuses it too
    assert vault_root.auth.token.lookup(token["client_token"])["data"]["accessor"] == token["accessor"]  # still alive
    vault_root.auth.token.revoke_accessor(token["accessor"])


def test_a_revoked_bot_token_makes_the_issuer_unhealthy_and_revoke_fail(
    openbao: OpenBaoDevServer, vault_root: hvac.Client, vault_synced: list[str]
) -> None:
    token = vault_root.auth.token.create(policies=["jitbot-bot"], no_default_policy=True, ttl="1h")["auth"]["client_token"]
    session = VaultSession(vault_client(openbao.addr, token))
    issuer = VaultTokenKind(session.client)
    assert session.healthy()
    vault_root.auth.token.revoke(token)
    assert not session.healthy()
    with pytest.raises(CredentialError, match="Forbidden") as caught:
        issuer.revoke(CredentialHandle("vault_token", "SomeAccessor000000000000"), "JIT-X")
    assert token not in str(caught.value)


def test_approle_login_and_env_is_ignored(
    openbao: OpenBaoDevServer, vault_root: hvac.Client, vault_synced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    if "approle/" not in vault_root.sys.list_auth_methods()["data"]:
        vault_root.sys.enable_auth_method("approle")
    vault_root.auth.approle.create_or_update_approle("jitbot", token_policies=["jitbot-bot"], token_no_default_policy=True)
    role_id = vault_root.auth.approle.read_role_id("jitbot")["data"]["role_id"]
    secret_id = vault_root.auth.approle.generate_secret_id("jitbot")["data"]["secret_id"]

    client = vault_client(openbao.addr, role_id=role_id, secret_id=secret_id)
    assert client.token and client.token != openbao.root_token
    assert client.auth.token.lookup_self()["data"]["policies"] == ["jitbot-bot"]
    assert VaultSession(client).healthy()
    with pytest.raises(CredentialError, match="AppRole"):
        vault_client(openbao.addr, role_id=role_id, secret_id="wrong")
    with pytest.raises(ValueError, match="token"):
        vault_client(openbao.addr)  # never falls back to VAULT_TOKEN or ~/.vault-token


def test_an_unwrapped_answer_is_revoked_and_never_delivered() -> None:
    revoked: list[str] = []
    order = approved("payments-read", timedelta(minutes=5))

    class Token:
        def create(self, **_: object) -> dict[str, object]:
            return {"wrap_info": None, "auth": {"client_token": "s.RealTokenThatMustNotLeak0", "accessor": "acc-1"}}

        def lookup_accessor(self, accessor: str) -> dict[str, object]:
            return {"data": {"meta": {"request_id": order.request_id}, "display_name": f"token-jitbot-{order.request_id}"}}

        def revoke_accessor(self, accessor: str) -> None:
            revoked.append(accessor)

    class Client:
        class auth:  # mimics hvac's attribute path
            token = Token()

    with pytest.raises(CredentialError, match="without wrapping") as caught:
        VaultTokenKind(Client()).issue(order, PAYMENTS_READ)  # type: ignore[arg-type]
    assert revoked == ["acc-1"] and "RealToken" not in str(caught.value)


def test_with_vault_down_issue_and_revoke_raise_and_health_is_false() -> None:
    with OpenBaoDevServer() as server:  # its own server: the session's must stay up for other tests
        session = VaultSession(vault_client(server.addr, server.root_token, timeout=2))
        issuer = VaultTokenKind(session.client)
        assert session.healthy()
        server.stop()

        assert not session.healthy()
        with pytest.raises(CredentialError, match="cannot reach Vault") as caught:
            issuer.issue(approved("payments-read", timedelta(minutes=5)), PAYMENTS_READ)
        assert server.root_token not in str(caught.value)
        with pytest.raises(CredentialError, match="cannot reach Vault"):
            issuer.revoke(CredentialHandle("vault_token", "SomeAccessor000000000000"), "JIT-X")

        server.start()  # back on the same address (empty again: dev mode keeps nothing)
        assert session.healthy()


def test_keep_alive_renews_the_bots_own_token(openbao, vault_root, vault_synced):
    import time

    created = vault_root.auth.token.create(policies=["jitbot-bot"], no_default_policy=True, ttl="6s", renewable=True)
    token = created["auth"]["client_token"]
    issuer = VaultSession(vault_client(openbao.addr, token))
    issuer.keep_alive()  # fresh: nothing to do yet
    time.sleep(3.5)  # past half its life: the real TTL is what is under test
    before = vault_root.auth.token.lookup(token)["data"]["ttl"]
    issuer.keep_alive()
    after = vault_root.auth.token.lookup(token)["data"]["ttl"]
    assert before <= 3 and after >= 5


def test_a_ttl_capped_by_a_drifted_role_is_refused_and_the_token_revoked(issuer: VaultTokenKind, vault_root: hvac.Client) -> None:
    """Someone lowered a scope role's cap by hand: Vault would silently grant less than approved. The bot refuses."""
    role = "jitbot-k8s-prod-read"
    before = vault_root.auth.token.read_role(role)["data"]["token_explicit_max_ttl"]
    vault_root.write_data(f"auth/token/roles/{role}", data={"token_explicit_max_ttl": 60})
    try:
        order = approved("k8s-prod-read", timedelta(minutes=10))
        with pytest.raises(CredentialError, match="caps it"):
            issuer.issue(order, K8S_PROD_READ)
        owners = [
            (vault_root.auth.token.lookup_accessor(a)["data"].get("meta") or {}).get("request_id")
            for a in vault_root.list("auth/token/accessors")["data"]["keys"]
        ]
        assert order.request_id not in owners  # the short token was revoked, not left to live
    finally:
        vault_root.write_data(f"auth/token/roles/{role}", data={"token_explicit_max_ttl": before})


def test_an_extension_after_a_backward_clock_jump_never_outlives_the_approved_total(
    issuer: VaultTokenKind, vault_root: hvac.Client
) -> None:
    """The bot's clock jumped an hour back between issue and extension: by its reckoning 75m are left, by Vault's
    (the token's own remaining TTL) 10m plus the 5m added. Vault's reckoning wins."""
    order = approved("payments-read", timedelta(minutes=10))
    first = issuer.issue(order, PAYMENTS_READ)
    wrong_now = datetime.now(UTC) - timedelta(hours=1)
    until = order.until + timedelta(minutes=5)
    extended = issuer.extend(first.handle, replace(order, ttl=until - wrong_now, until=until, extends_by=timedelta(minutes=5)),
                             PAYMENTS_READ)  # fmt: skip
    ttl = vault_root.auth.token.lookup_accessor(extended.handle.id)["data"]["ttl"]
    assert 14 * 60 <= ttl <= 15 * 60
