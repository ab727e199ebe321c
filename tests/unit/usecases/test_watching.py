"""Unit tests of `grants/usecases/watching.py`: a grant ends when its ticket closes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from grants.domain import State
from tests.unit.usecases.worlds import OPEN, active_grant


@pytest.mark.parametrize("ticket_now", ["closed", "gone"])
def test_the_watcher_ends_a_grant_whose_ticket_closed_or_went_away(ticket_now: str) -> None:
    world, tracker, rid = active_grant()
    if ticket_now == "closed":
        tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    else:
        del tracker.tickets["PAY-7"]
    assert [r.id for r in world.service.watch_tickets()] == [rid]
    assert world.store.get(rid).state is State.REVOKED and not world.issuer.live
    revoked = world.store.audit[-1]
    assert (revoked.event, revoked.actor, revoked.detail["cause"]) == ("revoked", "system", "ticket_closed")
    assert tracker.comments[-1] == ("PAY-7", f"jitbot {rid}: access revoked by system (ticket closed)")
    assert world.service.watch_tickets() == []


def test_the_watcher_leaves_open_tickets_and_ends_nothing_when_the_tracker_is_down() -> None:
    world, tracker, rid = active_grant()
    assert world.service.watch_tickets() == []
    tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    tracker.down = True
    assert world.service.watch_tickets() == [] and world.store.get(rid).state is State.ACTIVE
    tracker.down = False
    assert [r.id for r in world.service.watch_tickets()] == [rid]


def test_the_watcher_ends_only_grants_whose_scope_says_end_when_closed() -> None:
    world, tracker, rid = active_grant({"tracker": "jira", "end_when_closed": False})
    tracker.tickets["PAY-7"] = replace(OPEN, open=False, state="Done")
    assert world.service.watch_tickets() == [] and world.store.get(rid).state is State.ACTIVE
