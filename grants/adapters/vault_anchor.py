"""The audit chain's anchor in Vault KV v2: the bot may write new versions but never delete, so a database
insider cannot rewrite or truncate the trail without `jitbot audit verify` noticing."""

from __future__ import annotations

from datetime import UTC, datetime

import hvac
from hvac.exceptions import InvalidPath, InvalidRequest

from grants.adapters.vault_client import BackendError, describe
from grants.audit import Anchor, AnchorMoved
from grants.credentials import CredentialError


class VaultAnchor:
    """Implements the AuditAnchor port on one KV v2 path (`mount/path`)."""

    def __init__(self, client: hvac.Client, where: str):
        self._client = client
        self.mount, _, self.path = where.partition("/")

    def write(self, seq: int, hash_: str, version: int) -> None:
        """Write only over `version` (KV v2 check-and-set; 0: only if none exists): two workers racing cannot put an
        older head over a newer one, nor over an anchor written since the chain was checked against it."""
        try:
            self._client.secrets.kv.v2.create_or_update_secret(
                path=self.path, secret={"seq": seq, "hash": hash_}, cas=version, mount_point=self.mount
            )
        except InvalidRequest as exc:
            if "check-and-set" in str(exc):
                raise AnchorMoved(f"the anchor at {self.mount}/{self.path} moved past version {version}") from None
            raise CredentialError(f"could not anchor the audit chain at {self.mount}/{self.path}: {describe(exc)}") from None
        except BackendError as exc:
            raise CredentialError(f"could not anchor the audit chain at {self.mount}/{self.path}: {describe(exc)}") from None

    def latest(self) -> Anchor | None:
        try:
            read = self._client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True
            )
        except InvalidPath:
            return None
        except BackendError as exc:
            raise CredentialError(f"could not read the audit anchor at {self.mount}/{self.path}: {describe(exc)}") from None
        data, meta = read["data"]["data"], read["data"]["metadata"]
        # Vault's own clock says when it was written: the database's cannot be trusted here.
        written = vault_time(str(meta["created_time"]))
        return Anchor(seq=int(data["seq"]), hash=str(data["hash"]), at=written, version=int(meta["version"]))


def vault_time(text: str) -> datetime:
    """A time as Vault writes it (RFC 3339: `Z`, nanoseconds with their trailing zeros dropped), in UTC.
    Python 3.11 reads every such form; cutting the text to a fixed width did not (`.20649Z` broke anchoring)."""
    return datetime.fromisoformat(text).astimezone(UTC)


def check_anchor(client: hvac.Client, where: str, policy: str = "jitbot-bot") -> list[str]:
    """`jitbot vault sync`'s check of JITBOT_AUDIT_ANCHOR: a KV v2 mount, and a path the bot's own policy may write
    (asked of Vault for a throwaway token holding only that policy). An "error:" line otherwise: an anchor that cannot
    be written leaves the trail unanchored, which `/healthz` and `jitbot audit verify` then report as down."""
    mount, _, path = where.partition("/")
    where_ = f"audit anchor {where} (JITBOT_AUDIT_ANCHOR)"
    try:
        mounts = client.sys.list_mounted_secrets_engines()
        info = (mounts.get("data") or mounts).get(f"{mount}/")
        if info is None:
            return [f"error: {where_}: nothing is mounted at {mount}/; `bao secrets enable -path={mount} kv-v2`, then sync again"]
        if info.get("type") != "kv" or str((info.get("options") or {}).get("version")) != "2":
            return [f"error: {where_}: {mount}/ is {info.get('type')} (options {info.get('options')}), not KV version 2"]
        probe = client.auth.token.create(policies=[policy], no_default_policy=True, ttl="1m", display_name="jitbot-sync-check")
        try:
            answer = client.write("sys/capabilities", token=probe["auth"]["client_token"], paths=[f"{mount}/data/{path}"])
        finally:
            client.auth.token.revoke_accessor(probe["auth"]["accessor"])
    except BackendError as exc:
        return [f"error: {where_}: cannot check it: {describe(exc)}"]
    data = answer.get("data", answer) if isinstance(answer, dict) else {}
    capabilities = set(data.get(f"{mount}/data/{path}") or data.get("capabilities") or [])
    if not {"create", "update"} <= capabilities:
        return [
            f"error: {where_}: the bot's policy {policy} may not write {mount}/data/{path} (it may: "
            f"{', '.join(sorted(capabilities)) or 'nothing'}); give it create and update there"
        ]
    return [f"{where_}: KV v2, writable by {policy}"]
