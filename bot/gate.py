"""The gate in front of Bolt: a signed request from our workspace, seen for the first time, or a clear refusal."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import BoltRequest, BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier

from grants.replay import ReplayGuard

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Slack's requests are a few KB; a view submission stays far below this
SIGNATURE_WINDOW = timedelta(minutes=5)  # Slack's own: an older (or newer) timestamp fails the signature check
KEEP_SEEN = SIGNATURE_WINDOW + timedelta(minutes=1)  # a minute of margin for clock skew between replicas
KEEP_EVENTS = timedelta(hours=1)  # Slack retries an event for about 5 minutes (immediately, 1 min, 5 min)
_USER_ID = re.compile(r"^[A-Z0-9]{2,32}$")
ALREADY_PROCESSED = (
    ":warning: This request was already processed; a copy of it was refused. If you meant to do it again, type the command again."
)


class Refusal(Exception):
    """The HTTP answer to a request the gate turned away."""

    def __init__(self, status: str, body: dict[str, Any] | None = None):
        super().__init__(status)
        self.status, self.body = status, body


@dataclass(frozen=True)
class SlackBody:
    """What the gate needs to know of a verified body; nothing of what a person typed."""

    kind: str  # "command", "interactive", "event", "url_verification" or "ssl_check"
    team: str | None
    user: str | None
    event_id: str | None


def parse_body(raw: str, content_type: str) -> SlackBody:
    """The verified body's kind, team and user; ValueError when it is not a Slack request's shape."""
    if "application/json" in content_type:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if data.get("type") == "url_verification":
            return SlackBody("url_verification", None, None, None)
        event = data.get("event")
        if data.get("type") != "event_callback" or not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("an event without its type")
        event_id = data.get("event_id")
        return SlackBody("event", _text(data.get("team_id")), _text(event.get("user")), _text(event_id))
    form = {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True, strict_parsing=False).items()}
    if "payload" in form:
        payload = json.loads(form["payload"])
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        check_interaction_shape(payload)
        team = _object(payload.get("team"))
        user = _object(payload.get("user"))
        return SlackBody("interactive", _text(team.get("id")) or _text(user.get("team_id")), _text(user.get("id")), None)
    if form.get("ssl_check") == "1":
        return SlackBody("ssl_check", None, None, None)
    if "command" in form:
        if not all(isinstance(form.get(key), str) and form.get(key) for key in ("command", "user_id", "team_id")):
            raise ValueError("a command without its user or team")
        return SlackBody("command", _text(form.get("team_id")), _text(form.get("user_id")), None)
    raise ValueError("neither a command, an interaction nor an event")


def check_interaction_shape(payload: dict[str, Any]) -> None:
    """The fields Bolt and our listeners index without a check are there and of the right type, or ValueError:
    a malformed (even if signed) payload is answered 400 instead of failing inside Bolt with a 500."""
    kind, user = payload.get("type"), payload.get("user")
    if not isinstance(kind, str) or not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise ValueError("an interaction without its type or user")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            raise ValueError("a click without actions")
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
                raise ValueError("an action without its ID")
            if action.get("value") is not None and not isinstance(action.get("value"), str):
                raise ValueError("an action value that is not text")
    if kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str) or not isinstance(view.get("callback_id"), str):
            raise ValueError("a view without its type or callback ID")
        if not isinstance(view.get("private_metadata", ""), str):
            raise ValueError("private metadata that is not text")
        state = view.get("state", {"values": {}})
        values = state.get("values") if isinstance(state, dict) else None
        if not isinstance(values, dict) or not all(
            isinstance(block, dict) and all(isinstance(element, dict) for element in block.values()) for block in values.values()
        ):
            raise ValueError("view state that is not blocks of elements")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class TeamPin:
    """The one workspace the bot serves: SLACK_TEAM_ID, or learned once from `auth.test` of the bot token."""

    def __init__(self, team_id: str | None, learn: Callable[[], str] | None = None):
        self._team, self._learn = team_id, learn
        self._lock = threading.Lock()

    def team(self) -> str | None:
        if self._team is None and self._learn is not None:
            with self._lock:
                if self._team is None:
                    try:
                        self._team = self._learn()
                        log.info("learned the workspace from auth.test", extra={"team_id": self._team})
                    except Exception as error:  # fail closed for this request; the next one tries again
                        # Slack's error code (`invalid_auth`: not this app's bot token) is what the admin acts on.
                        code = error.response.get("error") if isinstance(error, SlackApiError) else type(error).__name__
                        log.warning("could not learn the workspace from auth.test: %s", code)
                        raise Refusal("503 Service Unavailable", {"error": "workspace unknown yet"}) from None
        return self._team


class SlackGate:
    """Checks, in this order: signature and timestamp, body shape, workspace, replay, event retries.

    `refused(actor, rule)` audits a refusal (the user ID from the body if any, never the body)."""

    def __init__(
        self,
        signing_secret: str,
        guard: ReplayGuard | None,
        pin: TeamPin | None,
        refused: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ):
        self.verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self.guard, self.pin, self.refused, self.clock = guard, pin, refused, clock

    def admit(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return when Bolt may see this request; raise Refusal with the answer otherwise."""
        timestamp, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raw = None
        # A timestamp that is not a number would make the verifier's int() raise: refused here instead.
        if raw is None or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raw = None
        if raw is None or not self.verifier.is_valid(raw, timestamp, signature):
            log.warning("refused a Slack request with a bad or stale signature")
            raise Refusal("401 Unauthorized", {"error": "invalid request"})
        try:
            parsed = parse_body(raw, headers.get("content-type", ""))
        except ValueError:  # json.JSONDecodeError is a ValueError
            # Signed by Slack and still unreadable: say so plainly rather than fail inside a listener.
            raise Refusal("400 Bad Request", {"error": "malformed request body"}) from None
        actor = parsed.user if parsed.user and _USER_ID.match(parsed.user) else "unknown"
        if parsed.kind in ("url_verification", "ssl_check"):
            return  # Slack's own probes carry no workspace and change nothing
        team = self.pin.team() if self.pin is not None else None
        if team is not None and parsed.team != team:
            # A request from another workspace is signed with our secret only if the app is installed
            # there too (a distributed app, a leaked secret): its people are not ours to authorize.
            self.refused(actor, "foreign_workspace")
            raise Refusal("403 Forbidden", _reply(parsed, ":no_entry: This bot serves one workspace only."))
        if self.guard is None:
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        # The signature covers timestamp and body: one key per signed request, whoever resends it.
        if not self.guard.first_time(_key("request", timestamp, signature), now + KEEP_SEEN):
            self.refused(actor, "replayed_request")
            log.warning("refused a replayed Slack request", extra={"kind": parsed.kind})
            # 200, not 409: Slack shows a generic failure for any other status, and the first copy's outcome stands.
            raise Refusal("200 OK", _reply(parsed, ALREADY_PROCESSED))
        if parsed.kind == "event" and parsed.event_id is not None:
            # Slack re-sends an event it thinks we missed with a new signature and the same event_id;
            # a 200 tells it to stop. Not audited: the retry is Slack's, not an attacker's.
            if not self.guard.first_time(_key("event", parsed.event_id), now + KEEP_EVENTS):
                log.info("ignored a retried event", extra={"retry": headers.get("x-slack-retry-num")})
                raise Refusal("200 OK")


