"""The audit export's CSV built by SQLite itself, a page of lines at a time."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import ColumnElement, Engine, Table, bindparam, func, literal_column, select

# seq values per page: a page's text is a few MB. (Two connections building pages at once were slower, not faster:
# SQLite's allocator serializes them on its global memory mutex.)
PAGE = 5_000

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
    event; the pages end at the `seq` that was last when the export began (an append-only trail: a consistent prefix)."""
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
        for low in range(0, top, PAGE):
            text, count = connection.execute(page_query, {"low": low, "high": min(low + PAGE, top)}).one()
            if count:
                yield f"{text}\n", int(count)
