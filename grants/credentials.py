"""The credential seam: what a grant holds (a handle), what a kind hands back, and the port every kind implements."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

# The longest JITBOT_WRAP_TTL. The Vault policies cap wrapping at this bound, never at the setting's value: the wrap
# TTL has one source (the setting the bot runs with), and `vault sync` needs no copy of it that could disagree.
MAX_WRAP_TTL = timedelta(hours=1)

if TYPE_CHECKING:
    from grants.catalog import Catalog, Scope
    from grants.ports import CredentialKind, Wrappings


class CredentialError(Exception):
    """The credential backend (Vault) failed; the message never contains a secret."""


class HoldUsed(CredentialError):
    """A vault-enforced request's control-group request is gone (released by another issuer, or discarded): its one
    credential, if any, is another process's to record."""


class ForeignCredential(CredentialError):
    """The credential a request names is not that request's (someone rewrote the row): never revoke it."""


@dataclass(frozen=True)
class CredentialHandle:
    """How a grant's credential is found again: its kind and the kind's own ID, never a secret.

    vault_token and database: the accessor of the (reader) token; ssh: the certificate's serial;
    vault_identity: the identity group's name (`jit-<request id>`)."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> CredentialHandle:
        """The stored form; a bare accessor (stored before kinds existed) is a vault_token handle."""
        kind, sep, ident = text.partition(":")
        return cls(kind, ident) if sep else cls("vault_token", text)


@dataclass(frozen=True)
class Delivery:
    """What the requester receives, by DM only. The kind chooses the words; the chat side only lays them out.

    `secret` (e.g. a response-wrapping token) and the lines that carry it are never logged or stored."""

    summary: str
    lines: tuple[str, ...] = field(default=(), repr=False)
    code: str | None = field(default=None, repr=False)  # shown verbatim: a command with the wrapping token, a certificate
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Wrapping:
    """The response-wrapping token a delivery carries, by its accessor (never the token) and when it expires: while
    it can still be looked up, nobody has unwrapped it."""

    accessor: str
    until: datetime


@dataclass(frozen=True)
class IssuedCredential:
    """A credential that exists now: its handle, what to deliver, and audit-safe facts about it."""

    handle: CredentialHandle
    delivery: Delivery
    valid_until: datetime | None  # when it ends by itself even if the bot is down; None: never (identity groups)
    facts: Mapping[str, Any] = field(default_factory=dict)  # for the `issued` event: never a secret
    wrapping: Wrapping | None = None  # kinds that deliver a response-wrapped secret (vault_token, database)


@dataclass(frozen=True)
class IssueOrder:
    """Everything a kind needs to issue one grant's credential, decided by the core."""

    request_id: str
    scope: str
    requester: str
    ttl: timedelta  # exactly the rest of the approved time
    until: datetime
    on_behalf_of: str | None = None  # a service entity (`entity:NAME`) instead of the requester
    public_key: str | None = None  # ssh: the requester's registered public key
    csr: str | None = None  # pki: the requester's registered certificate signing request (PEM; public)
    extends_by: timedelta | None = None  # an extension: how much it adds to the credential it replaces


@dataclass(frozen=True)
class Orphan:
    """A credential that no active grant holds, and the request it says it was issued for (the kind knows how)."""

    handle: CredentialHandle
    request_id: str


class CredentialStatus(StrEnum):
    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"  # the backend could not say (down): do nothing rash


class CredentialKinds:
    """The registry of kinds; it is itself the core's CredentialIssuer port, dispatching by kind."""

    def __init__(
        self, kinds: list[CredentialKind], healthy: Callable[[], bool] | None = None, wrappings: Wrappings | None = None
    ):
        self.kinds = {kind.kind: kind for kind in kinds}
        self._healthy = healthy
        self._wrappings = wrappings

    def _of(self, kind: str) -> CredentialKind:
        try:
            return self.kinds[kind]
        except KeyError:
            raise CredentialError(f"no credential kind `{kind}` is configured in this bot") from None

    def issue(self, order: IssueOrder, scope: Scope) -> IssuedCredential:
        return self._of(scope.credential).issue(order, scope)

    def revoke(self, handle: CredentialHandle, request_id: str, proven: bool = False) -> None:
        self._of(handle.kind).revoke(handle, request_id, proven)

    def extend(self, handle: CredentialHandle, order: IssueOrder, scope: Scope) -> IssuedCredential:
        return self._of(handle.kind).extend(handle, order, scope)

    def status(self, handle: CredentialHandle, request_id: str) -> CredentialStatus:
        return self._of(handle.kind).status(handle, request_id)

    def sync(self, catalog: Catalog) -> list[str]:
        return [line for kind in self.kinds.values() for line in kind.sync(catalog)]

    def orphans(self, active: Collection[CredentialHandle]) -> list[Orphan]:
        return [orphan for kind in self.kinds.values() for orphan in kind.orphans(active)]

    def healthy(self) -> bool:
        return self._healthy() if self._healthy is not None else True

    def wrap_status(self, accessor: str) -> CredentialStatus:
        return self._wrappings.status(accessor) if self._wrappings is not None else CredentialStatus.UNKNOWN

    def revoke_wrap(self, accessor: str) -> None:
        if self._wrappings is None:
            raise CredentialError("no wrapping tokens are configured in this bot")
        self._wrappings.revoke(accessor)

    # Vault-enforced approvals: kinds that can have their one Vault call guarded by a control group say so by
    # having `hold` (make the call, answered pending) and `guarded_path` (the path and the rules kept on it).

    def hold(self, order: IssueOrder, scope: Scope) -> Any:
        hold = getattr(self._of(scope.credential), "hold", None)
        if hold is None:
            raise CredentialError(f"{order.scope}: its kind cannot be approved in Vault")
        return hold(order, scope)

    def guarded_path(self, scope_name: str, scope: Scope) -> tuple[str, str] | None:
        guarded = getattr(self.kinds.get(scope.credential), "guarded_path", None)
        return guarded(scope_name, scope) if guarded is not None else None