def _reply(parsed: SlackBody, text: str) -> dict[str, Any] | None:
    """A slash command shows the body's text to the person (ephemeral); clicks and events get none."""
    return {"response_type": "ephemeral", "text": text} if parsed.kind == "command" else None


def _key(*parts: str) -> str:
    """A SHA-256 of the parts: the cache keeps no signature or event ID as such."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class _Clock(Clock):
    """slack_sdk's verifier asks a Clock object for `now()`; ours is a plain callable for tests."""

    def __init__(self, now: Callable[[], float]):
        self._now = now

    def now(self) -> float:
        return self._now()


def _object(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (a missing or malformed field reads as absent)."""
    return value if isinstance(value, dict) else {}


def socket_mode_checks(gate: SlackGate) -> Callable[..., Any]:
    """The gate's workspace pin and event dedupe for what arrives over Socket Mode (a Bolt middleware).

    Socket Mode needs no signature (the app token authenticates the socket) and has no replayable HTTP body,
    but Slack still re-sends an event envelope it thinks we missed, and a request still names its workspace."""

    def check(req: BoltRequest, body: dict[str, Any], next: Callable[[], Any]) -> Any:
        if req.mode != "socket_mode":
            return next()  # HTTP requests passed the whole gate before Bolt saw them
        team = gate.pin.team() if gate.pin is not None else None
        seen_team = _text(body.get("team_id")) or _text((body.get("team") or {}).get("id"))
        if team is not None and seen_team is not None and seen_team != team:
            gate.refused(
                _text((body.get("user") or {}).get("id")) or _text(body.get("user_id")) or "unknown", "foreign_workspace"
            )
            return BoltResponse(status=200, body="")
        event_id = _text(body.get("event_id"))
        if gate.guard is not None and event_id is not None:
            now = datetime.fromtimestamp(gate.clock(), UTC)
            if not gate.guard.first_time(_key("event", event_id), now + KEEP_EVENTS):
                log.info("ignored a retried event (Socket Mode)")
                return BoltResponse(status=200, body="")
        return next()

    return check
