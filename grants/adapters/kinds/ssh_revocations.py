"""SSH certificates in the shared database: each signed serial with its end, the early-revoked ones, the CA key; the
KRL every replica serves is built from these rows, so it is the same on each and needs no Vault."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from grants.adapters.kinds.ssh_krl import build_krl
from grants.adapters.sql_store import SqlStore, as_utc
from grants.adapters.sql_tables import SshCaKeyRow, SshCertificateRow

CERTIFICATES = SshCertificateRow.__table__  # type: ignore[attr-defined]
CA_KEYS = SshCaKeyRow.__table__  # type: ignore[attr-defined]
# A host whose clock is behind still accepts a certificate a little past its end: its serial stays that much longer.
HOST_SKEW = timedelta(minutes=10)
# A serial revoked with no row (signed before migration 0013) has no known end: kept this long, past any scope's total.
UNKNOWN_END = timedelta(days=30)


class SshRevocations:
    """One writer per revoke (a row update, never a rewritten list), so concurrent revokes on any replica all count."""

    def __init__(self, store: SqlStore, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store, self.now = store, now
        self._built: tuple[tuple[str, tuple[int, ...], int], bytes] | None = None  # the last KRL, rebuilt when the rows change
        self._lock = threading.Lock()

    def signed(self, mount: str, serial: int, request_id: str, valid_before: datetime, ca_public_key: str) -> None:
        """Record a certificate the moment Vault signed it (with its CA's key, for KRLs built while Vault is away)."""
        self.remember_ca(mount, ca_public_key)
        with self.store._writing() as connection:
            connection.execute(
                CERTIFICATES.insert().values(mount=mount, serial=str(serial), request_id=request_id, valid_before=valid_before)
            )
        self._prune()

    def revoke(self, mount: str, serial: int) -> None:
        """Mark the serial revoked (idempotent); a serial with no row (signed before this table) gets one."""
        now = self.now()
        try:
            with self.store._writing() as connection:
                found = connection.execute(
                    CERTIFICATES.update()
                    .where(
                        CERTIFICATES.c.mount == mount, CERTIFICATES.c.serial == str(serial), CERTIFICATES.c.revoked_at.is_(None)
                    )
                    .values(revoked_at=now)
                ).rowcount
                if not found and not self.is_revoked(mount, serial, connection):
                    connection.execute(
                        CERTIFICATES.insert().values(
                            mount=mount, serial=str(serial), valid_before=now + UNKNOWN_END, revoked_at=now
                        )
                    )
        except IntegrityError:
            pass  # another replica inserted the same unknown serial at the same moment: it is revoked
        self._prune()

    def is_revoked(self, mount: str, serial: int, connection: Connection | None = None) -> bool:
        query = select(CERTIFICATES.c.revoked_at).where(CERTIFICATES.c.mount == mount, CERTIFICATES.c.serial == str(serial))
        if connection is not None:
            return connection.execute(query).scalar() is not None
        with self.store.reader.connect() as reading:
            return reading.execute(query).scalar() is not None

    def ca_key(self, mount: str) -> str | None:
        with self.store.reader.connect() as connection:
            key = connection.execute(select(CA_KEYS.c.public_key).where(CA_KEYS.c.mount == mount)).scalar()
        return str(key) if key is not None else None

    def remember_ca(self, mount: str, ca_public_key: str) -> None:
        """Cache the mount's CA public key (a rotated CA replaces the old one: the list is built for the current CA)."""
        try:
            with self.store._writing() as connection:
                key = connection.execute(select(CA_KEYS.c.public_key).where(CA_KEYS.c.mount == mount)).scalar()
                if key is None:
                    connection.execute(CA_KEYS.insert().values(mount=mount, public_key=ca_public_key, seen_at=self.now()))
                elif key != ca_public_key:
                    connection.execute(
                        CA_KEYS.update().where(CA_KEYS.c.mount == mount).values(public_key=ca_public_key, seen_at=self.now())
                    )
        except IntegrityError:
            pass  # another replica cached it first

    def revoked_serials(self, mount: str) -> list[int]:
        """Serials revoked early whose certificates are still valid (plus HOST_SKEW): what the KRL must list."""
        return sorted(serial for serial, _ in self._listed(mount))

    def krl(self, mount: str, ca_public_key: str) -> bytes:
        """The KRL of `revoked_serials`, built by ssh-keygen only when the list (or the CA key) changed; dated by its
        latest revoke, so every replica serves the same bytes."""
        listed = self._listed(mount)
        version = max((int(at.timestamp()) for _, at in listed), default=0)
        wanted = (ca_public_key, tuple(sorted(serial for serial, _ in listed)), version)
        with self._lock:
            if self._built is None or self._built[0] != wanted:
                self._built = (wanted, build_krl(ca_public_key, wanted[1], version=version))
            return self._built[1]

    def _listed(self, mount: str) -> list[tuple[int, datetime]]:
        with self.store.reader.connect() as connection:
            rows = connection.execute(
                select(CERTIFICATES.c.serial, CERTIFICATES.c.valid_before, CERTIFICATES.c.revoked_at).where(
                    CERTIFICATES.c.mount == mount, CERTIFICATES.c.revoked_at.is_not(None)
                )
            ).all()
        now = self.now()
        return [(int(serial), as_utc(at)) for serial, end, at in rows if as_utc(end) + HOST_SKEW > now]  # type: ignore[misc, operator]

    def _prune(self) -> None:
        # A certificate past its validity is refused by sshd itself: its row is no longer needed. Its own transaction,
        # after the revoke's: a revoke holds one row lock only, so concurrent revokes cannot deadlock.
        with self.store._writing() as connection:
            connection.execute(CERTIFICATES.delete().where(CERTIFICATES.c.valid_before < self.now() - HOST_SKEW))
