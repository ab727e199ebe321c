"""`jitbot vault sync`: writes the policy files and what each credential kind needs into Vault/OpenBao, idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.control_groups import bot_policy_stanzas, sync_control_groups
from grants.adapters.vault_client import BackendError, describe
from grants.catalog import Catalog, CatalogError
from grants.credentials import CredentialError, CredentialKinds
from grants.ports import CredentialIssuer

BOT_POLICY = "jitbot-bot"


def sync(client: hvac.Client, policy_dir: Path, catalog: Catalog, kinds: CredentialIssuer) -> list[str]:
    """Write every `*.hcl` in `policy_dir` as the ACL policy named by its stem, then what each credential kind
    needs (token roles, signer roles, reader policies); lines say what changed.

    Run with an operator's (admin) token: the bot's own token may not write policies or roles.
    """
    files = sorted(policy_dir.glob("*.hcl"))
    missing = sorted({p for scope in catalog.scopes.values() for p in scope.policies_granted} - {f.stem for f in files})
    if missing:  # a token may carry a policy Vault does not know; it would silently grant nothing
        raise CatalogError(
            [f"policy `{name}` is used by the catalog but {policy_dir}/{name}.hcl does not exist" for name in missing]
        )
    lines = [_sync_policy(client, path.stem, _policy_text(path, catalog, kinds)) for path in files]
    lines += kinds.sync(catalog)
    lines += sync_control_groups(client, catalog)
    bot_policy = policy_dir / f"{BOT_POLICY}.hcl"
    if bot_policy.is_file() and '"auth/token/create/jitbot-*"' not in bot_policy.read_text(encoding="utf-8"):
        lines.append(f"warning: {bot_policy.name} does not allow auth/token/create/jitbot-*; the bot cannot issue")
    return lines


def _policy_text(path: Path, catalog: Catalog, kinds: CredentialIssuer) -> str:
    """A policy file's text; the bot's gets the control groups of the catalog's vault-enforced scopes appended."""
    text = path.read_text(encoding="utf-8")
    if path.stem != BOT_POLICY or not isinstance(kinds, CredentialKinds):
        return text
    return text + bot_policy_stanzas(catalog, kinds)


def _sync_policy(client: hvac.Client, name: str, text: str) -> str:
    try:
        current = _read(lambda: client.sys.read_acl_policy(name)["data"]["policy"])
        if current == text:
            return f"policy {name}: unchanged"
        client.sys.create_or_update_acl_policy(name=name, policy=text)
    except BackendError as exc:
        raise CredentialError(f"vault sync: cannot write policy {name}: {describe(exc)}") from None
    return f"policy {name}: {'created' if current is None else 'updated'}"


def _read(fetch: Any) -> Any:
    """What `fetch` returns, or None when Vault has nothing at that path (404)."""
    try:
        return fetch()
    except InvalidPath:
        return None
