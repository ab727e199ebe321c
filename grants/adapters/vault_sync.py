"""`jitbot vault sync`: writes the policy files and the token role into Vault/OpenBao, idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.vault_issuer import DEFAULT_ROLE, BackendError, describe
from grants.catalog import Catalog, CatalogError
from grants.domain import CredentialError

BOT_POLICY = "jitbot-bot"


def sync(client: hvac.Client, policy_dir: Path, catalog: Catalog, token_role: str = DEFAULT_ROLE) -> list[str]:
    """Write every `*.hcl` in `policy_dir` as the ACL policy named by its stem, then the token role; lines say what changed.

    Run with an operator's (admin) token: the bot's own token may not write policies or roles.
    """
    files = sorted(policy_dir.glob("*.hcl"))
    missing = sorted({p for scope in catalog.scopes.values() for p in scope.policies} - {f.stem for f in files})
    if missing:  # a token may carry a policy Vault does not know; it would silently grant nothing
        raise CatalogError(
            [f"policy `{name}` is used by the catalog but {policy_dir}/{name}.hcl does not exist" for name in missing]
        )
    lines = [_sync_policy(client, path.stem, path.read_text(encoding="utf-8")) for path in files]
    lines.append(_sync_role(client, catalog, token_role))
    bot_policy = policy_dir / f"{BOT_POLICY}.hcl"
    if bot_policy.is_file() and f'"auth/token/create/{token_role}"' not in bot_policy.read_text(encoding="utf-8"):
        lines.append(f"warning: {bot_policy.name} does not allow auth/token/create/{token_role}; the bot cannot issue")
    return lines


def _sync_policy(client: hvac.Client, name: str, text: str) -> str:
    try:
        current = _read(lambda: client.sys.read_acl_policy(name)["data"]["policy"])
        if current == text:
            return f"policy {name}: unchanged"
        client.sys.create_or_update_acl_policy(name=name, policy=text)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write policy {name}: {describe(exc)}") from None
    return f"policy {name}: {'created' if current is None else 'updated'}"


def role_settings(catalog: Catalog) -> dict[str, Any]:
    """The token role every grant is created through: it bounds what even a compromised bot could issue."""
    policies = {policy for scope in catalog.scopes.values() for policy in scope.policies} | {"default"}
    return {
        "allowed_policies": sorted(policies),  # a grant's policies must be a subset
        "orphan": True,  # a grant outlives neither more nor less than its own TTL, not the bot's token
        "renewable": False,  # nobody can stretch a grant past its approval
        # An extension re-issues for the rest of the grant, up to max_total_duration: the cap must allow it.
        "token_explicit_max_ttl": int(max(scope.max_total for scope in catalog.scopes.values()).total_seconds()),
        "token_type": "service",  # batch tokens have no accessor and so could not be revoked early
    }


def _sync_role(client: hvac.Client, catalog: Catalog, token_role: str) -> str:
    wanted = role_settings(catalog)
    path = f"auth/token/roles/{token_role}"
    try:
        current = _read(lambda: client.auth.token.read_role(token_role)["data"])
        if current is not None and all(current.get(key) == value for key, value in wanted.items()):
            return f"token role {token_role}: unchanged"
        # One write of every setting; hvac's create_or_update_role cannot set token_type.
        client.write_data(path, data=wanted)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write token role {token_role}: {describe(exc)}") from None
    summary = f"policies {', '.join(wanted['allowed_policies'])}; max TTL {wanted['token_explicit_max_ttl']}s"
    return f"token role {token_role}: {'created' if current is None else 'updated'} ({summary})"


def _read(fetch: Any) -> Any:
    """What `fetch` returns, or None when Vault has nothing at that path (404)."""
    try:
        return fetch()
    except InvalidPath:
        return None
