"""Unit tests of `grants/usecases/queries.py`: who sees what."""

from __future__ import annotations

from tests.catalogs import APPROVER_1, OUTSIDER, REQUESTER


def test_waiting_on_lists_only_what_the_approver_can_decide(core):
    service = core.service
    request = service.request(REQUESTER, "payments-read", "10m", "INC-1")
    assert [r.id for r in service.waiting_on(APPROVER_1)] == [request.id]
    assert service.waiting_on(REQUESTER) == [] and service.waiting_on(OUTSIDER) == []
