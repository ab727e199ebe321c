"""Vault control groups for `approval = "vault"` scopes: the pending request per grant, its approvers, its release."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

import hvac
from hvac.exceptions import InvalidPath, VaultError
from hvac.utils import raise_for_error
from requests.exceptions import RequestException

from grants.adapters.kinds.identity import UnlinkedPerson, requester_entity_id
from grants.adapters.vault_client import BackendError, describe
from grants.catalog import Catalog, Scope
from grants.credentials import CredentialError, CredentialKinds, HoldUsed, IssueOrder

# Where the pending requests' wrapping tokens wait (KV v2): never in the database, whose insider must get nothing.
HOLD_MOUNT, HOLD_PREFIX = "secret", "jitbot/control-groups"
APPROVER_POLICY = "jitbot-approver"
# A signed-in approver's token may authorize a control-group request, read it, and end itself: nothing else.
APPROVER_POLICY_TEXT = """# jitbot-approver: the minute-long token of an approver who signed in on jitbot's page (written by `jitbot vault sync`).
path "sys/control-group/authorize" { capabilities = ["update"] }
path "sys/control-group/request" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
"""


def approver_group(scope_name: str, step: int) -> str:
    """The identity group holding the approvers' entities for one step of one vault-enforced scope."""
    return f"jitbot-approvers-{scope_name}-{step + 1}"


def control_group_ttl(catalog: Catalog) -> timedelta:
    # The pending request must outlive the request's own pending timeout, or approvals would land on nothing.
    return catalog.settings.pending_timeout + timedelta(minutes=10)


def bot_policy_stanzas(catalog: Catalog, kinds: CredentialKinds) -> str:
    """What `jitbot vault sync` appends to the bot's policy: one exact path per vault-enforced scope, with the control
    group. Without the top-level `control_group { ttl }` OpenBao silently answers nothing (no data, no wrap_info)."""
    ttl = int(control_group_ttl(catalog).total_seconds())
    out = []
    for name, scope in sorted(catalog.scopes.items()):
        guarded = kinds.guarded_path(name, scope) if scope.vault_enforced else None
        if guarded is None:
            continue
        path, rules = guarded
        factors = "".join(
            f'\n    factor "step-{i + 1}" {{\n      controlled_capabilities = ["create", "update"]\n'
            f'      identity {{\n        group_names = ["{approver_group(name, i)}"]\n        approvals = {step.approvals}\n'
            "      }\n    }"
            for i, step in enumerate(scope.steps)
        )
        out.append(
            f'\n# scope {name}: approval = "vault" (written by `jitbot vault sync`; edit the catalog, not this stanza)\n'
            f'path "{path}" {{\n{rules}  control_group = {{\n    ttl = "{ttl}s"{factors}\n  }}\n}}\n'
        )
    if any(scope.vault_enforced or scope.step_up or any(s.step_up for s in scope.steps) for scope in catalog.scopes.values()):
        mount = catalog.settings.step_up.oidc_mount
        # The step-up page's Content-Security-Policy names the IdP's origin, read from the OIDC method's discovery URL.
        out.append(
            f'\n# step-up sign-in (written by `jitbot vault sync`)\npath "auth/{mount}/config" {{ capabilities = ["read"] }}\n'
        )
    return "".join(out)


