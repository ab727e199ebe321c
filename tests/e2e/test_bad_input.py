"""Bad input: invisible and control characters refused in every free-text field, negative or absurd
durations refused, and no input, however malformed, gives an HTTP 5xx or stores anything."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time
from typing import Any

import pytest

from bot.logs import JsonFormatter
from grants.durations import DurationError, looks_like_duration, parse_duration
from grants.text import refused_character
from tests.conftest import APPROVER, REQUESTER, SIGNING_SECRET, World

NASTY = [
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u202e",
    "\u2066",
    "\u200e",
    "\u061c",
    "\u200b",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\r",
    "\t",
    "\U000e0041",  # a tag character: invisible ASCII
    "\U000e0001",
    "\u2061",  # invisible math operators
    "\u2064",
    "\u00ad",  # soft hyphen
    "\u180e",  # Mongolian vowel separator
    "\u2028",  # line and paragraph separators
    "\u2029",
    "\u3164",  # Hangul fillers render as nothing
    "\u115f",
    "\u1160",
    "\uffa0",
    "\u034f",  # combining grapheme joiner
    "\ufe01",  # a variation selector that is no emoji's
    "\ufe0f",  # an emoji selector after a letter
    "\U000e0100",
    "\ud800",  # a lone surrogate (JSON can carry one)
]


@pytest.mark.parametrize("char", NASTY)
def test_the_plain_text_rule_refuses_controls_bidi_and_zero_width(char: str):
    assert refused_character(f"INC-1 fix{char}it") is not None
    assert refused_character("INC-1 fix it\nline two, café, 日本語, emoji 🚀") is None


def test_durations_refuse_negative_and_absurd_text():
    for text in ("-5m", "-1h", "5" * 5000 + "m", "9" * 30, "٣m", "+5m", "0m"):
        with pytest.raises(DurationError):
            parse_duration(text)
    assert looks_like_duration("-5m") and looks_like_duration("5" * 5000)
    assert parse_duration("1h30m").total_seconds() == 5400


def requests_and_events(world: World) -> tuple[int, list[str]]:
    count = world.rows("SELECT count(*) FROM requests")[0][0]
    names = [r[0] for r in world.rows("SELECT event FROM audit_events ORDER BY seq")]
    return count, names


def test_a_nul_or_bidi_reason_is_refused_with_a_clear_message(world: World):
    for text in (
        "payments-read 30m INC-1 fix\x00it",
        "payments-read 30m INC-1 \u202eti xif",
        "payments-read 30m INC-\u200b1 fix",
    ):
        status, body = world.client.slash(REQUESTER, text)
        assert status == 200 and body["response_type"] == "ephemeral", body
        assert "Retype it in plain characters" in body["text"], body
    status, body = world.client.slash(REQUESTER, "payments-read -5m INC-1 fix it")
    assert status == 200 and "negative" in body["text"], body
    status, body = world.client.slash(REQUESTER, "payments-read " + "5" * 5000 + "m INC-1 fix it")
    assert status == 200 and "too long to be a duration" in body["text"], body
    assert requests_and_events(world) == (0, [])


def test_the_request_form_and_the_deny_form_refuse_hidden_characters(world: World):
    values = {
        "scope": {"value": {"type": "static_select", "selected_option": {"value": "payments-read"}}},
        "duration": {"value": "30m"},
        "reason": {"value": "INC-1 \u202eerased"},
    }
    status, body = world.client.submit_view(REQUESTER, "request_modal", values)
    assert status == 200 and body["response_action"] == "errors" and "plain characters" in body["errors"]["reason"], body
    assert requests_and_events(world) == (0, [])
    rid = world.client.slash(REQUESTER, "payments-read 30m INC-1 real")[1]["text"].split("`")[1]
    status, body = world.client.submit_view(APPROVER, "deny_modal", {"reason": {"value": "no\x00pe"}}, private_metadata=rid)
    assert status == 200 and body["response_action"] == "errors" and "plain characters" in body["errors"]["reason"], body
    assert world.rows(f"SELECT state FROM requests WHERE id = '{rid}'")[0][0] == "pending"


def test_the_word_payload_in_a_reason_or_a_channel_name_is_an_ordinary_command(world: World):
    """Bolt reads any form body containing "payload" as an interaction (empty without the field: HTTP 404)."""
    status, body = world.client.slash(REQUESTER, "payments-read 5m INC-2 replay stuck payloads")
    assert status == 200 and "`" in body["text"], body
    rid = body["text"].split("`")[1]
    assert world.rows(f"SELECT reason FROM requests WHERE id = '{rid}'") == [("INC-2 replay stuck payloads",)]
    status, body = world.client.slash(REQUESTER, "list", channel_id="C0PAYLOAD", channel_name="payload-team")
    assert status == 200 and rid in body["text"], body
    status, body = world.client.slash(REQUESTER, "help payload=x&payload", channel_name="payload")
    assert status == 200 and body.get("response_type") == "ephemeral", body
    # Re-spelled and re-signed only after the gate checked Slack's signature: a forged one still fails.
    form = "command=%2Felevate&text=payments-read+5m+INC-3+payloads&user_id=" + REQUESTER
    headers = {"Content-Type": "application/x-www-form-urlencoded", **world.client.sign(form)}
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    assert world.client.raw(form, headers)[0] == 401
    assert world.rows("SELECT count(*) FROM requests")[0][0] == 1


def payload_bodies(world: World) -> list[str]:
    """Signed interactive payloads, each malformed or hostile in its own way."""
    user = {"id": APPROVER, "team_id": world.client.team_id}
    team = {"id": world.client.team_id}

    def click(action: dict[str, Any], **extra: Any) -> str:
        return json.dumps({"type": "block_actions", "user": user, "team": team, "actions": [action], **extra})

    def view(callback: str, values: Any, metadata: Any = "") -> str:
        return json.dumps(
            {
                "type": "view_submission",
                "user": user,
                "team": team,
                "view": {"callback_id": callback, "private_metadata": metadata, "state": {"values": values}},
            }
        )

    bodies = [
        "not json",
        "[]",
        "{}",
        "null",
        json.dumps({"type": "block_actions"}),
        json.dumps({"type": "block_actions", "team": team}),
    ]
    for value in ("\x00", "JIT-\x00", "9" * 5000, "\u202eJIT-AAAA", None, 12345):
        for action_id in ("approve", "deny", "cancel", "done", "extend", "nudge", "review_ack"):
            bodies.append(click({"action_id": action_id, "value": value, "type": "button"}, trigger_id="1.2.x"))
    bodies.append(click({"action_id": "approve"}))
    bodies.append(json.dumps({"type": "block_actions", "user": user, "team": team, "actions": []}))
    bodies.append(json.dumps({"type": "block_actions", "team": team, "actions": [{"action_id": "approve", "value": "JIT-A"}]}))
    select = {"type": "static_select", "selected_option": {"value": "payments-read"}}
    for duration in ("-5m", "5" * 5000 + "m", "\x00", "٣m"):
        bodies.append(
            view(
                "request_modal",
                {
                    "scope": {"value": select},
                    "duration": {"value": {"value": duration}},
                    "reason": {"value": {"value": "INC-1 x"}},
                },
            )
        )
    for reason in ("\x00", "a\u202eb", "x" * 100_000):
        bodies.append(view("request_modal", {"scope": {"value": select}, "reason": {"value": {"value": reason}}}))
        bodies.append(view("deny_modal", {"reason": {"value": {"value": reason}}}, "JIT-AAAAAAAA"))
    for metadata in ("\x00", "9" * 5000, None, {"a": 1}):
        bodies.append(view("deny_modal", {"reason": {"value": {"value": "no"}}}, metadata))
    bodies += [
        view("request_modal", None),
        view("request_modal", {"scope": None}),
        view("request_modal", {"scope": {"value": {"selected_option": "x"}}}),
    ]
    bodies.append(json.dumps({"type": "view_submission", "user": user, "team": team}))
    return bodies


SLASH_TEXTS = [
    "\x00",
    "payments-read\x00",
    "payments-read 30m INC-1 \x00",
    "payments-read " + "9" * 5000,
    "payments-read -5m INC-2",
    "payments-read 99999999999999999999999d INC-3",
    "payments-read 30m " + "INC-4 " * 20_000,
    "break-glass payments-read -1m x",
    "revoke \x00",
    "revoke " + "A" * 5000,
    "extend JIT-AAAAAAAA " + "9" * 5000,
    "extend JIT-AAAAAAAA -5m",
    "audit --since " + "9" * 5000 + "d",
    "audit --since '",
    "audit --until 99999-99-99",
    "\u202epayments-read 30m INC-5",
    "list \u200b",
    "nudge",
    "cancel a b c",
    "payments-read ٣m INC-6",
]


def sign_bytes(body: bytes) -> dict[str, str]:
    """Slack's v0 signature over any bytes (slack_sdk's signer only takes text)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def test_no_input_gives_a_5xx_or_stores_anything(world: World):
    statuses: list[tuple[int, str]] = []
    for text in SLASH_TEXTS:
        status, body = world.client.slash(REQUESTER, text)
        statuses.append((status, repr(text[:40])))
    for raw in payload_bodies(world):
        form = "payload=" + __import__("urllib.parse").parse.quote(raw)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **world.client.sign(form)}
        status, body = world.client.raw(form, headers)
        statuses.append((status, raw[:80]))
    for raw_bytes, content_type in (
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00bad", "application/json"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"command=%ZZ&text=%00", "application/x-www-form-urlencoded"),
    ):
        headers = {"Content-Type": content_type, **sign_bytes(raw_bytes)}
        status, _ = world.client.raw(raw_bytes, headers)
        statuses.append((status, repr(raw_bytes)))
    for headers in (
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "9" * 5000},
        {},
    ):
        status, _ = world.client.raw("command=/elevate", {"Content-Type": "application/x-www-form-urlencoded", **headers})
        statuses.append((status, str(headers)[:40]))
    assert [s for s in statuses if s[0] >= 500] == []
    time.sleep(0.5)  # background work after the acks
    count, names = requests_and_events(world)
    assert count == 0 and set(names) <= {"rejected"}, names
    assert not any("\x00" in str(row) for row in world.rows("SELECT * FROM audit_events"))


