"""The `database` kind: per-grant reader tokens that read wrapped dynamic DB credentials; checks of the operator's roles."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.vault_client import BackendError, describe, vault_client
from grants.credentials import CredentialError

DEFAULT_MOUNT = "database"
READER_TOKEN_ROLE = "jitbot-database"  # noqa: S105 (a role name, not a secret): the dedicated token role every reader token is created through
_TERMINATES = re.compile(r"pg_terminate_backend\s*\(\s*pid\s*,", re.IGNORECASE)  # the two-argument (waiting) form
_TERMINATES_RACY = re.compile(r"pg_terminate_backend\s*\(\s*pid\s*\)", re.IGNORECASE)


def reader_policy_name(role: str) -> str:
    return f"jitbot-dbread-{role}"


def reader_policy(role: str, mount: str = DEFAULT_MOUNT, wrap_ttl: timedelta = timedelta(minutes=5)) -> str:
    """The reader token's only policy: read this role's credentials, and only wrapped, so nobody ever sees them but the person."""
    return (
        f"# Written by `jitbot vault sync`: a jitbot reader token reads {mount}/creds/{role} once, response-wrapped.\n"
        f'path "{mount}/creds/{role}" {{\n'
        '  capabilities = ["read"]\n'
        '  min_wrapping_ttl = "1s"\n'  # an unwrapped read is refused: the bot can never see a password
        f'  max_wrapping_ttl = "{int(wrap_ttl.total_seconds())}s"\n'
        "}\n"
    )


def reader_role_settings(roles: list[str], longest_total: timedelta) -> dict[str, Any]:
    """The token role reader tokens come from: orphans (their leases die with them, not with the bot's token), capped."""
    return {
        "allowed_policies": sorted(reader_policy_name(role) for role in roles),
        "orphan": True,  # the lease belongs to the reader token; the bot's own token renewing or dying changes nothing
        "renewable": False,
        "token_explicit_max_ttl": int(longest_total.total_seconds()),
        "token_type": "service",  # batch tokens have no accessor: the grant could not be revoked early
        "token_no_default_policy": True,  # the reader needs nothing but its one read
    }


@dataclass(frozen=True)
class IssuedDatabaseCredential:
    """What a database grant leaves the bot with: the reader token's accessor (to revoke) and the wrapping token (to DM)."""

    accessor: str
    wrapping_token: str
    wrap_ttl: timedelta


def issue_database_credential(
    client: hvac.Client,
    role: str,
    lifetime: timedelta,
    request_id: str,
    requester: str,
    scope: str,
    *,
    mount: str = DEFAULT_MOUNT,
    wrap_ttl: timedelta = timedelta(minutes=5),
    verify: bool | str = True,
) -> IssuedDatabaseCredential:
    """Create the grant's reader token, read the credentials once with it (wrapped), keep only its accessor."""
    seconds = f"{int(lifetime.total_seconds())}s"
    try:
        created = client.auth.token.create(
            role_name=READER_TOKEN_ROLE,
            policies=[reader_policy_name(role)],
            no_default_policy=True,
            ttl=seconds,
            explicit_max_ttl=seconds,  # the lease cannot outlive its token: this is what ends the grant
            renewable=False,
            display_name=request_id,  # the connection's username_template puts it in the DB user's name
            meta={"request_id": request_id, "requester": requester, "scope": scope, "kind": "database"},
        )
    except BackendError as exc:
        raise CredentialError(f"Vault refused the database reader token for {request_id}: {describe(exc)}") from None
    accessor = created["auth"]["accessor"]
    reader = vault_client(client.url, created["auth"]["client_token"], verify=verify)
    try:
        response = reader.adapter.get(f"/v1/{mount}/creds/{role}", wrap_ttl=f"{int(wrap_ttl.total_seconds())}s")
        wrap_info = response.get("wrap_info") if isinstance(response, dict) else None
        if not wrap_info:
            raise CredentialError(f"Vault answered {request_id}'s database read without wrapping it; nothing was delivered")
    except (CredentialError, *BackendError) as exc:
        _revoke_quietly(client, accessor)  # nothing half-done: no reader token (and so no lease) outlives a failed issue
        detail = str(exc) if isinstance(exc, CredentialError) else describe(exc)
        raise CredentialError(f"Vault refused the database credentials for {request_id} ({mount}/{role}): {detail}") from None
    finally:
        reader.token = None  # the reader token is not needed again: revocation goes by accessor
    return IssuedDatabaseCredential(
        accessor=accessor,
        wrapping_token=wrap_info["token"],
        wrap_ttl=wrap_ttl,
    )


def _revoke_quietly(client: hvac.Client, accessor: str) -> None:
    try:
        client.auth.token.revoke_accessor(accessor)
    except BackendError:
        pass  # the token's own TTL still ends it


def database_role_warnings(client: hvac.Client, role: str, longest_total: timedelta, mount: str = DEFAULT_MOUNT) -> list[str]:
    """What is wrong with the operator's database role for jitbot's purposes: read only, never written."""
    where = f"database role {mount}/{role}"
    try:
        try:
            data = (client.read(f"{mount}/roles/{role}") or {}).get("data")
        except InvalidPath:
            data = None
    except BackendError as exc:
        return [f"warning: {where}: cannot read it: {describe(exc)}"]
    if not data:
        return [f"warning: {where} does not exist; the database operator must write it (see the README)"]
    warnings = []
    revocation = " ".join(data.get("revocation_statements") or [])
    if not _TERMINATES.search(revocation):
        detail = "uses the one-argument form, which races DROP ROLE" if _TERMINATES_RACY.search(revocation) else "has none"
        warnings.append(
            f"warning: {where}: revocation statements do not end open sessions (pg_terminate_backend(pid, 5000) "
            f"{detail}): a revoked user's sessions would keep running"
        )
    if "nologin" not in revocation.lower():
        warnings.append(f"warning: {where}: revocation statements should `ALTER ROLE … NOLOGIN` first, so no new session starts")
    mount_ttls = _mount_lease_ttls(client, mount)
    for field, fallback in (("default_ttl", mount_ttls[0]), ("max_ttl", mount_ttls[1])):
        seconds = int(data.get(field) or 0) or fallback
        if seconds and seconds < longest_total.total_seconds():
            warnings.append(
                f"warning: {where}: {field} is {seconds}s, shorter than the scope's longest total "
                f"({int(longest_total.total_seconds())}s); the lease would end the grant early"
            )
    return warnings


def _mount_lease_ttls(client: hvac.Client, mount: str) -> tuple[int, int]:
    """(default, max) lease TTL a role's 0 falls back to; (0, 0) when unknown."""
    try:
        tune = client.sys.read_mount_configuration(path=mount)
    except BackendError:
        return 0, 0
    data = tune.get("data", tune) if isinstance(tune, dict) else {}
    return int(data.get("default_lease_ttl") or 0), int(data.get("max_lease_ttl") or 0)


def sync_database(client: hvac.Client, role_totals: dict[str, timedelta], mount: str = DEFAULT_MOUNT) -> list[str]:
    """`jitbot vault sync` for database scopes: reader policies and the reader token role; the DB roles are only read.

    `role_totals` maps each database role to the longest total duration of the scopes using it. `database/config`
    holds the admin password and belongs to the database operator: this never writes it.
    """
    if not role_totals:
        return []
    lines = []
    try:
        for role in sorted(role_totals):
            name, text = reader_policy_name(role), reader_policy(role, mount)
            try:
                current = client.sys.read_acl_policy(name)["data"]["policy"]
            except InvalidPath:
                current = None
            if current != text:
                client.sys.create_or_update_acl_policy(name=name, policy=text)
            lines.append(f"policy {name}: {'unchanged' if current == text else 'created' if current is None else 'updated'}")
        wanted = reader_role_settings(list(role_totals), max(role_totals.values()))
        client.write_data(f"auth/token/roles/{READER_TOKEN_ROLE}", data=wanted)
        lines.append(f"token role {READER_TOKEN_ROLE}: written (max TTL {wanted['token_explicit_max_ttl']}s)")
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write the database reader policies or role: {describe(exc)}") from None
    for role, total in sorted(role_totals.items()):
        lines.extend(database_role_warnings(client, role, total, mount))
    return lines
