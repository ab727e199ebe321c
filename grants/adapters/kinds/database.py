"""The `database` kind: per-grant reader tokens that read wrapped dynamic DB credentials; checks of the operator's roles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.kinds.database_leases import listed, one_read_at_a_time, prefix, reference
from grants.adapters.kinds.vault_token import token_role, write_token_role
from grants.adapters.vault_client import BackendError, describe, vault_client
from grants.catalog_kinds import DatabaseScope
from grants.credentials import MAX_WRAP_TTL, CredentialError

DEFAULT_MOUNT = "database"
# The one reader token role older releases shared between every database scope (capped at the longest of them):
# `jitbot vault sync` deletes it, and the catalog reserves the scope name that would reuse it.
LEGACY_READER_ROLE = "jitbot-database"
# The bot unwraps its reader token at once: a wrap that outlives that moment serves nobody.
_READER_WRAP_TTL = "30s"
_TERMINATES = re.compile(r"pg_terminate_backend\s*\(\s*pid\s*,", re.IGNORECASE)  # the two-argument (waiting) form
_TERMINATES_RACY = re.compile(r"pg_terminate_backend\s*\(\s*pid\s*\)", re.IGNORECASE)


def reader_display_name(request_id: str) -> str:
    """A reader token's display name: the request ID alone, which the connection's `username_template` puts in the
    database user's name; the owner check before a revoke expects it back."""
    return request_id


def reader_policy_name(role: str) -> str:
    return f"jitbot-dbread-{role}"


def reader_policy(role: str, mount: str = DEFAULT_MOUNT) -> str:
    """The reader token's only policy: read this role's credentials, and only wrapped, so nobody ever sees them but the person."""
    return (
        f"# Written by `jitbot vault sync`: a jitbot reader token reads {mount}/creds/{role} once, response-wrapped.\n"
        f'path "{mount}/creds/{role}" {{\n'
        '  capabilities = ["read"]\n'
        '  min_wrapping_ttl = "1s"\n'  # an unwrapped read is refused: the bot can never see a password
        f'  max_wrapping_ttl = "{int(MAX_WRAP_TTL.total_seconds())}s"\n'
        "}\n"
    )