def test_database_errors_do_not_carry_the_reason_into_logs(world: World):
    """A database error during a request: the trace names the error, never the SQL parameters or the reason."""
    if world.db_url.startswith("postgresql"):
        # PostgreSQL's own message says "Failing row contains (…)", the whole row, reason included.
        world.rows("SELECT 1")
        assert world.bot.runtime is not None
        with world.bot.runtime.store.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE requests ADD CONSTRAINT no_new_rows CHECK (length(reason) < 0) NOT VALID")
    else:
        assert world.bot.runtime is not None
        with world.bot.runtime.store.engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TRIGGER no_new_rows BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        status, _ = world.client.slash(REQUESTER, "payments-read 30m INC-8 zebra-cobalt-distinctive-reason")
        time.sleep(0.3)
    finally:
        root.removeHandler(handler)
    text = captured.getvalue()
    assert status < 500
    assert "IntegrityError" in text or "DatabaseError" in text, text  # the failure itself is logged
    assert "zebra-cobalt" not in text, text
    assert "INC-8" not in text


def test_the_log_trace_keeps_the_chain_and_withholds_database_messages():
    import sqlite3

    from bot.logs import safe_trace

    words = "-".join(("secret", "reason", "words"))  # built at run time: the trace quotes source lines
    try:
        try:
            raise sqlite3.IntegrityError(f"Failing row contains ({words})")
        except sqlite3.IntegrityError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        trace = safe_trace(outer)
    assert words not in trace
    assert (
        trace.index("sqlite3.IntegrityError: (message withheld")
        < trace.index("direct cause")
        < trace.index("RuntimeError: wrapped")
    )
