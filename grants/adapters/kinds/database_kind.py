"""The `database` kind behind the seam: a wrapped dynamic DB login per grant, ended by revoking its reader token."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac

from grants.adapters.kinds.database import (
    IssuedDatabaseCredential,
    hold_reader_token,
    issue_database_credential,
    read_with_reader,
    reader_display_name,
    sync_database,
)
from grants.adapters.kinds.database_leases import SETTLE, pending, wait_revoked
from grants.adapters.kinds.vault_token import Redeemer, VaultTokenKind, guarded_create_rules, token_role
from grants.catalog import Catalog, Scope
from grants.catalog_kinds import DatabaseScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    IssuedCredential,
    IssueOrder,
    Orphan,
    Wrapping,
)
from grants.durations import format_duration

KIND = "database"
_MAX_HANDLE = 128 - len(KIND) - 1  # the `accessor` column holds `kind:id` in 128 characters


def handle_of(accessor: str, lease: str) -> CredentialHandle:
    """`<reader accessor>@<lease>`: what a revoke ends and what it then checks is gone (never a secret)."""
    if len(f"{accessor}@{lease}") > _MAX_HANDLE and not lease.endswith("/"):
        lease = lease.rsplit("/", 1)[0] + "/"  # the role's prefix: a revoke waits for all its pending leases
    if len(f"{accessor}@{lease}") > _MAX_HANDLE:
        raise CredentialError(f"the database role's name is too long to keep its lease ({lease}); shorten it")
    return CredentialHandle(KIND, f"{accessor}@{lease}" if lease else accessor)


def parts(handle: CredentialHandle) -> tuple[CredentialHandle, str]:
    """The reader token's handle, and the lease reference (empty for a handle stored before leases were kept)."""
    accessor, _, lease = handle.id.partition("@")
    return CredentialHandle(KIND, accessor), lease


class DatabaseKind:
    kind = KIND

    def __init__(
        self,
        client: hvac.Client,
        wrap_ttl: timedelta = timedelta(minutes=5),
        cli: str = "bao",
        verify: bool | str = True,
        settle: float = SETTLE,
        gate: Redeemer | None = None,
    ):
        self._client, self._wrap_ttl, self._cli, self._verify, self._settle = client, wrap_ttl, cli, verify, settle
        self._gate = gate  # vault-enforced scopes: where the approved reader token create is released
        # Revocation and reconcile go by the reader token's accessor, exactly as for a vault_token grant (including
        # the owner check against the token's `request_id` metadata and the display name readers are given).
        self._by_accessor = VaultTokenKind(client, wrap_ttl=wrap_ttl, cli=cli, display_name=reader_display_name)

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        if not isinstance(scope, DatabaseScope):
            raise CredentialError(f"{order.scope} is not a database scope")
        if order.ttl.total_seconds() < 1:
            raise CredentialError(f"{order.request_id}: no time left to grant")
        issued = self._login(order, scope)
        lines = [
            f"Unwrap it once, within {format_duration(self._wrap_ttl)}: it gives a `username` and a `password`.",
            # The lease shows a longer TTL than the grant: say the real end so nobody plans around the wrong one.
            f"The login ends at {order.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC; its open sessions are ended then "
            "(Vault's lease shows a longer TTL: ignore it).",
        ]
        if scope.connect_hint:
            lines.append(f"Connect with: `{scope.connect_hint}`")
        try:
            handle = handle_of(issued.accessor, issued.lease)
        except CredentialError:
            self._by_accessor.revoke(CredentialHandle(KIND, issued.accessor), order.request_id)  # nothing half-done
            raise
        return IssuedCredential(
            handle=handle,
            delivery=Delivery(
                summary="a database login",
                lines=tuple(lines),
                code=f"{self._cli} unwrap {issued.wrapping_token}",
                secret=issued.wrapping_token,
            ),
            valid_until=order.until,
            facts={"database_role": scope.database_role, "database_mount": scope.database_mount},
            wrapping=Wrapping(issued.wrap_accessor, datetime.now(UTC) + self._wrap_ttl) if issued.wrap_accessor else None,
        )

    def _login(self, order: IssueOrder, scope: DatabaseScope) -> IssuedDatabaseCredential:
        role, mount = scope.database_role, scope.database_mount
        if not scope.vault_enforced:
            return issue_database_credential(
                self._client, role, order.ttl, order.request_id, order.requester, order.scope,
                mount=mount, wrap_ttl=self._wrap_ttl, verify=self._verify,
            )  # fmt: skip
        # The reader token's create was held by the control group since the request was made; Vault makes it (its TTL
        # starting now) only once the approvers' own identities authorized it, and only once (`release`). The bot
        # then reads the login with it as for any grant: wrapped, so the bot never sees the password.
        if self._gate is None:
            raise CredentialError(f"{order.scope} is enforced by Vault, but this bot has no control groups wired")
        auth = self._gate.release(order.request_id).get("auth")
        if not isinstance(auth, dict) or not auth.get("accessor"):
            raise CredentialError(f"Vault released no reader token for {order.request_id}; nothing was issued")
        seconds = int(order.ttl.total_seconds())
        return read_with_reader(
            self._client, auth, seconds, order.request_id, role, order.scope,
            mount=mount, wrap_ttl=self._wrap_ttl, verify=self._verify,
        )  # fmt: skip

    def hold(self, order: IssueOrder, scope: Scope) -> Any:
        """A vault-enforced grant's reader token create, made when it is requested: Vault answers it pending."""
        if not isinstance(scope, DatabaseScope):
            raise CredentialError(f"{order.scope} is not a database scope")
        return hold_reader_token(self._client, scope.database_role, order.ttl, order.request_id, order.requester, order.scope)

    def guarded_path(self, scope_name: str, scope: Scope) -> tuple[str, str] | None:
        """The path a control group guards: the reader token's create on the scope's own token role. Whoever holds a
        reader may read the login, so the reader is what must wait for the approvers (the bot's own token has no
        `database/creds` path at all). The catalog refuses a bot-approved scope on the same database role."""
        if not isinstance(scope, DatabaseScope):
            return None
        return f"auth/token/create/{token_role(scope_name)}", guarded_create_rules()

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        """Revoke the reader token, then wait until Vault has revoked its lease (whose revocation statements end
        sessions and drop the user): done only when the login is really gone, else CredentialError (retried).
        Also the expiry's check: the reader token's own TTL ends the lease the same way, and as late."""
        reader, lease = parts(handle)
        self._by_accessor.revoke(reader, request_id, proven)  # the seal covers the whole handle, reader included
        if lease:  # a handle stored before leases were kept names only the reader token
            wait_revoked(self._client, lease, self._settle)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        # A reader token's explicit max TTL cannot be raised: a new login for the rest of the time; the caller
        # revokes the old one (ending its sessions), and the new DM says so. The rest is measured on Vault's clock
        # (the old reader token's remaining TTL plus what was added), so a backward jump of ours grants no more.
        return self.issue(self._by_accessor.on_vault_clock(parts(handle)[0], order), scope)

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        reader, lease = parts(handle)
        status = self._by_accessor.status(reader, request_id)
        if status is CredentialStatus.GONE and lease and pending(self._client, lease):
            return CredentialStatus.ALIVE  # the reader token is gone, its login not yet
        return status

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return []  # the reader token's TTL ends the login

    def sync(self, catalog: Catalog) -> list[str]:
        scopes = {name: scope for name, scope in catalog.scopes.items() if isinstance(scope, DatabaseScope)}
        return sync_database(self._client, scopes)
