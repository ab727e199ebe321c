"""The gate in front of Bolt: a signed request from our workspace, seen for the first time, or a clear refusal."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import BoltRequest, BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier

from grants.inbox import Work
from grants.ports import Inbox

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
    # The form fields of a command, the payload of an interaction, the envelope of an event: what `work_of` reads.
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


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
        return SlackBody("event", _text(data.get("team_id")), _text(event.get("user")), _text(event_id), data)
    form = {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True, strict_parsing=False).items()}
    if "payload" in form:
        payload = json.loads(form["payload"])
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        check_interaction_shape(payload)
        team = _object(payload.get("team"))
        user = _object(payload.get("user"))
        team_id = _text(team.get("id")) or _text(user.get("team_id"))
        return SlackBody("interactive", team_id, _text(user.get("id")), None, payload)
    if form.get("ssl_check") == "1":
        return SlackBody("ssl_check", None, None, None)
    if "command" in form:
        if not all(isinstance(form.get(key), str) and form.get(key) for key in ("command", "user_id", "team_id")):
            raise ValueError("a command without its user or team")
        return SlackBody("command", _text(form.get("team_id")), _text(form.get("user_id")), None, dict(form))
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


@dataclass(frozen=True)
class Admitted:
    """A request the gate let through: its inbox row (None for Slack's probes) and the work recorded in it."""

    entry: int | None = None
    work: Work | None = None


class SlackGate:
    """Checks, in this order: signature and timestamp, body shape, workspace; then records the request in the inbox
    (one insert: the replay record, with the work its ack promises), refusing a key recorded before.

    `refused(actor, rule)` audits a refusal (the user ID from the body if any, never the body). `work_of` names the
    work a body asks for after its ack (pure: no database, no Vault); `claim_as` is the worker of this process that
    runs it at once (None: any worker claims it)."""

    def __init__(
        self,
        signing_secret: str,
        inbox: Inbox | None,
        pin: TeamPin | None,
        refused: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
        work_of: Callable[[SlackBody], Work | None] = lambda _: None,
        claim_as: str | None = None,
    ):
        self.verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self.inbox, self.pin, self.refused, self.clock = inbox, pin, refused, clock
        self.work_of, self.claim_as = work_of, claim_as

    def admit(self, body: bytes, headers: Mapping[str, str]) -> Admitted:
        """Return when Bolt may see this request (recorded in the inbox); raise Refusal with the answer otherwise."""
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
            return Admitted()  # Slack's own probes carry no workspace and change nothing
        self.check_team(parsed.team, actor, parsed)
        if self.inbox is None:
            return Admitted()
        now = datetime.fromtimestamp(self.clock(), UTC)
        work = self.work_of(parsed)
        if parsed.kind == "event" and parsed.event_id is not None:
            # Slack re-sends an event it thinks we missed with a new signature and the same event_id: the event is
            # the key, and a 200 tells Slack to stop. Not audited: the retry is Slack's, not an attacker's.
            entry = self.inbox.receive(_key("event", parsed.event_id), now + KEEP_EVENTS, work, self.claim_as, now)
            if entry is None:
                log.info("ignored a retried event", extra={"retry": headers.get("x-slack-retry-num")})
                raise Refusal("200 OK")
            return Admitted(entry, work)
        # The signature covers timestamp and body: one key per signed request, whoever resends it.
        entry = self.inbox.receive(_key("request", timestamp, signature), now + KEEP_SEEN, work, self.claim_as, now)
        if entry is None:
            self.refused(actor, "replayed_request")
            log.warning("refused a replayed Slack request", extra={"kind": parsed.kind})
            # 200, not 409: Slack shows a generic failure for any other status, and the first copy's outcome stands.
            raise Refusal("200 OK", _reply(parsed, ALREADY_PROCESSED))
        return Admitted(entry, work)

    def check_team(self, seen: str | None, actor: str, parsed: SlackBody | None = None) -> None:
        team = self.pin.team() if self.pin is not None else None
        if team is not None and seen != team:
            # A request from another workspace is signed with our secret only if the app is installed
            # there too (a distributed app, a leaked secret): its people are not ours to authorize.
            self.refused(actor, "foreign_workspace")
            text = ":no_entry: This bot serves one workspace only."
            raise Refusal("403 Forbidden", _reply(parsed, text) if parsed is not None else None)


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


def socket_mode_checks(gate: SlackGate, on_received: Callable[[Admitted], None]) -> Callable[..., Any]:
    """The gate's workspace pin and inbox record for what arrives over Socket Mode (a Bolt middleware).

    Socket Mode needs no signature (the app token authenticates the socket) and has no replayable HTTP body, but
    Slack still re-sends an event envelope it thinks we missed, a request still names its workspace, and an acked
    click must survive a crash like one that came by HTTP: it is recorded before the listener acks."""

    def check(req: BoltRequest, body: dict[str, Any], next: Callable[[], Any]) -> Any:
        if req.mode != "socket_mode":
            recorded = req.headers.get("x-jitbot-recorded") or []
            if recorded:  # set by WebApp after the gate recorded the work (never by the sender)
                req.context[RECORDED] = True
                if recorded[0] != "1":
                    req.context[NEW_REQUEST] = recorded[0]
            return next()  # HTTP requests passed the whole gate before Bolt saw them
        seen_team = _text(body.get("team_id")) or _text(_object(body.get("team")).get("id"))
        actor = _text(_object(body.get("user")).get("id")) or _text(body.get("user_id")) or "unknown"
        try:
            if seen_team is not None:
                gate.check_team(seen_team, actor)
        except Refusal:
            return BoltResponse(status=200, body="")
        if gate.inbox is None:
            return next()
        now = datetime.fromtimestamp(gate.clock(), UTC)
        event_id = _text(body.get("event_id"))
        parsed = _socket_body(body)
        work = gate.work_of(parsed) if parsed is not None else None
        # No signature to key on: an event by its ID, anything else by its content (a click's trigger_id is unique).
        key = _key("event", event_id) if event_id else _key("socket", json.dumps(body, sort_keys=True, default=str))
        entry = gate.inbox.receive(key, now + KEEP_EVENTS, work, gate.claim_as, now)
        if entry is None:
            log.info("ignored a retried event (Socket Mode)")
            return BoltResponse(status=200, body="")
        req.context[RECORDED] = True
        if work is not None and work.kind == "request":
            req.context[NEW_REQUEST] = str(work.args["request_id"])
        on_received(Admitted(entry, work))
        return next()

    return check


RECORDED = "jitbot_recorded"  # the request's work is in the inbox: the listener only acks
NEW_REQUEST = "jitbot_new_request"  # ... and that work makes a new request under this ID, which the ack names


def _socket_body(body: dict[str, Any]) -> SlackBody | None:
    """A Socket Mode request as the HTTP gate would have parsed it (for `work_of`)."""
    if body.get("type") in ("block_actions", "view_submission"):
        return SlackBody("interactive", None, _text(_object(body.get("user")).get("id")), None, body)
    if "command" in body:
        return SlackBody("command", None, _text(body.get("user_id")), None, {k: str(v) for k, v in body.items()})
    return None
