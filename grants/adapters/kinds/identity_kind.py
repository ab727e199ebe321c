"""The `vault_identity` kind behind the seam: the requester's (or a listed service's) entity in a per-grant group."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC

import hvac

from grants.adapters.kinds.identity import (
    GROUP_PREFIX,
    create_grant_group,
    delete_grant_group,
    extend_grant_group,
    grant_group,
    grant_group_names,
    group_name,
    requester_entity_id,
    service_entity_id,
)
from grants.catalog import Catalog, Scope
from grants.catalog_kinds import VaultIdentityScope
from grants.credentials import (
    CredentialError,
    CredentialHandle,
    CredentialStatus,
    Delivery,
    ForeignCredential,
    IssuedCredential,
    IssueOrder,
    Orphan,
)

KIND = "vault_identity"


class VaultIdentityKind:
    kind = KIND

    def __init__(self, client: hvac.Client, alias_mount: str = "slack"):
        self._client, self._alias_mount = client, alias_mount

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        if not isinstance(scope, VaultIdentityScope):
            raise CredentialError(f"{order.scope} is not a vault_identity scope")
        if order.on_behalf_of:
            # Checked again here (the core checks it first): only the scope's listed services, never any entity.
            if order.on_behalf_of not in scope.on_behalf_of:
                raise CredentialError(f"{order.on_behalf_of} is not a service {order.scope} may be requested for")
            entity_id = service_entity_id(self._client, order.on_behalf_of)
        else:
            entity_id = requester_entity_id(self._client, order.requester, self._alias_mount)
        group = create_grant_group(
            self._client, order.request_id, list(scope.policies), entity_id, order.until, order.requester, order.on_behalf_of
        )
        who = f"`{order.on_behalf_of}`'s" if order.on_behalf_of else "Your"
        until = f"{order.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return IssuedCredential(
            handle=CredentialHandle(KIND, group.name),
            delivery=Delivery(
                summary=f"{who} Vault identity raised with {', '.join(scope.policies)}",
                lines=(
                    f"{who} Vault identity has the policies {', '.join(scope.policies)} until {until}.",
                    "No new secret: log in to Vault as usual; tokens you already hold gain them at once.",
                ),
            ),
            valid_until=None,  # a group has no TTL: reconcile and `jitbot vault sweep` end it if the bot cannot
            facts={
                "group": group.name,
                "group_id": group.group_id,
                "entity_id": entity_id,
                "subject": order.on_behalf_of or order.requester,
            },
        )

    def _check_owner(self, handle: CredentialHandle, request_id: str) -> bool:
        """True when the group exists and is `request_id`'s; ForeignCredential when the handle names another group."""
        if handle.id != group_name(request_id):
            raise ForeignCredential(f"group {handle.id} is not {request_id}'s")
        group = grant_group(self._client, request_id)
        if group is None:
            return False
        owner = (group.get("metadata") or {}).get("request_id")
        if owner != request_id:
            raise ForeignCredential(f"group {handle.id} carries request {owner or 'none'}, not {request_id}")
        return True

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        if proven and handle.id == group_name(request_id):  # sealed: the group read would only prove ownership
            delete_grant_group(self._client, request_id)
        elif self._check_owner(handle, request_id):
            delete_grant_group(self._client, request_id)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        """Stretch in place: the same group, a later `expires_at` (so the sweeper honours the extension)."""
        if not isinstance(scope, VaultIdentityScope):
            raise CredentialError(f"{order.scope} is not a vault_identity scope")
        if not self._check_owner(handle, order.request_id):
            return self.issue(order, scope)  # gone (swept or deleted by hand): create it again for the rest
        extend_grant_group(self._client, order.request_id, order.until)
        until = f"{order.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return IssuedCredential(
            handle=handle,
            delivery=Delivery(summary=f"Vault identity extended until {until}", lines=("Nothing to do: keep working as usual.",)),
            valid_until=None,
            facts={"group": handle.id},
        )

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        try:
            return CredentialStatus.ALIVE if self._check_owner(handle, request_id) else CredentialStatus.GONE
        except ForeignCredential:
            raise
        except CredentialError:
            return CredentialStatus.UNKNOWN

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        """`jit-*` groups no active grant holds: a group has no TTL, so one the bot lost track of (a crash between
        Vault and the store, a row rewritten) would raise someone's identity forever."""
        held = {handle.id for handle in active if handle.kind == KIND}
        names = [name for name in grant_group_names(self._client) if name not in held]
        return [Orphan(CredentialHandle(KIND, name), name.removeprefix(GROUP_PREFIX)) for name in names]

    def sync(self, catalog: Catalog) -> list[str]:
        scopes = [name for name, scope in catalog.scopes.items() if isinstance(scope, VaultIdentityScope)]
        if not scopes:
            return []
        # Nothing to write: groups are per grant. Remind the operator of the backstop this kind depends on.
        return [f"vault_identity scopes {', '.join(scopes)}: run `jitbot vault sweep` from cron with the jitbot-sweeper policy"]
