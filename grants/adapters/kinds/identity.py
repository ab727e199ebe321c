"""The `vault_identity` kind: a per-grant internal identity group `jit-<request id>`, and the sweeper that backs it up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.vault_client import BackendError, describe
from grants.credentials import CredentialError

GROUP_PREFIX = "jit-"
SERVICE_PREFIX = "entity:"


class UnlinkedPerson(CredentialError):
    """The requester has no Vault entity alias on the configured mount: nothing can be granted until linked."""


def group_name(request_id: str) -> str:
    # One group per grant, never a shared one: a group's member list is read-modify-write without CAS,
    # so concurrent adds to a shared group lose members.
    return f"{GROUP_PREFIX}{request_id}"


def _read(client: hvac.Client, path: str) -> dict[str, Any] | None:
    try:
        response = client.read(path)
    except InvalidPath:
        return None
    data = (response or {}).get("data") if isinstance(response, dict) else None
    return data or None


def requester_entity_id(client: hvac.Client, slack_user_id: str, alias_mount: str) -> str:
    """The entity whose alias on `alias_mount` is named by the Slack user ID; UnlinkedPerson when there is none."""
    try:
        mounts = client.read("sys/auth") or {}
        table = mounts.get("data") or mounts
        accessor = (table.get(f"{alias_mount.strip('/')}/") or {}).get("accessor")
        if not accessor:
            raise CredentialError(f"the identity alias mount `{alias_mount}` is not an auth mount of this Vault")
        found = client.write_data("identity/lookup/entity", data={"alias_name": slack_user_id, "alias_mount_accessor": accessor})
    except BackendError as exc:
        raise CredentialError(f"cannot look up the Vault identity of {slack_user_id}: {describe(exc)}") from None
    entity_id = ((found or {}).get("data") or {}).get("id") if isinstance(found, dict) else None
    if not entity_id:
        raise UnlinkedPerson(
            f"Your Slack account is not linked to a Vault identity yet: ask a Vault operator to add an entity alias "
            f"named `{slack_user_id}` on the `{alias_mount}` auth mount to your entity, then request again."
        )
    return str(entity_id)


def service_entity_id(client: hvac.Client, subject: str) -> str:
    """The entity of an on-behalf subject `entity:NAME`."""
    if not subject.startswith(SERVICE_PREFIX):
        raise CredentialError(f"`{subject}` is not a service subject (expected `entity:NAME`)")
    name = subject[len(SERVICE_PREFIX) :]
    try:
        data = _read(client, f"identity/entity/name/{name}")
    except BackendError as exc:
        raise CredentialError(f"cannot look up the service entity {name}: {describe(exc)}") from None
    if not data:
        raise CredentialError(f"the service entity `{name}` does not exist in Vault; an operator must create it first")
    return str(data["id"])


@dataclass(frozen=True)
class GrantGroup:
    name: str
    group_id: str


def create_grant_group(
    client: hvac.Client,
    request_id: str,
    policies: list[str],
    entity_id: str,
    expires_at: datetime,
    requester: str,
    subject: str | None = None,
) -> GrantGroup:
    """Create (or, on a retry, rewrite identically) the grant's group: its policies reach the entity's tokens at once."""
    name = group_name(request_id)
    metadata = {
        # A group has no TTL: this is what the sweeper reads when nobody revokes it.
        "expires_at": expires_at.astimezone(UTC).isoformat(),
        "request_id": request_id,
        "requester": requester,
        "subject": subject or requester,
    }
    try:
        client.write_data(
            f"identity/group/name/{name}",
            # Policies as one comma-joined string: the bot's policy pins `policies` to the identity scopes' exact
            # sets, and Vault's allowed_parameters compares strings (a JSON list never matches an allowed entry).
            data={"type": "internal", "policies": ",".join(policies), "member_entity_ids": [entity_id], "metadata": metadata},
        )
        data = _read(client, f"identity/group/name/{name}")
    except BackendError as exc:
        raise CredentialError(f"Vault refused the identity group for {request_id}: {describe(exc)}") from None
    if not data or list(data.get("member_entity_ids") or []) != [entity_id]:
        delete_grant_group(client, request_id)
        raise CredentialError(f"the identity group for {request_id} did not hold exactly its member; removed it")
    return GrantGroup(name=name, group_id=str(data["id"]))


def extend_grant_group(client: hvac.Client, request_id: str, expires_at: datetime) -> None:
    """Move the group's `expires_at` (what the sweeper honours) to the extended end."""
    name = group_name(request_id)
    try:
        data = _read(client, f"identity/group/name/{name}")
        if not data:
            raise CredentialError(f"the identity group {name} is gone; it cannot be extended")
        metadata = dict(data.get("metadata") or {}) | {"expires_at": expires_at.astimezone(UTC).isoformat()}
        client.write_data(f"identity/group/name/{name}", data={"metadata": metadata})
    except BackendError as exc:
        raise CredentialError(f"cannot extend the identity group {name}: {describe(exc)}") from None


