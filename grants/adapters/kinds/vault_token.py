"""The `vault_token` kind: a response-wrapped, non-renewable orphan token from the scope's own token role."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import hvac
from hvac.exceptions import InvalidPath, InvalidRequest

from grants.adapters.vault_client import BackendError, describe, vault_errors
from grants.catalog import Catalog, Scope
from grants.catalog_kinds import VaultTokenScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    ForeignCredential,
    IssuedCredential,
    IssueOrder,
    Orphan,
    Wrapping,
)
from grants.durations import format_duration

KIND = "vault_token"
# OpenBao answers an unknown, revoked or just-expired accessor with one of these (200-with-warning or 400).
TOKEN_GONE = ("invalid accessor", "no token found", "token not found")  # unwrapped, expired or revoked


_DISPLAY_UNSAFE = re.compile(r"[^a-zA-Z0-9-]")


def grant_display_name(request_id: str) -> str:
    """The display name a vault_token grant is created with; the owner check expects it back."""
    return f"jitbot-{request_id}"


def stored_display_name(display_name: str) -> str:
    """What Vault keeps of a display name given at create: `token-` prefixed, other characters made `-`."""
    return _DISPLAY_UNSAFE.sub("-", f"token-{display_name}").removesuffix("-")


def token_role(scope_name: str) -> str:
    """One token role per scope: a stolen bot token can mint nothing beyond each scope's own policies and cap."""
    return f"jitbot-{scope_name}"


def role_settings(scope: VaultTokenScope) -> dict[str, object]:
    """The token role a scope's grants are created through: it bounds what even a compromised bot could issue."""
    allowed = set(scope.policies) | (set() if scope.no_default_policy else {"default"})
    return {
        "allowed_policies": sorted(allowed),  # a grant's policies must be a subset: never another scope's
        "orphan": True,  # a grant outlives neither more nor less than its own TTL, not the bot's token
        "renewable": False,  # nobody can stretch a grant past its approval
        # An extension re-issues for the rest of the grant, up to max_total_duration: the cap must allow it.
        "token_explicit_max_ttl": int(scope.max_total.total_seconds()),
        "token_type": "service",  # batch tokens have no accessor and so could not be revoked early
    }


class Redeemer(Protocol):
    """Vault's control groups as the kinds see them (grants/adapters/control_groups.py)."""

    def redeem(self, request_id: str, wrap_ttl: timedelta) -> dict[str, Any]:
        """The approved control-group request's answer, once, re-wrapped; raises BackendError/CredentialError otherwise."""
        ...

    def release(self, request_id: str) -> dict[str, Any]:
        """The approved control-group request's answer, once, as Vault gave it (a public one: a certificate)."""
        ...


def create_token(client: hvac.Client, order: IssueOrder, scope: VaultTokenScope, wrap_ttl: timedelta | None, display: str) -> Any:
    """The one token create of a grant (through the scope's role, wrapped); a control group answers it pending (its
    own wrapping then: a response wrap inside a control group's answer comes back dead in OpenBao 2.7)."""
    lifetime = f"{int(order.ttl.total_seconds())}s"
    return client.auth.token.create(
        role_name=token_role(order.scope),  # the role pins orphan, non-renewable, allowed policies, max TTL
        policies=list(scope.policies),
        no_default_policy=scope.no_default_policy,
        ttl=lifetime,
        explicit_max_ttl=lifetime,  # with renewable=False: it can never outlive the approval
        renewable=False,
        display_name=display,
        meta={"request_id": order.request_id, "requester": order.requester, "scope": order.scope},
        wrap_ttl=f"{int(wrap_ttl.total_seconds())}s" if wrap_ttl else None,  # the bot only holds the wrapping token
    )


def wrapping_of(wrap_info: dict[str, Any], wrap_ttl: timedelta) -> Wrapping | None:
    """The wrapping token by its accessor and expiry (what the credential check looks up), never the token."""
    accessor = wrap_info.get("accessor")
    ttl = timedelta(seconds=int(wrap_info.get("ttl") or wrap_ttl.total_seconds()))
    return Wrapping(str(accessor), datetime.now(UTC) + ttl) if accessor else None


def stanza_rules(capabilities: Sequence[str], free: Sequence[str], fixed: Mapping[str, str] | None = None) -> str:
    """The body of a policy path stanza: its capabilities, the parameters it allows with any value (`free`) and
    those it pins to one value (`fixed`, as HCL)."""
    allowed = [f'    "{p}" = []\n' for p in free] + [f'    "{p}" = [{v}]\n' for p, v in (fixed or {}).items()]
    listed = ", ".join(f'"{c}"' for c in capabilities)
    return f"  capabilities = [{listed}]\n  allowed_parameters = {{\n" + "".join(allowed) + "  }\n"


