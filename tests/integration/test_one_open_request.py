"""One open request per requester and scope holds under concurrency, enforced by the store on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from grants.catalog import parse_catalog
from grants.domain import DomainError, State
from tests.catalogs import REQUESTER, catalog_data
from tests.databases import fresh_store
from tests.fakes import Core, FakeStore, bootstrap


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def core(request: Any, tmp_path: Any) -> Iterator[Core]:
    data = catalog_data()
    data["groups"]["oncall"] = [REQUESTER]
    data["scopes"]["payments-read"]["break_glass"] = {"requesters": ["group:oncall"], "max_duration": "30m"}
    catalog = parse_catalog(data)
    if request.param == "fake":
        yield bootstrap(catalog, store=FakeStore())
        return
    with fresh_store(request.param, tmp_path) as store:
        yield bootstrap(catalog, store=store)  # type: ignore[arg-type]


def race(n: int, attempt: Callable[[], object]) -> tuple[int, list[DomainError]]:
    """`n` threads released together; how many succeeded, and the refusals the others got."""
    start, lock = threading.Barrier(n), threading.Lock()
    wins, refusals = [0], []

    def one() -> None:
        start.wait()
        try:
            attempt()
        except DomainError as refusal:
            with lock:
                refusals.append(refusal)
            return
        with lock:
            wins[0] += 1

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return wins[0], refusals


def open_requests(core: Core) -> list[Any]:
    return core.store.find(states=(State.PENDING, State.APPROVED, State.ACTIVE), requester=REQUESTER)


def test_twenty_identical_requests_at_once_make_one(core: Core) -> None:
    wins, refusals = race(20, lambda: core.service.request(REQUESTER, "payments-read", "10m", "INC-1 same"))
    assert wins == 1 and len(refusals) == 19 and len(open_requests(core)) == 1
    assert all("already" in str(refusal) for refusal in refusals)


def test_ten_break_glass_commands_at_once_make_one_grant(core: Core) -> None:
    wins, _ = race(10, lambda: core.service.break_glass(REQUESTER, "payments-read", "10m", "INC-2 fire"))
    active = open_requests(core)
    assert wins == 1 and [r.state for r in active] == [State.ACTIVE] and len(core.issuer.live) == 1


def test_a_new_request_is_possible_once_the_old_one_ended(core: Core) -> None:
    first = core.service.request(REQUESTER, "payments-read", "10m", "INC-3")
    core.service.cancel(first.id, REQUESTER)
    second = core.service.request(REQUESTER, "payments-read", "10m", "INC-3 again")
    assert second.id != first.id and len(open_requests(core)) == 1
