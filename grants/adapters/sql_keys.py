"""What requesters register on SQL: their SSH public keys (ssh scopes) and CSRs (pki scopes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from grants.adapters.sql_db import SqlDatabase
from grants.adapters.sql_tables import CsrRow, SshKeyRow

SSH_KEYS = SshKeyRow.__table__  # type: ignore[attr-defined]
CSRS = CsrRow.__table__  # type: ignore[attr-defined]


class SqlKeys(SqlDatabase):
    """Implements the Keys port: one key and one CSR per user, replaced in one transaction."""

    def ssh_key(self, user: str) -> str | None:
        with self.reader.connect() as connection:
            found = connection.execute(select(SSH_KEYS.c.public_key).where(SSH_KEYS.c.user_id == user)).scalar()
        return str(found) if found is not None else None

    def set_ssh_key(self, user: str, public_key: str, fingerprint: str, at: datetime) -> None:
        row = {"public_key": public_key, "fingerprint": fingerprint, "registered_at": at}
        with self._writing() as connection:
            # Delete then insert in one transaction: the same on SQLite and PostgreSQL, no upsert dialects.
            connection.execute(SSH_KEYS.delete().where(SSH_KEYS.c.user_id == user))
            connection.execute(SSH_KEYS.insert().values(user_id=user, **row))

    def csr(self, user: str) -> str | None:
        with self.reader.connect() as connection:
            found = connection.execute(select(CSRS.c.csr).where(CSRS.c.user_id == user)).scalar()
        return str(found) if found is not None else None

    def set_csr(self, user: str, csr: str, fingerprint: str, at: datetime) -> None:
        with self._writing() as connection:
            connection.execute(CSRS.delete().where(CSRS.c.user_id == user))
            connection.execute(CSRS.insert().values(user_id=user, csr=csr, fingerprint=fingerprint, registered_at=at))
