"""Every payload the bot builds, worst cases included, passes slack_sdk's validators and Slack's documented limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import blocks, home, messages
from bot.slack_limits import clip
from grants.catalog import Catalog, CatalogError, parse_catalog
from grants.credentials import CredentialHandle
from grants.domain import (
    AlreadyDecided,
    Approval,
    DomainError,
    ExtensionOffered,
    Grant,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PendingExtension,
    Request,
    Review,
    State,
    decision_ref,
)
from grants.lifecycle import Event
from grants.outbox import News
from grants.people import People
from tests.conftest import REQUESTER
from tests.slack_payloads import check_blocks, check_options_response, check_view, raw_angle_brackets

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
MANY = [f"U0MANY{n:04d}" for n in range(250)]
HOSTILE = "<!channel> & <@U0FAKE> <https://evil.example|your bank> " * 60  # ~3,500 characters, escaping grows it
LONG_DESCRIPTION = ("Read <everything> & more; " * 120)[:3000]


def catalog_data(description: str = "Read production payment secrets", scopes: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "settings": {"auditors": ["U0AUDIT01"]},
        "groups": {"many": MANY},
        "scopes": {
            "payments-read": {
                "description": description,
                "policies": ["payments-read"],
                "requesters": ["*"],
                "approvers": ["group:many"],
                "max_duration": "1h",
            },
            "payments-write": {
                "description": "Change payments",
                "policies": ["payments-write"],
                "requesters": ["*"],
                "approval_steps": [
                    {"name": "lead " * 20, "approvers": MANY[:3], "approvals": 1},
                    {"name": "security", "approvers": MANY[3:], "approvals": 2},
                ],
            },
        },
    }
    for n in range(scopes):
        data["scopes"][f"team-{n:03d}-read"] = {
            "description": f"Team {n} secrets",
            "policies": ["x"],
            "requesters": ["*"],
            "approvers": ["group:many"],
        }
    return data


def worst_catalog(scopes: int = 0) -> Catalog:
    """A valid catalog, then a description `jitbot check` would refuse: the builders must hold anyway."""
    catalog = parse_catalog(catalog_data(scopes=scopes))
    huge = catalog.scopes["payments-read"].model_copy(update={"description": LONG_DESCRIPTION})
    empty = catalog.scopes["payments-write"].model_copy(update={"description": ""})
    return catalog.model_copy(update={"scopes": {**catalog.scopes, "payments-read": huge, "payments-write": empty}})


def req(n: int = 1, **fields: Any) -> Request:
    base: dict[str, Any] = dict(
        id=f"JIT-{n:08d}",
        scope="payments-read",
        requester=REQUESTER,
        duration=timedelta(minutes=30),
        reason=HOSTILE,
        state=State.PENDING,
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
    )
    return Request(**{**base, **fields})


def every_state() -> list[Request]:
    later = NOW + timedelta(minutes=30)
    grant = Grant(CredentialHandle("vault_token", "acc"), NOW, later)
    return [
        req(1),
        req(2, scope="payments-write", approval=Approval(2, tuple(MANY[:1]))),
        req(
            3,
            state=State.ACTIVE,
            approval=Approval(1, tuple(MANY)),
            grant=grant,
            extension=PendingExtension(timedelta(minutes=15)),
        ),
        req(4, state=State.ACTIVE, break_glass=True, review=Review("open", later), grant=grant),
        req(5, state=State.DENIED, approval=Approval(1, (), MANY[0], NOW)),
        req(
            6,
            state=State.REVOKED,
            approval=Approval(1, (), MANY[0]),
            ended_at=NOW,
            grant=replace(grant, extensions=3),
            review=Review("flagged", later, MANY[1]),
        ),
        req(7, state=State.EXPIRED, ended_at=NOW, approval=Approval(1, tuple(MANY))),
        req(8, state=State.TIMED_OUT, ended_at=NOW, reason=""),
        req(9, scope="gone-scope", state=State.FAILED, ended_at=NOW),
    ]


# ---- the limits themselves ----------------------------------------------------------------------------


def test_clip_never_splits_markup_and_marks_the_cut():
    assert clip("short", 10) == "short"
    assert clip("x" * 20, 10) == "x" * 9 + "…" and len(clip("x" * 20, 10)) == 10
    assert clip("abcdef <@U0APPR001> and more", 12) == "abcdef …", "a cut mention would leave a raw `<`"
    assert clip("abcdefgh &amp; more", 12) == "abcdefgh …", "a cut entity would show as `&am`"
    assert clip("a &lt;b&gt; c d e f g h", 13) == "a &lt;b&gt; …"


# ---- every block builder, worst cases -------------------------------------------------------------------


@pytest.mark.parametrize("request_", every_state(), ids=lambda r: r.state.value)
def test_approval_messages_fit_with_a_3000_character_description_a_hostile_reason_and_250_approvers(request_: Request):
    catalog = worst_catalog()
    for step_done in (False, True):
        fallback, body = blocks.approval_message(request_, catalog, step_done)
        check_blocks(body)
        assert request_.id in fallback
    first = body[0]["text"]["text"]
    assert len(first) <= 3000 and first.endswith("…") if request_.scope == "payments-read" else True
    reason_field = next(f["text"] for f in body[1]["fields"] if f["text"].startswith("*Reason*"))
    assert "&lt;!channel&gt;" in reason_field or reason_field.endswith("—"), "escaped first, then cut"


def test_every_other_message_builder_fits():
    for r in every_state():
        check_blocks(blocks.expiring(r, messages.news_text(r, News.EXPIRING, {"can_extend": True}), True))
        check_blocks(blocks.expiring(r, HOSTILE, False))
        check_blocks(blocks.extension_offer(messages.esc(HOSTILE), r.id))
        check_blocks(blocks.receipt(messages.esc(HOSTILE) * 2, r))
        check_blocks(blocks.note(f"{r.id}: {blocks.status_line(r)}"))
        check_blocks([blocks.decide_buttons(r), blocks.review_buttons(r.id)])
        for text in (blocks.thread_line(r), *(blocks.outcome_text(v, r) for v in ("nudge", "extend", "revoke"))):
            assert not raw_angle_brackets(text), text
    text = blocks.request_list(every_state() * 100, every_state() * 100)
    assert len(text) <= 40000 and not raw_angle_brackets(text)
    assert not raw_angle_brackets(blocks.review_list(every_state()))


@pytest.mark.parametrize("ask_public_key", [False, True])
@pytest.mark.parametrize("scopes", [0, 98, 250])
def test_the_request_form_fits_with_any_number_of_scopes_and_an_empty_description(scopes: int, ask_public_key: bool):
    catalog = worst_catalog(scopes)
    names = list(catalog.scopes)
    view = blocks.request_modal(catalog, names, "C0" + "X" * 4000, ask_public_key=ask_public_key)
    check_view(view)
    assert any(b.get("block_id") == blocks.PUBLIC_KEY for b in view["blocks"]) is ask_public_key
    picker = view["blocks"][0]["element"]
    if len(names) <= 100:
        assert picker["type"] == "static_select" and [o["value"] for o in picker["options"]] == names
        empty = next(o for o in picker["options"] if o["value"] == "payments-write")
        assert "description" not in empty, "an empty description is left out, not sent empty"
    else:
        assert picker == {
            "type": "external_select",
            "action_id": blocks.SCOPE_SEARCH,
            "min_query_length": 0,
            "placeholder": {"type": "plain_text", "text": "Type to search the scopes"},
        }
        served = blocks.scope_options(catalog, names)
        check_options_response({"options": served})
        assert len(served) == 100
        assert [o["value"] for o in blocks.scope_options(catalog, names, "TEAM-24")] == [
            f"team-{n:03d}-read" for n in range(240, 250)
        ]
        assert [o["value"] for o in blocks.scope_options(catalog, names, "team 7 secrets")] == ["team-007-read"]
        assert blocks.scope_options(catalog, names, "nothing like this") == []


def test_deny_and_notice_modals_fit():
    for r in every_state():
        check_view(blocks.deny_modal(r, decision_ref(r)))
    check_view(blocks.notice_modal("A title far longer than twenty-four characters", messages.esc(HOSTILE)))


def test_home_with_sixty_pending_requests_fits():
    mine = [req(n) for n in range(60)]
    view = home.home_view(mine, [], False, NOW, "/elevate")
    check_view(view)
    shown = [b for b in view["blocks"] if b.get("accessory", {}).get("action_id") == blocks.CANCEL]
    assert len(shown) == home.MAX_PENDING
    assert any("…and 55 more: `/elevate list`" in json.dumps(b, ensure_ascii=False) for b in view["blocks"])


def test_home_of_an_auditor_with_every_list_long_fits():
    later = NOW + timedelta(minutes=30)
    grant = Grant(CredentialHandle("vault_token", "acc"), NOW, later)
    active = [req(100 + n, state=State.ACTIVE, grant=grant) for n in range(20)]
    pending = [req(200 + n) for n in range(20)]
    for waiting, reviews in ((5, 5), (60, 60)):
        on_you = [req(300 + n, requester=MANY[n]) for n in range(waiting)]
        open_ = [
            req(400 + n, requester=MANY[n], state=State.ACTIVE, break_glass=True, review=Review("open", later), grant=grant)
            for n in range(reviews)
        ]
        view = home.home_view(active + pending, on_you, True, NOW, "/elevate", open_)
        check_view(view)
        text = json.dumps(view["blocks"], ensure_ascii=False)
        assert "…and 10 more: `/elevate list`" in text and "…and 15 more: `/elevate list`" in text
        if reviews > home.MAX_REVIEWS:
            assert f"…and {reviews - home.MAX_REVIEWS} more: `/elevate reviews`" in text
            assert f"…and {waiting - home.MAX_WAITING} more: `/elevate list`" in text


# ---- texts the bot sends: no raw `<` ---------------------------------------------------------------------


def test_help_usage_and_error_texts_have_no_raw_angle_brackets():
    catalog = worst_catalog()
    people = People(catalog)
    texts = [
        messages.help_text("/elevate", list(catalog.scopes)),
        messages.form_failed_text("expired_trigger_id", "/elevate", [f"s{n}" for n in range(30)]),
        messages.deny_form_failed_text("<weird>", "JIT-<x>"),
        *(
            messages.usage_text("Name it.", "/elevate", usage)
            for usage in (
                "revoke <request-id>",
                "extend <request-id> [duration]",
                "break-glass <scope> [duration] <reason…>",
                None,
            )
        ),
        *(
            messages.error_text(error, "/elevate")
            for error in (
                InvalidRequest("There is no scope `<https://evil|x>`."),
                NotFound("There is no request `<!here>`."),
                NotAllowed("Only approvers.", rule="not_an_approver"),
                AlreadyDecided("JIT-1 <@U0EVIL01>", request_id="JIT-1", state=State.APPROVED, decided_by="U0APPR001"),
                AlreadyDecided("JIT-1 was already decided: it is <@U0EVIL01>."),
                ExtensionOffered("You hold it.", request_id="JIT-1"),
                DomainError("<odd>"),
            )
        ),
        messages.receipt_text(req(1), catalog.scopes["payments-read"], people, "/elevate"),
        messages.notice_text(req(1), frozenset(MANY), "reminder"),
        *(
            messages.news_text(
                replace(r, approval=Approval(1, (), MANY[0])), news, {"reason": HOSTILE, "actor": MANY[0], "note": HOSTILE}
            )
            for r in every_state()
            for news in (*Event, *News)  # every kind (tests/unit/test_slack_texts.py: alerts, credentials, listeners)
        ),
    ]
    for text in texts:
        assert not raw_angle_brackets(text), text
    assert any("already decided: it is approved by <@U0APPR001>." in t for t in texts), "the bot's own mentions ping"
    assert not any("<@U0EVIL01>" in t for t in texts), "a mention inside the core's plain text is shown, not pinged"
    assert any("no scope `&lt;https://evil|x&gt;`" in t for t in texts), "a link typed by someone is shown, not followed"
    receipt = next(t for t in texts if t.startswith(":outbox_tray:"))
    assert receipt.count("<@") == messages.MAX_NAMED and "and 230 more" in receipt and len(receipt) < 1000


def test_jitbot_check_refuses_an_empty_or_overlong_description():
    for description, says in (("", "description: empty"), ("  ", "description: empty"), ("x" * 301, "301 characters")):
        with pytest.raises(CatalogError) as refused:
            parse_catalog(catalog_data(description))
        assert any(p.startswith("scopes.payments-read.description") and says in p for p in refused.value.problems), refused.value
    assert parse_catalog(catalog_data("x" * 300)).scopes["payments-read"].description == "x" * 300
