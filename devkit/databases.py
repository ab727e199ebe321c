"""Fresh, empty databases for the tests and the benchmarks: a SQLite file, or a new PostgreSQL database, removed after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN = os.environ.get("JITBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_database(kind: str, folder: Path, tag: str = "jitbot", admin: str = PG_ADMIN) -> Iterator[str]:
    """Yield the SQLAlchemy URL of an empty database of `kind`: "sqlite", the file `folder/<tag>.db`; "postgresql", a
    database named `<tag>_<random>` on the server `admin` (a libpq URL of a role that may create databases) reaches.
    Afterwards the file (with its -wal and -shm) is deleted, or the database dropped, sessions still in it or not."""
    if kind == "sqlite":
        path = folder / f"{tag}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in folder.glob(f"{path.name}*"):
                leftover.unlink(missing_ok=True)
        return
    assert kind == "postgresql", f"a database is sqlite or postgresql, not {kind!r}"
    name = f"{tag}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    host = admin.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
