"""One unreachable approver never silences a request: the real notifier against the Slack stand-in."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from devkit.standin import message_text
from tests.conftest import APPROVER, APPROVER_2, APPROVER_3, REQUESTER

ALERTS = "C0ALERTS1"


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {'alert_channel = ""': f'alert_channel = "{ALERTS}"'}


def failures(db_url: str, rid: str) -> list[str]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT detail FROM audit_events WHERE request_id = :r AND event = 'notification_failed'"), {"r": rid}
        )
        details = [row[0] for row in found]
    engine.dispose()
    return details


def request_id(world) -> str:
    status, body = world.client.slash(REQUESTER, "payments-read 10m INC-20 an approver left the company")
    assert status == 200, body
    return body["text"].split("`")[1]


def asked(world, rid: str, user: str) -> bool:
    return any(rid in message_text(m) and "[Approve]" in message_text(m) for m in world.slack.dm_messages(user))


def test_a_deactivated_approver_is_skipped_and_the_others_are_asked(world, db_url):
    world.slack.make_unreachable(APPROVER_2, "user_disabled")
    rid = request_id(world)
    world.bot.runtime.drain()
    assert asked(world, rid, APPROVER) and asked(world, rid, APPROVER_3)  # one DM each, instead of the group DM
    assert not asked(world, rid, APPROVER_2)
    (detail,) = failures(db_url, rid)
    assert APPROVER_2 in detail and "user_disabled" in detail and "user_not_found" not in detail
    alerts = [m["text"] for m in world.slack.messages.get(ALERTS, [])]
    assert any(rid in a and APPROVER_2 in a for a in alerts)
    assert not any("nobody could be asked" in m["text"] for m in world.slack.dm_messages(REQUESTER))
    world.client.click(APPROVER, "approve", rid)  # the request still moves
    world.bot.runtime.drain()
    world.slack.wait_for(lambda: any(rid in m["text"] and "```" in m["text"] for m in world.slack.dm_messages(REQUESTER)))


def test_when_nobody_can_be_reached_the_requester_and_the_alert_channel_know_at_once(world, db_url):
    for approver in (APPROVER, APPROVER_2, APPROVER_3):
        world.slack.make_unreachable(approver, "user_not_found")
    rid = request_id(world)
    world.bot.runtime.drain()
    assert any(rid in m["text"] and "nobody could be asked" in m["text"] for m in world.slack.dm_messages(REQUESTER))
    assert any(rid in m["text"] and "Nobody was reached" in m["text"] for m in world.slack.messages.get(ALERTS, []))
    assert len(failures(db_url, rid)) == 1
