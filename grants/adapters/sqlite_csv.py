"""The audit export's CSV built by SQLite itself, a page at a time on two connections, written back in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from sqlalchemy import ColumnElement, Engine, Table, bindparam, func, literal_column, select

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


def csv_pages(reader: Engine, audit: Table, filters: list[ColumnElement[bool]]) -> Iterator[tuple[str, int]]:
    """(text of some CSV lines, how many) in `seq` order, the same bytes as the generic writer.

    Each page is one `group_concat` over a `seq` range, so Python handles one string per page instead of one per
    event; the pages end at the `seq` that was last when the export began (the trail is append-only, so that is a
    consistent prefix even though the pages are read by several connections)."""
    lines = (
        select(literal_column(_LINE).label("line"))
        .select_from(audit)
        .where(audit.c.seq > bindparam("low"), audit.c.seq <= bindparam("high"), *filters)
        .order_by(audit.c.seq)
        .subquery()
    )
    page_query = select(func.group_concat(lines.c.line, "\n"), func.count()).select_from(lines)
    with reader.connect() as connection:
        top = int(connection.execute(select(func.max(audit.c.seq))).scalar_one() or 0)

    def page(low: int) -> tuple[str | None, int]:
        with reader.connect() as connection:
            text, count = connection.execute(page_query, {"low": low, "high": min(low + PAGE, top)}).one()
            return text, int(count)

    pool = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="audit-export")
    try:
        lows = iter(range(0, top, PAGE))
        in_flight: deque[Future[tuple[str | None, int]]] = deque(pool.submit(page, low) for low in islice(lows, AHEAD))
        while in_flight:
            text, count = in_flight.popleft().result()
            for low in lows:  # keep AHEAD pages in flight
                in_flight.append(pool.submit(page, low))
                break
            if count:
                yield f"{text}\n", count
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