def grant_group(client: hvac.Client, request_id: str) -> dict[str, Any] | None:
    """The group's data, or None when it does not exist."""
    try:
        return _read(client, f"identity/group/name/{group_name(request_id)}")
    except BackendError as exc:
        raise CredentialError(f"cannot read the identity group of {request_id}: {describe(exc)}") from None


def delete_grant_group(client: hvac.Client, request_id: str) -> None:
    """Delete the grant's group; one that is already gone is success."""
    try:
        client.delete(f"identity/group/name/{group_name(request_id)}")
    except InvalidPath:
        return
    except BackendError as exc:
        raise CredentialError(f"cannot delete the identity group of {request_id}: {describe(exc)}") from None


def grant_group_names(client: hvac.Client) -> list[str]:
    """The names of every `jit-*` group."""
    try:
        listed = client.list("identity/group/name") or {}
    except InvalidPath:
        return []
    except BackendError as exc:
        raise CredentialError(f"cannot list the identity groups: {describe(exc)}") from None
    return [str(n) for n in (listed.get("data") or {}).get("keys", []) if str(n).startswith(GROUP_PREFIX)]


def sweep(client: hvac.Client, now: datetime, max_age: timedelta) -> list[str]:
    """Delete every `jit-*` group past its `expires_at`, or older than `max_age` by its server-set creation time.

    Independent of the bot's database on purpose: it runs from cron with its own small policy, so a dead or
    compromised bot cannot keep an identity grant alive. A group whose `expires_at` is missing or unreadable
    is judged by its age alone (the server sets creation_time; nobody can forge it through the API).
    """
    try:
        try:
            listed = client.list("identity/group/name") or {}
        except InvalidPath:
            return []
        names = [n for n in (listed.get("data") or {}).get("keys", []) if n.startswith(GROUP_PREFIX)]
        lines = []
        for name in names:
            data = _read(client, f"identity/group/name/{name}")
            if not data:
                continue
            reason = _why_overdue(data, now, max_age)
            if reason:
                client.delete(f"identity/group/name/{name}")
                lines.append(f"deleted {name}: {reason}")
        return lines
    except BackendError as exc:
        raise CredentialError(f"vault sweep failed: {describe(exc)}") from None


def _why_overdue(data: dict[str, Any], now: datetime, max_age: timedelta) -> str | None:
    expires_at = _parse_time((data.get("metadata") or {}).get("expires_at"))
    if expires_at is not None and expires_at <= now:
        return f"expired at {expires_at.isoformat()}"
    created = _parse_time(data.get("creation_time"))
    if created is None or now - created > max_age:
        return f"older than {int(max_age.total_seconds())}s (created {data.get('creation_time')})"
    return None


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        # Go writes up to nanoseconds ("2026-01-02T03:04:05.123456789Z"): keep microseconds.
        head, dot, rest = text.replace("Z", "+00:00").partition(".")
        if dot:
            digits = "".join(ch for ch in rest if ch.isdigit())
            zone = rest[len(digits) :]
            text = f"{head}.{digits[:6]}{zone}"
        else:
            text = head
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
