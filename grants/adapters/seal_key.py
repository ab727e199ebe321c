"""The credential seal key (grants/seals.py) in Vault KV v2: made once by `jitbot vault sync`, read by the bot once at
start-up and kept in memory only, never in the database, a log or an export. The bot's policy may read it, not write it."""

from __future__ import annotations

import logging
import secrets

import hvac
from hvac.exceptions import InvalidPath

from grants.adapters.vault_client import BackendError, describe
from grants.credentials import CredentialError
from grants.seals import Sealer

log = logging.getLogger(__name__)

SEAL_KEY_PATH = "jitbot/seal-key"  # on the audit anchor's KV v2 mount (JITBOT_AUDIT_ANCHOR); jitbot-bot.hcl reads it


def _read(client: hvac.Client, mount: str) -> str | None:
    try:
        answer = client.secrets.kv.v2.read_secret_version(path=SEAL_KEY_PATH, mount_point=mount, raise_on_deleted_version=True)
    except InvalidPath:
        return None
    key = (answer.get("data") or {}).get("data", {}).get("key")
    return str(key) if key else None


def ensure_seal_key(client: hvac.Client, mount: str) -> str:
    """`jitbot vault sync`: create the key once (KV check-and-set 0, so two syncs never replace each other's), never
    overwrite it: a new key would make every stored seal a mismatch (revocations then fall back to lookups and alert)."""
    where = f"{mount}/{SEAL_KEY_PATH}"
    try:
        if _read(client, mount) is not None:
            return f"seal key {where}: unchanged"
        client.secrets.kv.v2.create_or_update_secret(
            path=SEAL_KEY_PATH, secret={"key": secrets.token_hex(32)}, cas=0, mount_point=mount
        )
    except BackendError as exc:
        return f"error: seal key {where}: cannot write it: {describe(exc)}"
    return f"seal key {where}: created"


def open_sealer(client: hvac.Client, mount: str) -> Sealer | None:
    """The bot's sealer from the key in Vault; None (with a warning) when there is none yet or the bot may not read it:
    grants are then issued unsealed and every revocation looks the credential up first, as before seals; and the inbox
    records and runs work without MACs, so a database insider can forge clicks (docs/security.md)."""
    where = f"{mount}/{SEAL_KEY_PATH}"
    try:
        key = _read(client, mount)
    except BackendError as exc:
        log.warning(
            "cannot read the seal key at %s (%s): revocations look credentials up and inbox rows are not authenticated (a "
            "database insider can forge clicks); run `jitbot vault sync`",
            where,
            describe(exc),
        )
        return None
    if key is None:
        log.warning(
            "no seal key at %s: revocations look credentials up and inbox rows are not authenticated (a database "
            "insider can forge clicks); run `jitbot vault sync`",
            where,
        )
        return None
    try:
        return Sealer(bytes.fromhex(key))
    except ValueError:
        raise CredentialError(f"the seal key at {where} is not 32 or more hex-encoded bytes") from None
