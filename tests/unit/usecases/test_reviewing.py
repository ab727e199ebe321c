"""Unit tests of `grants/usecases/reviewing.py`: break-glass, its cap and its review."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grants.domain import AlreadyDecided, InvalidRequest, NotAllowed, State
from tests.unit.usecases.worlds import AUD, DEV, LEAD1, LEAD2, REQ


def test_break_glass_eligibility_cap_and_review(w):
    service, store, issuer, notifier, timer = w.service, w.store, w.issuer, w.notifier, w.timer
    with pytest.raises(InvalidRequest, match="not available"):
        service.break_glass(DEV, "db", "10m", "fire")
    with pytest.raises(InvalidRequest, match="capped at 20m"):
        service.break_glass(REQ, "db", "30m", "fire")
    with pytest.raises(InvalidRequest, match="reason"):
        service.break_glass(REQ, "db", "10m", " ")
    r = service.break_glass(REQ, "db", "10m", "INC-9 db is on fire")
    assert r.state is State.ACTIVE and r.break_glass and r.review_state == "open" and issuer.live
    assert ("notice", (r.id, [LEAD1, LEAD2], "break_glass")) in notifier.sent and "alert" in notifier.kinds()
    with pytest.raises(InvalidRequest, match="cannot be extended"):
        service.extend(r.id, REQ, "5m")
    timer.advance(timedelta(minutes=10))
    assert store.get(r.id).state is State.EXPIRED and store.get(r.id).review_state == "open"
    timer.advance(timedelta(minutes=50))  # review_within 1h passed: re-sent
    assert "review_reminded" in store.names()
    assert [x.id for x in service.open_reviews(AUD)] == [r.id] and service.open_reviews(DEV) == []
    with pytest.raises(NotAllowed):
        service.review(r.id, REQ, "acknowledged")
    reviewed = service.review(r.id, LEAD1, "flagged", "should have paged first")
    assert reviewed.review_state == "flagged" and store.names()[-1] == "review_flagged"
    with pytest.raises(AlreadyDecided):
        service.review(r.id, LEAD2, "acknowledged")
    assert service.open_reviews(AUD) == []
