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
        """Write only over `version` (KV v2 check-and-set; 0: only if none exists): two leaders racing cannot put an
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
        written = datetime.fromisoformat(str(meta["created_time"]).replace("Z", "+00:00")[:26] + "+00:00")
        return Anchor(seq=int(data["seq"]), hash=str(data["hash"]), at=written.astimezone(UTC), version=int(meta["version"]))