class ControlGroupHolds:
    """The pending control-group requests Vault holds, kept in KV: released once approved (the kinds' `Redeemer`),
    authorized by approvers, or discarded. It needs no kinds, so the kinds are built with one of these."""

    def __init__(self, client: hvac.Client, alias_mount: str = "slack"):
        self._client, self._alias_mount = client, alias_mount

    # the request's life ---------------------------------------------------------------------------

    def keep(self, order: IssueOrder, response: dict[str, Any] | None) -> None:
        """Keep what Vault answered the grant's call with: it must be pending, and the pending request is kept."""
        wrap = (response or {}).get("wrap_info") or {}
        if wrap.get("wrapped_accessor") or not wrap.get("accessor"):
            # The bot's policy lacks the control group (not synced): Vault issued a token without anyone's approval.
            if wrap.get("wrapped_accessor"):
                self._revoke(wrap["wrapped_accessor"])
            raise CredentialError(
                f"Vault did not hold {order.request_id} for its approvers: the bot's policy has no control group for "
                f"{order.scope}; run `jitbot vault sync`"
            )
        self._kv_write(order.request_id, {"token": wrap["token"], "accessor": wrap["accessor"]})

    def accessor(self, request_id: str) -> str:
        """The control-group request's accessor (what approvers authorize); CredentialError when there is none."""
        return str(self._hold(request_id)["accessor"])

    def approved(self, request_id: str) -> bool:
        """Vault's own answer whether the request's approvers authorized it (the database's says nothing here)."""
        try:
            found = self._client.write_data("sys/control-group/request", data={"accessor": self.accessor(request_id)})
        except BackendError as exc:
            raise CredentialError(f"cannot read the control-group request of {request_id}: {describe(exc)}") from None
        return bool((found.get("data") or {}).get("approved"))

    def authorize(self, request_id: str, approver_token: str, entity_id: str | None = None) -> bool:
        """Authorize with the approver's own token (never the bot's); True when that completed the approval. With
        `entity_id`, Vault must have counted that entity: OpenBao answers a non-member's authorization with success
        and counts nothing, which a bot that trusted the answer would record as an approval."""
        accessor = self.accessor(request_id)
        try:
            found = self._as(
                approver_token, "sys/control-group/authorize", {"accessor": accessor}, f"the authorization of {request_id}"
            )
        except CredentialError:
            if entity_id is None or entity_id not in self._authorizers(request_id, accessor):
                raise
            return self.approved(request_id)  # counted by an earlier try whose approval the bot did not record
        if entity_id is not None and entity_id not in self._authorizers(request_id, accessor):
            raise CredentialError(
                f"Vault refused the authorization of {request_id}: it did not count your Vault entity {entity_id}, "
                "which is not in the approver group of this scope (jitbot-approvers-<scope>-<step>)"
            )
        return bool((found.get("data") or {}).get("approved"))

    def _authorizers(self, request_id: str, accessor: str) -> set[str]:
        """The entities Vault counted on the control-group request (read with the bot's token)."""
        try:
            found = self._client.write_data("sys/control-group/request", data={"accessor": accessor})
        except BackendError as exc:
            raise CredentialError(f"cannot read the control-group request of {request_id}: {describe(exc)}") from None
        return {str(a.get("entity_id")) for a in (found.get("data") or {}).get("authorizations") or []}

    def redeem(self, request_id: str, wrap_ttl: timedelta) -> dict[str, Any]:
        """The approved request's answer, once, re-wrapped for the requester. Vault would answer an approved request
        again and again (each time a new credential), so its wrapping token is revoked at once and the hold deleted:
        one approval, one credential. The bot holds the released token only between the unwrap and its re-wrap."""
        answer = self.release(request_id)
        auth = answer.get("auth") or {}
        released = {"token": auth["client_token"], "accessor": auth["accessor"]} if auth else answer.get("data") or {}
        try:
            wrapped = self._client.write_data("sys/wrapping/wrap", data=released, wrap_ttl=f"{int(wrap_ttl.total_seconds())}s")
        except BackendError as exc:
            if auth:
                self._revoke(str(auth["accessor"]))  # undeliverable: it must not live on
            raise CredentialError(f"cannot wrap the released credential of {request_id}: {describe(exc)}") from None
        wrap = dict(wrapped["wrap_info"])
        wrap["wrapped_accessor"] = auth.get("accessor", "")
        return {"wrap_info": wrap}

    def release(self, request_id: str) -> dict[str, Any]:
        """The approved request's answer (the held call, made now by Vault), once: its wrapping token is revoked and
        the hold deleted right after, so one approval makes one credential (for kinds whose answer is public, such as
        a certificate, that is the whole release)."""
        hold = self._hold(request_id)
        # The wrapping token goes in the header: in the body OpenBao refuses it.
        try:
            answer = self._as(str(hold["token"]), "sys/wrapping/unwrap", None, f"the release of {request_id} (approved?)")
        except CredentialError:
            self._hold(request_id)  # HoldUsed when another issuer released it meanwhile (it deletes the hold next)
            raise
        self.discard(request_id)
        return answer

    def discard(self, request_id: str) -> None:
        """End the pending request (revoke its wrapping token) and forget it; nothing there is fine."""
        try:
            hold = self._hold(request_id)
        except CredentialError:
            return
        self._revoke(str(hold["accessor"]))
        try:
            self._client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=f"{HOLD_PREFIX}/{request_id}", mount_point=HOLD_MOUNT
            )
        except BackendError as exc:
            raise CredentialError(f"cannot forget the control-group request of {request_id}: {describe(exc)}") from None

    # approvers --------------------------------------------------------------------------------------

    def entity_of(self, slack_user: str) -> str | None:
        try:
            return requester_entity_id(self._client, slack_user, self._alias_mount)
        except UnlinkedPerson:
            return None

    def missing_approvers(self, scope_name: str, approvers: Collection[str]) -> list[str]:
        """The approvers (Slack IDs) Vault would not count: no entity linked, or not in the scope's groups (not synced)."""
        members: set[str] = set()
        for name in self._group_names(scope_name):
            group = self._read(f"identity/group/name/{name}") or {}
            members.update(group.get("member_entity_ids") or [])
        return sorted(a for a in approvers if (entity := self.entity_of(a)) is None or entity not in members)

    def _group_names(self, scope_name: str) -> list[str]:
        try:
            listed = self._client.list("identity/group/name") or {}
        except BackendError as exc:
            raise CredentialError(f"cannot list Vault's identity groups: {describe(exc)}") from None
        keys = (listed.get("data") or {}).get("keys") or []
        return [k for k in keys if k.startswith(f"jitbot-approvers-{scope_name}-") and k.rsplit("-", 1)[-1].isdigit()]

    def _as(self, token: str, path: str, data: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """One call with another token than the bot's (an approver's, a wrapping token), on the bot's HTTP session."""
        try:
            response = self._client.session.post(
                f"{self._client.url}/v1/{path}", json=data, headers={"X-Vault-Token": token}, timeout=10
            )
        except RequestException as exc:
            raise CredentialError(f"Vault could not be reached for {what}: {type(exc).__name__}") from None
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            try:
                raise_for_error("post", path, response.status_code, errors=(body or {}).get("errors"))
            except VaultError as exc:
                raise CredentialError(f"Vault refused {what}: {describe(exc)}") from None
        return body if isinstance(body, dict) else {}

    # storage --------------------------------------------------------------------------------------

    def _hold(self, request_id: str) -> dict[str, Any]:
        try:
            read = self._client.secrets.kv.v2.read_secret_version(
                path=f"{HOLD_PREFIX}/{request_id}", mount_point=HOLD_MOUNT, raise_on_deleted_version=True
            )
        except InvalidPath:
            raise HoldUsed(f"{request_id} has no control-group request in Vault (already used, or never opened)") from None
        except BackendError as exc:
            raise CredentialError(f"cannot read the control-group request of {request_id}: {describe(exc)}") from None
        data: dict[str, Any] = read["data"]["data"]
        return data

    def _kv_write(self, request_id: str, data: dict[str, str]) -> None:
        try:
            self._client.secrets.kv.v2.create_or_update_secret(
                path=f"{HOLD_PREFIX}/{request_id}", secret=data, cas=0, mount_point=HOLD_MOUNT
            )  # cas=0: never over another request's hold
        except BackendError as exc:
            self._revoke(data["accessor"])
            raise CredentialError(f"cannot keep the control-group request of {request_id}: {describe(exc)}") from None

    def _revoke(self, accessor: str) -> None:
        try:
            self._client.auth.token.revoke_accessor(accessor)
        except BackendError:
            pass  # its own TTL ends it

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            response = self._client.read(path)
        except InvalidPath:
            return None
        except BackendError as exc:
            raise CredentialError(f"cannot read {path}: {describe(exc)}") from None
        return ((response or {}).get("data") if isinstance(response, dict) else None) or None


class VaultControlGroups(ControlGroupHolds):
    """Implements the ControlGroups port: opens each vault-enforced grant's pending request through the kinds. The
    kinds release it through a `ControlGroupHolds` of their own (the held state is in Vault, not in the object), so
    they are built first and this object is built complete with them: no cycle to close after construction."""

    def __init__(self, client: hvac.Client, kinds: CredentialKinds, alias_mount: str = "slack"):
        super().__init__(client, alias_mount)
        self._kinds = kinds

    def open(self, order: IssueOrder, scope: Scope) -> None:
        """Make the grant's call with the bot's token; Vault must answer it pending, and the pending request is kept."""
        self.keep(order, self._kinds.hold(order, scope))


def sync_control_groups(client: hvac.Client, catalog: Catalog) -> list[str]:
    """`jitbot vault sync`'s part for vault-enforced scopes: one identity group of approvers' entities per scope and
    step, the approvers' minute-long token policy, and the OIDC role they sign in with; every unlinked approver named."""
    gates = ControlGroupHolds(client, alias_mount=catalog.settings.identity_alias_mount)
    lines: list[str] = []
    enforced = {name: scope for name, scope in catalog.scopes.items() if scope.vault_enforced}
    for name, scope in sorted(enforced.items()):
        for i, step in enumerate(scope.steps):
            people = sorted(catalog.members(step.approvers))
            entities = {p: gates.entity_of(p) for p in people}
            lines += [
                f"warning: {name}: approver {p} has no Vault entity (no alias `{p}` on the "
                f"`{catalog.settings.identity_alias_mount}` mount); Vault will not count them"
                for p, e in entities.items()
                if e is None
            ]
            group = approver_group(name, i)
            ids = sorted({e for e in entities.values() if e})
            try:
                client.write_data(
                    f"identity/group/name/{group}", data={"type": "internal", "member_entity_ids": ids, "policies": []}
                )
            except BackendError as exc:
                raise CredentialError(f"vault sync: cannot write identity group {group}: {describe(exc)}") from None
            lines.append(f"identity group {group}: {len(ids)} approver entit{'y' if len(ids) == 1 else 'ies'}")
    if any(scope.vault_enforced or scope.step_up for scope in catalog.scopes.values()):
        lines += _sync_sign_in(client, catalog)
    return lines


def _sync_sign_in(client: hvac.Client, catalog: Catalog) -> list[str]:
    """The approvers' policy and the OIDC auth role of the step-up page (the mount itself is the operator's: docs/catalog.md)."""
    step_up = catalog.settings.step_up
    try:
        client.sys.create_or_update_acl_policy(name=APPROVER_POLICY, policy=APPROVER_POLICY_TEXT)
        mounts = client.read("sys/auth") or {}
        if f"{step_up.oidc_mount}/" not in (mounts.get("data") or mounts):
            return [
                f"warning: no auth method at `{step_up.oidc_mount}/`: enable the OIDC auth method there for step-up "
                "sign-in (docs/catalog.md, “Approvals enforced by Vault, and step-up sign-in”)"
            ]
        seconds = int(step_up.max_age.total_seconds())
        client.write_data(
            f"auth/{step_up.oidc_mount}/role/{step_up.oidc_role}",
            data={
                "role_type": "oidc",
                "user_claim": step_up.user_claim,
                "oidc_scopes": [s for s in step_up.oidc_scopes if s != "openid"],
                "allowed_redirect_uris": [callback_url(catalog)],
                "max_age": seconds,  # Vault asks the IdP for a sign-in this fresh and checks auth_time
                "claim_mappings": {"iss": "idp_issuer", "sub": "idp_subject"},  # evidence, on the token's metadata
                "token_policies": [APPROVER_POLICY],
                "token_no_default_policy": True,  # nothing beyond authorizing a control-group request
                "token_ttl": 60,
                "token_max_ttl": 60,
                "token_type": "service",
            },
        )
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write the step-up sign-in role: {describe(exc)}") from None
    return [
        f"policy {APPROVER_POLICY}: written",
        f"oidc role {step_up.oidc_mount}/{step_up.oidc_role}: written (max_age {seconds}s)",
    ]


def callback_url(catalog: Catalog) -> str:
    """Where the IdP sends the approver back: jitbot's page under `web_url`."""
    return f"{catalog.settings.web_url.rstrip('/')}/stepup/callback"
