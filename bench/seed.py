"""Seeding helpers: real Vault tokens through the scope's token role, grants written through the real schema and row mapping."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

import hvac
from sqlalchemy import func, insert, select

from bench.core import SCOPE, Lab
from grants.adapters.kinds.vault_token import token_role
from grants.adapters.migrate import upgrade
from grants.adapters.sql_store import _to_row, make_engine
from grants.adapters.sql_tables import OutboxRow, RequestRow
from grants.catalog import Catalog
from grants.credentials import CredentialHandle
from grants.deadlines import next_wake
from grants.domain import Approval, Grant, Request, State, new_request_id
from grants.seals import Sealer

# The request each seeded token was issued for (its metadata): the bot revokes only a grant's own token.
TOKEN_OWNERS: dict[str, str] = {}


def create_tokens(lab: Lab, count: int, ttl: str = "15m", workers: int = 8) -> list[str]:
    """`count` grant-shaped tokens created with the bot's own token through the scope's role (wrapped, as the
    bot's policy requires); their accessors. Each token's request ID is remembered in TOKEN_OWNERS."""
    local = threading.local()
    _ = lab.vault  # started here, on the caller's thread: the server dies with the thread that started it

    def one(index: int) -> str:
        if not hasattr(local, "client"):
            local.client = lab.bot_vault()
        client: hvac.Client = local.client
        request_id = new_request_id()
        response = client.auth.token.create(
            role_name=token_role(SCOPE),
            policies=[SCOPE],
            ttl=ttl,
            explicit_max_ttl=ttl,
            renewable=False,
            display_name=f"jitbot-{request_id}",
            meta={"request_id": request_id, "requester": "U0BENCH", "scope": SCOPE},
            wrap_ttl="60s",
        )
        accessor = str(response["wrap_info"]["wrapped_accessor"])
        TOKEN_OWNERS[accessor] = request_id
        return accessor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def active_grants(
    accessors: list[str], expiries: list[datetime], now: datetime, catalog: Catalog | None = None, sealer: Sealer | None = None
) -> list[Request]:
    """Active grants as the service leaves them after `issued`: one per accessor, expiring at the given times, sealed
    as the bot seals what it issues when `sealer` is given (the key the bot reads from the lab's Vault)."""
    scope = catalog.scopes.get(SCOPE) if catalog is not None else None
    ids: set[str] = set()
    grants = []
    for index, (accessor, expires_at) in enumerate(zip(accessors, expiries, strict=True)):
        request_id = TOKEN_OWNERS.get(accessor) or new_request_id()
        while request_id in ids:
            request_id = new_request_id()
        ids.add(request_id)
        duration = max(timedelta(seconds=1), expires_at - now)
        handle = CredentialHandle("vault_token", accessor)
        grant = Request(
            id=request_id,
            scope=SCOPE,
            requester=f"U0G{index:06d}",
            duration=timedelta(seconds=round(duration.total_seconds())),
            reason="bench: seeded grant",
            state=State.ACTIVE,
            created_at=now - timedelta(seconds=30),
            pending_until=now + timedelta(hours=1),
            approval=Approval(given=("U0APPR001",), decided_by="U0APPR001", decided_at=now - timedelta(seconds=20)),
            grant=Grant(
                handle,
                now - timedelta(seconds=20),
                expires_at,
                seal=sealer.seal(handle, request_id) if sealer is not None else None,
            ),
            version=2,
        )
        grants.append(replace(grant, wake_at=next_wake(scope, grant)))
    return grants


def insert_requests(database_url: str, requests: list[Request]) -> None:
    """Migrate the database and bulk-insert these requests with the store's own row mapping."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        rows = [_to_row(request) for request in requests]
        with engine.begin() as connection:
            for start in range(0, len(rows), 5000):
                connection.execute(insert(RequestRow.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]
    finally:
        engine.dispose()


class StateCounter:
    """Counts requests by state on its own connection pool (for polling while the bot works)."""

    def __init__(self, database_url: str):
        self.engine = make_engine(database_url)
        self._table = RequestRow.__table__  # type: ignore[attr-defined]

    def count(self, state: State) -> int:
        query = select(func.count()).select_from(self._table).where(self._table.c.state == state.value)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def unsent(self) -> int:
        """Outbox rows neither delivered nor given up: the messages still to go out (whichever process sends them)."""
        table = OutboxRow.__table__  # type: ignore[attr-defined]
        query = select(func.count()).select_from(table).where(table.c.delivered_at.is_(None), table.c.failed_at.is_(None))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