def reader_role_settings(role: str, longest_total: timedelta) -> dict[str, Any]:
    """One database scope's token role (`jitbot-<scope>`, as for vault_token scopes): its reader tokens may carry only
    that role's reader policy and live no longer than that scope's longest total, so a stolen bot token cannot stretch
    one scope's reader past its own cap or borrow another scope's database role."""
    return {
        "allowed_policies": [reader_policy_name(role)],
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
    lease: str = ""  # the login's lease ID (or its role's lease prefix, when another read made it ambiguous)
    wrap_accessor: str = ""  # the wrapping token's own accessor (not a secret): gone once the person unwrapped it


def _create_reader(
    client: hvac.Client, role: str, seconds: int, request_id: str, requester: str, scope: str, wrap_ttl: str | None
) -> Any:
    return client.auth.token.create(
        role_name=token_role(scope),
        policies=[reader_policy_name(role)],
        no_default_policy=True,
        ttl=f"{seconds}s",
        explicit_max_ttl=f"{seconds}s",  # the lease cannot outlive its token: this is what ends the grant
        renewable=False,
        display_name=reader_display_name(request_id),
        meta={"request_id": request_id, "requester": requester, "scope": scope, "kind": "database"},
        wrap_ttl=wrap_ttl,
    )


def hold_reader_token(client: hvac.Client, role: str, lifetime: timedelta, request_id: str, requester: str, scope: str) -> Any:
    """A vault-enforced grant's reader token create, made when it is requested: the control group on its token role
    answers it pending. Vault creates the reader (and starts its TTL) only when the approved request is released."""
    try:
        return _create_reader(client, role, int(lifetime.total_seconds()), request_id, requester, scope, None)
    except BackendError as exc:
        raise CredentialError(f"Vault refused the call of {request_id}: {describe(exc)}") from None


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
    """Create the grant's reader token through its scope's role, read the credentials once with it (wrapped), keep
    only its accessor.

    The create is response-wrapped too (the bot's policy requires wrapping on every token create path) and the bot
    unwraps it at once, since it must use the reader token itself: against a thief holding the bot's token that
    wrapping is no barrier (the thief unwraps as the bot does). What bounds the reader is its scope's role: that one
    reader policy, orphan, not renewable, at most the scope's longest total; and the TTL Vault granted is checked."""
    seconds = int(lifetime.total_seconds())
    try:
        wrapped = _create_reader(client, role, seconds, request_id, requester, scope, _READER_WRAP_TTL)
    except BackendError as exc:
        raise CredentialError(f"Vault refused the database reader token for {request_id}: {describe(exc)}") from None
    wrap_info = wrapped.get("wrap_info") if isinstance(wrapped, dict) else None
    if not wrap_info:
        _discard_unwrapped(client, wrapped)
        raise CredentialError(f"Vault answered {request_id}'s reader token without wrapping it; nothing was issued")
    unwrapper = vault_client(client.url, wrap_info["token"], verify=verify)  # a wrapping token may unwrap itself
    try:
        created = unwrapper.sys.unwrap()
    except BackendError as exc:
        _revoke_quietly(client, wrap_info["wrapped_accessor"])
        raise CredentialError(f"the database reader token for {request_id} could not be unwrapped: {describe(exc)}") from None
    finally:
        unwrapper.adapter.close()
    return read_with_reader(
        client, created["auth"], seconds, request_id, role, scope, mount=mount, wrap_ttl=wrap_ttl, verify=verify
    )


def read_with_reader(
    client: hvac.Client,
    auth: dict[str, Any],
    asked: int,
    request_id: str,
    role: str,
    scope: str,
    *,
    mount: str = DEFAULT_MOUNT,
    wrap_ttl: timedelta = timedelta(minutes=5),
    verify: bool | str = True,
) -> IssuedDatabaseCredential:
    """With a fresh reader token (`auth`, as Vault created it: unwrapped by the bot, or released by a control group),
    check the TTL Vault granted, read the credentials once, response-wrapped, and note the login's lease. Any failure
    revokes the reader, so no lease outlives it."""
    _check_granted_ttl(client, auth, asked, request_id, scope)
    accessor = auth["accessor"]
    reader = vault_client(client.url, auth["client_token"], verify=verify)
    leases = prefix(mount, role)
    try:
        with one_read_at_a_time(leases):  # the lease new after the read is this grant's: its revoke checks it is gone
            before = listed(client, leases)
            response = reader.adapter.get(f"/v1/{mount}/creds/{role}", wrap_ttl=f"{int(wrap_ttl.total_seconds())}s")
            wrap_info = response.get("wrap_info") if isinstance(response, dict) else None
            if not wrap_info:
                raise CredentialError(f"Vault answered {request_id}'s database read without wrapping it; nothing was delivered")
            lease = reference(leases, listed(client, leases) - before)
    except (CredentialError, *BackendError) as exc:
        _revoke_quietly(client, accessor)  # nothing half-done: no reader token (and so no lease) outlives a failed issue
        detail = str(exc) if isinstance(exc, CredentialError) else describe(exc)
        raise CredentialError(f"Vault refused the database credentials for {request_id} ({mount}/{role}): {detail}") from None
    finally:
        reader.token = None  # the reader token is not needed again: revocation goes by accessor
        reader.adapter.close()
    return IssuedDatabaseCredential(
        accessor=accessor,
        wrapping_token=wrap_info["token"],
        wrap_ttl=wrap_ttl,
        lease=lease,
        wrap_accessor=wrap_info["accessor"],
    )


def _check_granted_ttl(client: hvac.Client, auth: dict[str, Any], asked: int, request_id: str, scope: str) -> None:
    """Vault silently caps a TTL at the role's maximum: a login ending before the DM says would surprise its user and
    contradict the trail. Compare what Vault granted with what was asked for; refuse a mismatch, leaving nothing."""
    granted = int(auth.get("lease_duration") or 0)
    if not asked - 5 <= granted <= asked:
        _revoke_quietly(client, auth["accessor"])
        raise CredentialError(
            f"Vault granted {request_id}'s reader token {granted}s instead of {asked}s: the token role "
            f"{token_role(scope)} caps it; run `jitbot vault sync`"
        )


def _discard_unwrapped(client: hvac.Client, response: object) -> None:
    # A proxy that strips X-Vault-Wrap-TTL would hand back the real token: end it at once, use nothing.
    auth = response.get("auth") if isinstance(response, dict) else None
    if isinstance(auth, dict) and auth.get("accessor"):
        _revoke_quietly(client, str(auth["accessor"]))


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
        return [f"error: {where}: cannot read it: {describe(exc)}"]
    if not data:
        return [f"error: {where} does not exist; the database operator must write it (see docs/kinds.md), then sync again"]
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
        total = int(longest_total.total_seconds())
        if seconds and seconds < total:
            warnings.append(
                f"warning: {where}: {field} is {seconds}s, shorter than the scope's longest total "
                f"({total}s); the lease would end the grant early"
            )
        if not seconds or seconds > total:
            # The login's VALID UNTIL is the lease's end: while Vault is down or cannot reach the database at a grant's
            # end, nothing revokes the login before then.
            warnings.append(
                f"warning: {where}: {field} is {f'{seconds}s' if seconds else 'unset'}, longer than the scopes' longest "
                f"total ({total}s): if Vault cannot reach the database when a grant ends, its login works until the "
                f"lease's end; set {field}={total}s"
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


def sync_database(client: hvac.Client, scopes: Mapping[str, DatabaseScope]) -> list[str]:
    """`jitbot vault sync` for database scopes: the reader policies and one reader token role per scope; the DB roles
    are only read. `database/config` holds the admin password and belongs to the database operator: never written."""
    if not scopes:
        return []
    lines = []
    readers = {(scope.database_mount, scope.database_role) for scope in scopes.values()}
    try:
        for mount, role in sorted(readers):
            name, text = reader_policy_name(role), reader_policy(role, mount)
            try:
                current = client.sys.read_acl_policy(name)["data"]["policy"]
            except InvalidPath:
                current = None
            if current != text:
                client.sys.create_or_update_acl_policy(name=name, policy=text)
            lines.append(f"policy {name}: {'unchanged' if current == text else 'created' if current is None else 'updated'}")
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write the database reader policies: {describe(exc)}") from None
    for name, scope in sorted(scopes.items()):
        lines.append(write_token_role(client, token_role(name), reader_role_settings(scope.database_role, scope.max_total)))
    lines.extend(_delete_legacy_role(client))
    longest: dict[tuple[str, str], timedelta] = {}
    for scope in scopes.values():
        key = (scope.database_mount, scope.database_role)
        longest[key] = max(longest.get(key, timedelta(0)), scope.max_total)
    for (mount, role), total in sorted(longest.items()):
        lines.extend(database_role_warnings(client, role, total, mount))
    return lines


def _delete_legacy_role(client: hvac.Client) -> list[str]:
    """The shared reader role of older releases let one scope's reader live as long as the longest database scope's."""
    try:
        try:
            client.auth.token.read_role(LEGACY_READER_ROLE)
        except InvalidPath:
            return []
        client.auth.token.delete_role(LEGACY_READER_ROLE)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot delete the old token role {LEGACY_READER_ROLE}: {describe(exc)}") from None
    return [f"token role {LEGACY_READER_ROLE}: deleted (one reader role per database scope replaces it)"]
