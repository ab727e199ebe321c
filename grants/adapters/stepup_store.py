"""Step-up links in the bot's database (grants.stepup.StepUpLinks): made on one process, followed on another."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from grants.adapters.sql_store import SqlStore, as_utc
from grants.adapters.sql_tables import StepUpLinkRow
from grants.stepup import StepUpLink

LINKS = StepUpLinkRow.__table__  # type: ignore[attr-defined]
KEEP = timedelta(days=1)  # a finished or expired link is dropped this long after it expired


class SqlStepUpLinks:
    def __init__(self, store: SqlStore):
        self.store = store

    def add(self, link: StepUpLink) -> None:
        with self.store._writing() as connection:
            connection.execute(delete(LINKS).where(LINKS.c.expires_at < link.created_at - KEEP))
            connection.execute(LINKS.insert().values(**_values(link)))

    def get(self, key: str) -> StepUpLink | None:
        with self.store.engine.connect() as connection:
            row = connection.execute(select(LINKS).where(LINKS.c.key == key)).first()
        return _link(row) if row is not None else None

    def begin(self, key: str, state: str, browser: str, now: datetime) -> bool:
        with self.store._writing() as connection:
            done = connection.execute(
                update(LINKS)
                .where(LINKS.c.key == key, LINKS.c.used_at.is_(None))
                .values(used_at=now, state=state, browser=browser)
            )
        return bool(done.rowcount)

    def finish(self, state: str) -> StepUpLink | None:
        with self.store._writing() as connection:
            row = connection.execute(select(LINKS).where(LINKS.c.state == state)).first()
            if row is None:
                return None
            # Whoever clears the state owns the sign-in: two callbacks racing with one state get it once. The row
            # stays (used), so the link, opened again, says it was used.
            taken = connection.execute(update(LINKS).where(LINKS.c.key == row.key, LINKS.c.state == state).values(state=None))
        return _link(row) if taken.rowcount else None


def _values(link: StepUpLink) -> dict[str, object]:
    return {name: getattr(link, name) for name in StepUpLink.__dataclass_fields__}


def _link(row: object) -> StepUpLink:
    values = {name: getattr(row, name) for name in StepUpLink.__dataclass_fields__}
    for name in ("created_at", "expires_at", "used_at"):
        values[name] = as_utc(values[name])
    return StepUpLink(**values)
