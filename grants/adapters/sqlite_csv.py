"""The audit export's CSV built by SQLite itself, a page at a time on two connections, written back in order."""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from typing import Any

from sqlalchemy import Engine

from grants.audit import AuditQuery

PAGE = 5_000  # seq values per page: a page's text is a few MB, so the pages in flight stay far below the memory target
CONNECTIONS = 2  # SQLite builds a page's lines without Python's lock: two pages are built at once on two cores
AHEAD = 3  # pages in flight: enough to keep both connections busy while the caller writes

# JSON text never holds a raw line break, so a quote or a comma is what makes csv quote `detail`.
_DETAIL = "CASE WHEN instr(detail, '\"') OR instr(detail, ',') THEN '\"' || replace(detail, '\"', '\"\"') || '\"' ELSE detail END"
_LINE = (
    "seq || ',' || replace(at, ' ', 'T') || '+00:00,' || event || ',' || coalesce(request_id, '') || ',' || "
    "coalesce(scope, '') || ',' || actor || ',' || coalesce(subject, '') || ',' || " + _DETAIL + " || ',' || "
    "prev_hash || ',' || hash"
)


def csv_pages(reader: Engine, query: AuditQuery) -> Iterator[tuple[str, int]]:
    """(text of some CSV lines, how many) in `seq` order, the same bytes as the generic writer.

    Each page is one `group_concat` over a `seq` range, so Python handles one string per page instead of one per
    event; the pages end at the `seq` that was last when the export began (the trail is append-only, so that is a
    consistent prefix even though the pages are read by several connections)."""
    where, params = _filters(query)
    page_sql = (
        f"SELECT group_concat(line, char(10)), count(*) FROM (SELECT {_LINE} AS line FROM audit_events "  # noqa: S608 - fixed text, values bound
        f"WHERE seq > ? AND seq <= ? AND {where} ORDER BY seq)"
    )
    connections: queue.Queue[Any] = queue.Queue()
    for _ in range(CONNECTIONS):
        connections.put(reader.raw_connection())
    pool = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="audit-export")
    try:
        first = connections.get()
        connections.put(first)
        top = first.cursor().execute("SELECT max(seq) FROM audit_events").fetchone()[0] or 0

        def page(low: int) -> tuple[str | None, int]:
            connection = connections.get()
            try:
                row = connection.cursor().execute(page_sql, (low, min(low + PAGE, top), *params)).fetchone()
                return row[0], row[1]
            finally:
                connections.put(connection)

        lows = iter(range(0, top, PAGE))
        in_flight: deque[Future[tuple[str | None, int]]] = deque()
        for low in lows:
            in_flight.append(pool.submit(page, low))
            if len(in_flight) >= AHEAD:
                break
        while in_flight:
            text, count = in_flight.popleft().result()
            for low in lows:
                in_flight.append(pool.submit(page, low))
                break
            if count:
                yield f"{text}\n", count
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        while not connections.empty():
            connections.get().close()


def _filters(query: AuditQuery) -> tuple[str, list[object]]:
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    for clause, value in (("at >= ?", query.since), ("at < ?", query.until)):
        if value is not None:
            where.append(clause)
            params.append(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    if query.scope is not None:
        where.append("scope = ?")
        params.append(query.scope)
    if query.user is not None:
        where.append("(actor = ? OR subject = ?)")
        params += [query.user, query.user]
    if query.from_seq is not None:
        where.append("seq >= ?")
        params.append(query.from_seq)
    return " AND ".join(where), params