def guarded_create_rules() -> str:
    """The rules a control-group stanza on a token role's create path keeps: the `jitbot-*` glob's parameters (an exact
    path wins over the glob). No wrapping rule: the control group's answer is its own wrapping. Also the database
    kind's reader tokens."""
    free = ("policies", "no_default_policy", "ttl", "explicit_max_ttl", "display_name", "meta", "no_parent", "num_uses")
    return stanza_rules(("create", "update"), free, {"renewable": "false"})


class VaultTokenKind:
    kind = KIND

    def __init__(
        self,
        client: hvac.Client,
        wrap_ttl: timedelta = timedelta(minutes=5),
        cli: str = "bao",
        display_name: Callable[[str], str] = grant_display_name,
        gate: Redeemer | None = None,
    ):
        self._client, self._wrap_ttl, self._cli = client, wrap_ttl, cli
        self._gate = gate  # vault-enforced scopes: where the approved control-group answer is redeemed
        self._display_name = display_name  # what this kind names its tokens by request: checked before revoking

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Create a token for exactly `scope`'s policies, living exactly `order.ttl`, wrapped for delivery."""
        if not isinstance(scope, VaultTokenScope):
            raise CredentialError(f"{order.scope} is not a vault_token scope")
        seconds = int(order.ttl.total_seconds())
        if seconds <= 0:
            raise CredentialError(f"{order.request_id}: no time left to grant")
        try:
            if scope.vault_enforced:
                # The control group's pending request was opened when the request was made; Vault releases its
                # answer (the wrapped token) only once the approvers' own identities authorized it.
                if self._gate is None:
                    raise CredentialError(f"{order.scope} is enforced by Vault, but this bot has no control groups wired")
                response = self._gate.redeem(order.request_id, self._wrap_ttl)
            else:
                response = create_token(self._client, order, scope, self._wrap_ttl, self._display_name(order.request_id))
        except BackendError as exc:
            raise CredentialError(
                f"Vault refused to issue a token for {order.request_id} ({order.scope}): {describe(exc)}"
            ) from None
        wrap_info = response.get("wrap_info") if isinstance(response, dict) else None
        if not wrap_info:
            self._discard_unwrapped(response, order.request_id)
            raise CredentialError(f"Vault answered {order.request_id} without wrapping the token; nothing was delivered")
        handle = CredentialHandle(KIND, wrap_info["wrapped_accessor"])  # the real token's accessor, to revoke by
        self._check_granted_ttl(handle, order, seconds)
        wrapping = wrap_info["token"]
        return IssuedCredential(
            handle=handle,
            delivery=Delivery(
                summary="a Vault token",
                lines=(
                    f"It cannot be renewed. It is response-wrapped: unwrap it once, within {format_duration(self._wrap_ttl)}:",
                ),
                code=f"{self._cli} unwrap {wrapping}",
                secret=wrapping,
            ),
            valid_until=order.until,
            wrapping=wrapping_of(wrap_info, self._wrap_ttl),
        )

    def hold(self, order: IssueOrder, scope: Scope) -> Any:
        """A vault-enforced grant's call, made when it is requested: Vault answers it pending (a control group)."""
        if not isinstance(scope, VaultTokenScope):
            raise CredentialError(f"{order.scope} is not a vault_token scope")
        try:
            return create_token(self._client, order, scope, None, self._display_name(order.request_id))
        except BackendError as exc:
            raise CredentialError(f"Vault refused the call of {order.request_id}: {describe(exc)}") from None

    def guarded_path(self, scope_name: str, scope: Scope) -> tuple[str, str] | None:
        """The path a control group guards for this scope, and the rules it keeps there (an exact path wins over the
        bot policy's `jitbot-*` glob, so it repeats the glob's wrapping and parameters)."""
        if not isinstance(scope, VaultTokenScope):
            return None
        return f"auth/token/create/{token_role(scope_name)}", guarded_create_rules()

    def _check_granted_ttl(self, handle: CredentialHandle, order: IssueOrder, asked: int) -> None:
        """Vault silently caps a TTL at the role's maximum: a grant shorter than approved would end early while the
        DM and the trail said otherwise. Compare what Vault granted with what was asked for; refuse a mismatch."""
        try:
            granted = int(self._client.auth.token.lookup_accessor(handle.id)["data"]["ttl"])
        except BackendError as exc:
            self._revoke_quietly(handle, order.request_id)
            raise CredentialError(f"Vault could not confirm the token of {order.request_id}: {describe(exc)}") from None
        if not asked - 5 <= granted <= asked:
            self._revoke_quietly(handle, order.request_id)
            raise CredentialError(
                f"Vault granted {granted}s instead of {asked}s for {order.request_id}: the token role "
                f"{token_role(order.scope)} caps it; run `jitbot vault sync`"
            )

    def _revoke_quietly(self, handle: CredentialHandle, request_id: str) -> None:
        try:
            self.revoke(handle, request_id)
        except CredentialError:
            pass  # its own TTL still ends it

    def _discard_unwrapped(self, response: object, request_id: str) -> None:
        # A proxy that strips X-Vault-Wrap-TTL would hand us the real token: never deliver it, end it at once.
        auth = response.get("auth") if isinstance(response, dict) else None
        accessor = auth.get("accessor") if isinstance(auth, dict) else None
        if accessor:
            self._revoke_quietly(CredentialHandle(KIND, accessor), request_id)

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """Revoke by accessor; already gone counts as success. One call when the core proved by the handle's seal that
        it is this request's token, else the token is looked up first (`check_owner`)."""
        if not handle.id:
            raise CredentialError("no accessor to revoke")
        if not proven and not self.check_owner(handle, request_id):
            return  # already gone
        try:
            self._client.auth.token.revoke_accessor(handle.id)
        except InvalidRequest as exc:
            if _gone(exc):
                return
            raise CredentialError(f"Vault refused to revoke accessor {handle.id}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"Vault could not revoke accessor {handle.id}: {describe(exc)}") from None

    def _owner(self, handle: CredentialHandle) -> tuple[str, str] | None:
        """The request a live token names (its metadata) and its display name, or None when the token is gone."""
        try:
            data = self._client.auth.token.lookup_accessor(handle.id)["data"]
        except InvalidRequest as exc:
            if _gone(exc):
                return None
            raise CredentialError(f"Vault refused to look up accessor {handle.id}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"Vault could not look up accessor {handle.id}: {describe(exc)}") from None
        return str((data.get("meta") or {}).get("request_id") or ""), str(data.get("display_name") or "")

    def check_owner(self, handle: CredentialHandle, request_id: str) -> bool:
        """True when the token is alive and is `request_id`'s; raises ForeignCredential when it is someone else's."""
        found = self._owner(handle)
        if found is None:
            return False
        owner, display = found
        # The row names a token this request never had (a database insider swapped it): revoking it would end an
        # unrelated token while the real grant lives on. Both marks must be this request's: metadata anyone creating
        # a token may set, the display name jitbot gives it; a token with only one of them is not one jitbot issued.
        if owner != request_id:
            raise ForeignCredential(
                f"accessor {handle.id} belongs to {owner or 'a token jitbot did not issue'}, not {request_id}"
            )
        if display != stored_display_name(self._display_name(request_id)):
            raise ForeignCredential(
                f"accessor {handle.id} names {request_id} in its metadata but is called `{display}`, not what jitbot "
                "names that request's token: not revoking it"
            )
        return True

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        # Vault cannot raise a token's explicit max TTL: a new token for the rest of the time replaces it.
        return self.issue(self.on_vault_clock(handle, order), scope)

    def on_vault_clock(self, handle: CredentialHandle, order: IssueOrder) -> IssueOrder:
        """The order of an extension with the rest of the time measured on Vault's clock (the old token's remaining
        TTL plus what was added), never only on ours: a clock that jumped back would otherwise let the new token
        outlive the approval. Also used for the database kind's reader tokens."""
        if order.extends_by is not None:
            remaining = self._remaining(handle)
            if remaining is not None:
                vault_ttl = remaining + order.extends_by
                if vault_ttl < order.ttl:
                    order = replace(order, ttl=vault_ttl)
        return order

    def _remaining(self, handle: CredentialHandle) -> timedelta | None:
        try:
            return timedelta(seconds=int(self._client.auth.token.lookup_accessor(handle.id)["data"]["ttl"]))
        except BackendError:
            return None  # gone or unreachable: our own clock is all there is

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        try:
            return CredentialStatus.ALIVE if self.check_owner(handle, request_id) else CredentialStatus.GONE
        except ForeignCredential:
            raise
        except CredentialError:
            return CredentialStatus.UNKNOWN

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return []  # a token ends by itself at its TTL

    def sync(self, catalog: Catalog) -> list[str]:
        return [self._sync_role(name, scope) for name, scope in catalog.scopes.items() if isinstance(scope, VaultTokenScope)]

    def _sync_role(self, scope_name: str, scope: VaultTokenScope) -> str:
        return write_token_role(self._client, token_role(scope_name), role_settings(scope))


def write_token_role(client: hvac.Client, role: str, wanted: dict[str, object]) -> str:
    """Write (idempotently) one scope's token role; the line says what changed. Used by every kind with token roles."""
    try:
        try:
            current = client.auth.token.read_role(role)["data"]
        except InvalidPath:
            current = None
        if current is not None and all(current.get(key) == value for key, value in wanted.items()):
            return f"token role {role}: unchanged"
        # One write of every setting; hvac's create_or_update_role cannot set token_type.
        client.write_data(f"auth/token/roles/{role}", data=wanted)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write token role {role}: {describe(exc)}") from None
    summary = f"policies {', '.join(wanted['allowed_policies'])}; max TTL {wanted['token_explicit_max_ttl']}s"  # type: ignore[arg-type]
    return f"token role {role}: {'created' if current is None else 'updated'} ({summary})"


def _gone(exc: InvalidRequest) -> bool:
    return any(marker in vault_errors(exc).lower() for marker in TOKEN_GONE)
