"""On-call and Jira end to end through Slack, on real OpenBao and both databases, with PagerDuty and Jira played by
stand-ins that check every call against the vendors' OpenAPI descriptions: an on-call requester is auto-approved and
the grant ends with the shift; off call, the request goes to the approvers; a closed Jira ticket is refused and a
grant whose Jira ticket closes is revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import hvac
import pytest

from devkit.standin import message_text as shown
from grants.adapters.vault_anchor import VaultAnchor
from tests.conftest import APPROVER, REQUESTER, World
from tests.e2e.test_e2e import approval_message, request_id_from
from tests.vendor_standins import JiraStandIn, OnCallEntry, PagerDutyStandIn

pytestmark = pytest.mark.timeout(180)
SCHEDULE = "P1A2B3C"
ARI, BEN = "U0APPR001", "U0APPR002"  # db-oncall: may request staging-read, which no developers' rule approves for them


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as standin:
        yield standin
    assert standin.violations == []


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    with JiraStandIn() as standin:
        yield standin
    assert standin.violations == []


@pytest.fixture
def catalog_edits(pagerduty: PagerDutyStandIn, jira: JiraStandIn, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("JITBOT_ONCALL_TOKEN", pagerduty.token)
    monkeypatch.setenv("JITBOT_TRACKER_JIRA_TOKEN", "jitbot@example.test:jira-api-token-1")
    monkeypatch.setenv("JITBOT_TICKET_WATCH", "1")
    return {
        "[groups]": f'[settings.oncall]\nurl = "{pagerduty.url}"\ncache = "1s"\naccounts = {{ {ARI} = "PARI001" }}\n\n'
        f'[settings.trackers.jira]\nkind = "jira"\nurl = "{jira.url}"\n\n[groups]',
        "[[scopes.staging-read.auto_approve]]": '[[scopes.staging-read.auto_approve]]\nname = "on call for payments"\n'
        f'on_call = {{ schedule = "{SCHEDULE}", max_escalation_level = 1 }}\nmax_duration = "1h"\nend_with_shift = true\n\n'
        "[[scopes.staging-read.auto_approve]]",
        "[scopes.payments-read.break_glass]": '[scopes.payments-read.ticket]\ntracker = "jira"\nend_when_closed = true\n\n'
        "[scopes.payments-read.break_glass]",
    }


def test_on_call_auto_approval_through_slack_ends_with_the_shift(world: World, pagerduty: PagerDutyStandIn) -> None:
    now = datetime.now(UTC)
    shift_end = (now + timedelta(seconds=40)).replace(microsecond=0)
    pagerduty.entries.append(OnCallEntry("PARI001", "Ari", SCHEDULE, 1, now - timedelta(hours=2), shift_end))
    status, body = world.client.slash(BEN, "staging-read 30m INC-9 paged")
    assert status == 200 and "if you are on call now" in body["text"], body  # PagerDuty is asked after the ack
    assert world.rows(f"SELECT state FROM requests WHERE id = '{request_id_from(body)}'") == [("pending",)]  # not on call
    status, body = world.client.slash(ARI, "staging-read 50m INC-9 paged")
    assert "on call for payments" in body["text"], body
    rid = request_id_from(body)
    world.wait_audit(rid, "issued")
    world.slack.wait_for(
        lambda: any("approved automatically" in shown(m) and rid in shown(m) for m in world.slack.dm_messages(ARI))
    )
    request = world.bot.runtime.store.get(rid)  # type: ignore[union-attr]
    assert request is not None and request.expires_at == shift_end  # not the 50m asked: the shift ends first
    token = world.unwrap(world.wrapping_token(ARI, rid))
    info = hvac.Client(url=world.vault_addr, token=token).auth.token.lookup_self()["data"]
    assert 0 < info["explicit_max_ttl"] <= 40
    approved = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'approved'")[0][0]
    assert "PARI001" in str(approved) and shift_end.isoformat() in str(approved)


def test_pagerduty_down_never_widens_access(world: World, pagerduty: PagerDutyStandIn) -> None:
    now = datetime.now(UTC)
    pagerduty.entries.append(OnCallEntry("PARI001", "Ari", SCHEDULE, 1, now - timedelta(hours=2), now + timedelta(hours=2)))
    pagerduty.down = True
    status, body = world.client.slash(ARI, "staging-read 50m INC-9 paged")
    assert status == 200 and "sent to" in body["text"], body
    rid = request_id_from(body)  # made after the ack: PagerDuty down, nobody is on call for it
    assert world.rows(f"SELECT state FROM requests WHERE id = '{rid}'") == [("pending",)] and "approved" not in world.audit_names(
        rid
    )


def test_jira_tickets_through_slack_refused_when_closed_revoked_when_closed_later(world: World, jira: JiraStandIn) -> None:
    jira.add("PAY-8")
    jira.close("PAY-8")
    world.client.slash(REQUESTER, "payments-read 30m PAY-8 look")  # Jira is asked after the ack, from the inbox
    refused = world.slack.wait_for(lambda: world.slack.responses_to(world.client.last_response_name))[0]["text"]
    assert "was not made" in refused and "PAY-8 is Done in jira; cite an open ticket." in refused, refused
    jira.add("PAY-7")
    status, body = world.client.slash(REQUESTER, "payments-read 30m PAY-7 replay refunds")
    rid = request_id_from(body)
    approval_message(world, rid)
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    world.slack.wait_for(lambda: len(jira.issues["PAY-7"].comments) >= 2 or None, timeout=15)  # requested, granted
    jira.close("PAY-7")
    closed = time.monotonic()
    world.wait_audit(rid, "revoked", timeout=60)
    print(f"jira ticket closed -> revoked in {time.monotonic() - closed:.2f} s")
    world.slack.wait_for(lambda: any("was revoked" in shown(m) for m in world.slack.dm_messages(REQUESTER) if rid in shown(m)))


def test_a_hanging_tracker_never_holds_the_audit_anchor_back(world: World, jira: JiraStandIn) -> None:
    """The ticket watch asks Jira about every ticket-bound grant each round; while Jira hangs (4.5 s an answer, under
    the tracker's 5 s timeout), the anchor still follows the trail within a few ticks (it waited for Jira before)."""
    jira.add("PAY-9")
    status, body = world.client.slash(REQUESTER, "payments-read 30m PAY-9 replay refunds")
    rid = request_id_from(body)
    approval_message(world, rid)
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    jira.delay = 4.5
    time.sleep(1.2)  # a watch round (every second here) is now waiting on Jira
    status, body = world.client.slash(REQUESTER, "staging-read 30m INC-10 look")  # new events while it waits
    assert status == 200
    head = world.rows("SELECT max(seq) FROM audit_events")[0][0]
    anchor = VaultAnchor(world.vault, "secret/jitbot/audit-anchor")
    caught_up = time.monotonic()
    world.slack.wait_for(lambda: ((found := anchor.latest()) is not None and found.seq >= head) or None, timeout=10)
    print(f"anchored seq {head} {time.monotonic() - caught_up:.2f} s after it was written, Jira hanging")
    assert time.monotonic() - caught_up < 2.5, "the anchor waited for the tracker"
    jira.delay = 0.0
