"""Fresh databases for tests (the dev kit's helper, shared with bench/) and a migrated store on one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from devkit.databases import PG_ADMIN, fresh_database
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import SqlStore, make_engine

__all__ = ["PG_ADMIN", "fresh_database", "fresh_store"]


@contextmanager
def fresh_store(kind: str, tmp_path: Path, claim_lease: timedelta | None = None) -> Iterator[SqlStore]:
    """A SqlStore on a fresh, migrated database of `kind` (with `claim_lease` for tests of leases), closed afterwards."""
    with fresh_database(kind, tmp_path) as url:
        store = SqlStore(make_engine(url), **({"claim_lease": claim_lease} if claim_lease is not None else {}))
        upgrade(store.engine)
        yield store
        store.close()
