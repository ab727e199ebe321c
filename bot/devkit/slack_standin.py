"""A local stand-in of the Slack Web API (plus file-upload and response_url endpoints) spoken to over real HTTP."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Parameters that arrive as JSON text in form-encoded bodies and as objects in JSON bodies.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "profile"})
_STATUS_ERRORS = {500: "internal_error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}
UPLOAD = "upload"  # pseudo-method name of the file-body POST, for fault injection
RESPOND = "respond"  # pseudo-method name of response_url POSTs, for fault injection
_MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_MENTION = re.compile(r"@([UW][A-Z0-9]+)\b")


class _SlackError(Exception):
    """An API method answering {"ok": false, "error": ...}."""


@dataclass
class _Fault:
    method: str | None  # None: every endpoint
    status: int
    retry_after: int | None
    remaining: int | None  # None: until heal()
    error: str | None = None  # the `error` of {"ok": false}; None: named after the status


def _text(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        inner = obj.get("text")
        return inner if isinstance(inner, str) else _text(inner) if inner else ""
    return ""


def _rich_text(obj: Any) -> str:
    if isinstance(obj, Mapping):
        if obj.get("type") in ("text", "link"):
            return str(obj.get("text") or obj.get("url") or "")
        if obj.get("type") in ("user", "usergroup", "channel"):
            return "@" + str(obj.get("user_id") or obj.get("usergroup_id") or obj.get("channel_id"))
        return "".join(_rich_text(e) for e in obj.get("elements") or [])
    return ""


def _element(element: Mapping[str, Any]) -> str:
    kind = element.get("type", "")
    if kind == "button":
        return f"[{_text(element.get('text'))}]"
    if "select" in kind or kind in ("datepicker", "timepicker", "radio_buttons", "checkboxes"):
        initial = element.get("initial_option")
        shown = _text(initial.get("text")) if isinstance(initial, Mapping) else _text(element.get("placeholder"))
        return f"[{shown or kind} ▾]"
    if kind == "plain_text_input":
        return f"[{element.get('initial_value') or _text(element.get('placeholder')) or '…'}]"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    return _text(element)


def render_blocks(blocks: Iterable[Mapping[str, Any]] | None) -> str:
    """Block Kit as the plain text a person would read: section/context text, buttons as "[Approve] [Deny]"."""
    lines: list[str] = []
    for block in blocks or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            line = _text(block.get("text"))
            fields = [_text(f) for f in block.get("fields") or []]
            if fields:
                line = "\n".join([line, *fields]) if line else "\n".join(fields)
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") != "image":
                line = f"{line} {_element(accessory)}".strip()
            lines.append(line)
        elif kind == "context":
            lines.append(" ".join(t for t in (_element(e) for e in block.get("elements") or []) if t))
        elif kind == "actions":
            lines.append(" ".join(_element(e) for e in block.get("elements") or []))
        elif kind == "input":
            element = block.get("element") or {}
            lines.append(f"{_text(block.get('label'))}: {_element(element)}")
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "rich_text":
            lines.append(_rich_text(block))
    return "\n".join(line for line in lines if line)


def _humanize(text: str) -> str:
    """Slack markup as displayed: <@U1> → @U1, <!here> → @here, <url|label> → label, <!date^…|fallback> → fallback."""

    def shown(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if label is not None and not target.startswith(("@", "#")):
            return label
        if target[:1] in "@#":
            return target[0] + (label or target[1:])
        return "@" + target[1:].split("^")[0] if target.startswith("!") else target

    return _MARKUP.sub(shown, text)


def message_text(message: Mapping[str, Any]) -> str:
    """What a message shows: its rendered blocks when it has any, else its text."""
    return render_blocks(message.get("blocks")) or str(message.get("text") or "")


def dm_channel_id(users: str | Iterable[str]) -> str:
    """The deterministic DM ("D…", one user) or group DM ("G…", several) channel ID for a set of users."""
    raw = users.split(",") if isinstance(users, str) else list(users)
    members = sorted({user.strip() for user in raw if user.strip()})
    if len(members) == 1:
        return "D" + members[0][1:].upper()
    return "G" + hashlib.sha256(",".join(members).encode()).hexdigest()[:10].upper()


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: SlackStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.standin._handle(self.path, dict(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SlackStandIn:
    """Slack Web API stand-in: records what the bot sent, answers like Slack, injects faults on demand."""

    def __init__(
        self,
        bot_token: str,
        users: Mapping[str, str] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        *,
        strict_users: bool | None = None,
        team_id: str = "T0JITBOT",
        team_name: str = "jitbot-dev",
        bot_user_id: str = "U0JITBOT",
        bot_id: str = "B0JITBOT",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.users: dict[str, str] = dict(users or {})
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.strict_users = bool(users) if strict_users is None else strict_users
        self.team_id, self.team_name, self.bot_user_id, self.bot_id = team_id, team_name, bot_user_id, bot_id
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._next_faults: list[_Fault] = []
        self._standing_faults: list[_Fault] = []
        self._ids = itertools.count(1)  # IDs and message ts stay unique for the stand-in's whole life, across reset()
        self._ts = itertools.count(1)
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandIn:
        if self._server is None:
            self._server = _Server((self._host, self._port), _Handler)
            self._server.standin = self
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="slack-standin", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("SlackStandIn is not started")
        return f"http://{self._host}:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The Web API base URL, with its trailing slash: WebClient(base_url=...) / SLACK_API_URL."""
        return f"{self.root}/api/"

    def reset(self) -> None:
        """Forget everything recorded (messages, calls, files, views, faults); keep users and groups."""
        with self._changed:
            self._calls: list[tuple[str, dict[str, Any]]] = []
            self._messages: dict[str, list[dict[str, Any]]] = {}
            self._ephemerals: list[dict[str, Any]] = []
            self._responses: list[tuple[str, dict[str, Any]]] = []
            self._files: dict[str, dict[str, Any]] = {}
            self._views: dict[str, dict[str, Any]] = {}
            self._transcript: list[tuple[frozenset[str] | None, str]] = []
            self._dm_members: dict[str, tuple[str, ...]] = {}
            self._opened: set[str] = set()
            self._triggers: dict[str, str] = {}
            self._bindings: dict[str, dict[str, str | None]] = {}
            self._next_faults, self._standing_faults = [], []
            self._changed.notify_all()

    # ------------------------------------------------------------------ fault injection

    def fail_next(self, method: str | None, status: int = 500, count: int = 1, *, error: str | None = None) -> None:
        """The next `count` requests to `method` ("chat.postMessage", "upload", "respond"; None: any) answer HTTP `status`.

        With `error`, the answer is {"ok": false, "error": error}: e.g. status=200, error="expired_trigger_id" is
        what Slack answers views.open when the form opens more than 3 s after the command or click."""
        with self._lock:
            if count > 0:
                self._next_faults.append(_Fault(method, status, None, count, error))

    def rate_limit_next(self, method: str | None, retry_after: int = 1, count: int = 1) -> None:
        """The next `count` requests to `method` answer 429 with Retry-After and {"ok": false, "error": "ratelimited"}."""
        with self._lock:
            if count > 0:
                self._next_faults.append(_Fault(method, 429, retry_after, count))

    def fail_all(self, method: str | None = None, status: int = 503) -> None:
        """Every request to `method` (None: every endpoint) answers HTTP `status` until heal()."""
        with self._lock:
            self._standing_faults.append(_Fault(method, status, 1 if status == 429 else None, None))

    def heal(self) -> None:
        """Clear every injected fault."""
        with self._lock:
            self._next_faults.clear()
            self._standing_faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        for faults in (self._next_faults, self._standing_faults):
            for fault in faults:
                if fault.method in (None, method):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ helpers for tests and the demo

    def response_url(
        self, name: str, *, user: str | None = None, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url served here; what is POSTed to it is recorded in .responses under `name`.

        With `channel`/`user`/`message_ts` it acts like Slack's: replace_original / delete_original edit that
        message, response_type "in_channel" posts to the channel, anything else is an ephemeral for `user`."""
        with self._lock:
            self._bindings[name] = {"user": user, "channel": channel, "message_ts": message_ts}
        return f"{self.root}/respond/{name}"

    def trigger_id(self, user_id: str) -> str:
        """A fresh trigger_id belonging to `user_id` (views.open with it opens the modal for that user)."""
        with self._lock:
            n = next(self._ids)
            trigger = f"{n}.{1_000_000 + n}.{hashlib.sha256(f'{user_id}:{n}'.encode()).hexdigest()[:16]}"
            self._triggers[trigger] = user_id
            return trigger

    dm_channel_id = staticmethod(dm_channel_id)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every Web API request received, failed ones included, as (method, params without the token)."""
        with self._lock:
            return copy.deepcopy(self._calls)

    @property
    def messages(self) -> dict[str, list[dict[str, Any]]]:
        """Channel ID → messages (ts, text, blocks, thread_ts, history of earlier versions, files, …)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def responses(self) -> list[tuple[str, dict[str, Any]]]:
        """Every response_url POST as (name, JSON payload)."""
        with self._lock:
            return copy.deepcopy(self._responses)

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """File ID → {id, name, title, content (bytes), channel, initial_comment, thread_ts, length}."""
        with self._lock:
            return copy.deepcopy(self._files)

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        """View ID → {id, kind ("modal"|"home"), user, view, history}."""
        with self._lock:
            return copy.deepcopy(self._views)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(params) for name, params in self._calls if name == method]

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        """Messages in the bot's DM with this one user."""
        return self.messages_in(dm_channel_id(user_id))

    def ephemerals_for(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._ephemerals if e.get("user") == user_id]

    def responses_to(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(p) for n, p in self._responses if n == name]

    def find_message(self, predicate: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
        """The latest message (any channel) for which predicate(message) is truthy; it carries its "channel"."""
        with self._lock:
            found = [m for msgs in self._messages.values() for m in msgs if predicate(m)]
            return copy.deepcopy(max(found, key=lambda m: float(m["ts"]))) if found else None

    def transcript(self, for_user: str | None = None, *, names: bool = False) -> list[str]:
        """What people saw, in order: one entry per post, update, ephemeral, response, upload or view.

        Entries look like "[#C123] text", "[DM @U1] (updated) text"; multi-line text continues indented.
        With `for_user`: only what that person could see (channels, their DMs, their ephemerals and views)."""
        with self._lock:
            lines = [line for audience, line in self._transcript if for_user is None or audience is None or for_user in audience]
        if names:

            def named(match: re.Match[str]) -> str:
                name = self.users.get(match.group(1))
                return f"{match.group(0)} ({name})" if name else match.group(0)

            lines = [_MENTION.sub(named, line) for line in lines]
        return lines

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
        """Re-evaluate predicate() as requests arrive until it is truthy; return that value.

        A LookupError raised by the predicate counts as "not yet". It runs under the stand-in's lock: it may read
        the stand-in, but must not make HTTP calls. Raises AssertionError with a dump of the state on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                try:
                    value = predicate()
                except LookupError:
                    value = None
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self.dump(f"wait_for timed out after {timeout}s" + (f": {message}" if message else "")))
                self._changed.wait(min(remaining, 0.05))  # also poll, for predicates reading state outside the stand-in

    def dump(self, title: str = "Slack stand-in state") -> str:
        with self._lock:
            lines = [f"  {line}" for line in self.transcript()] or ["  (nothing)"]
            calls = [f"  {method} {json.dumps(params, default=str)[:300]}" for method, params in self._calls[-25:]]
            header = f"--- last {len(calls)} of {len(self._calls)} calls ---"
            return "\n".join([title, "--- transcript ---", *lines, header, *(calls or ["  (none)"])])

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        route, _, rest = parts.path.lstrip("/").partition("/")
        method = {"api": rest, "upload": UPLOAD, "respond": RESPOND}.get(route)
        with self._changed:
            try:
                if method is None or not rest:
                    return 404, {"Content-Type": "text/plain"}, b"not found"
                fault = self._take_fault(method)
                if route == "api":
                    try:
                        params = self._parse_params(headers, body, parts.query)
                    except (ValueError, UnicodeDecodeError):
                        self._calls.append((method, {}))
                        return self._json({"ok": False, "error": "invalid_json"})
                    token = params.pop("token", None)
                    self._calls.append((method, copy.deepcopy(params)))
                    if fault:
                        return self._fault_response(fault)
                    return self._json(self._api(method, params, headers, token))
                if fault:
                    return self._fault_response(fault)
                if route == "upload":
                    return self._upload(rest, body)
                return self._respond(rest, headers, body)
            finally:
                self._changed.notify_all()

    @staticmethod
    def _json(
        payload: dict[str, Any], status: int = 200, extra: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json; charset=utf-8", **(extra or {})}
        return status, headers, json.dumps(payload).encode()

    def _fault_response(self, fault: _Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.status == 429:
            return self._json({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(fault.retry_after or 1)})
        return self._json({"ok": False, "error": fault.error or _STATUS_ERRORS.get(fault.status, "fatal_error")}, fault.status)

    @staticmethod
    def _parse_params(headers: dict[str, str], body: bytes, query: str) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if body and content_type.startswith("application/json"):
            data = json.loads(body.decode("utf-8"))
            params.update(data if isinstance(data, dict) else {})
        elif body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        for key in _JSON_FIELDS & params.keys():
            if isinstance(params[key], str) and params[key][:1] in ("[", "{"):
                params[key] = json.loads(params[key])
        return params

    def _api(self, method: str, params: dict[str, Any], headers: dict[str, str], token: str | None) -> dict[str, Any]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.bot_token:
            return {"ok": False, "error": "invalid_auth"}
        handler = self._methods().get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            return {"ok": True, **handler(params)}
        except _SlackError as error:
            return {"ok": False, "error": str(error)}

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "api.test": lambda params: {"args": params},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
        }

    # ------------------------------------------------------------------ state helpers (lock held)

    def _new_ts(self) -> str:
        micros = next(self._ts) * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _check_user(self, user_id: str) -> None:
        if self.strict_users and user_id not in self.users:
            raise _SlackError("user_not_found")

    def _resolve_channel(self, channel: Any) -> str:
        """A user ID as a channel means the bot's DM with that user, as in Slack."""
        if not channel or not isinstance(channel, str):
            raise _SlackError("channel_not_found")
        if channel[0] in "UW":
            self._check_user(channel)
            return self._open_dm([channel])
        return channel

    def _open_dm(self, users: list[str]) -> str:
        channel = dm_channel_id(users)
        self._dm_members.setdefault(channel, tuple(sorted(set(users))))
        return channel

    def _label(self, channel: str | None) -> str:
        members = self._dm_members.get(channel or "")
        if channel and channel.startswith("D"):
            return f"DM @{members[0] if members else 'U' + channel[1:]}"
        if members:
            return "group DM " + " ".join(f"@{u}" for u in members)
        return f"#{channel}"

    def _audience(self, channel: str | None) -> frozenset[str] | None:
        members = self._dm_members.get(channel or "")
        return frozenset(members) if members is not None else None

    def _say(self, audience: frozenset[str] | None, label: str, text: str) -> None:
        self._transcript.append((audience, f"[{label}] " + _humanize(text).replace("\n", "\n    ")))

    def _find(self, channel: Any, ts: Any) -> dict[str, Any]:
        if not channel:
            raise _SlackError("channel_not_found")
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise _SlackError("message_not_found")

    def _post(self, channel: str, fields: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        message = {
            "type": "message",
            "channel": channel,
            "ts": self._new_ts(),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": fields.get("text") or "",
            "blocks": fields.get("blocks") or [],
            "attachments": fields.get("attachments") or [],
            "thread_ts": fields.get("thread_ts"),
            "metadata": fields.get("metadata"),
            "files": fields.get("files") or [],
            "history": [],
        }
        self._messages.setdefault(channel, []).append(message)
        thread = "(thread reply) " if message["thread_ts"] else ""
        self._say(self._audience(channel), self._label(channel), prefix + thread + message_text(message))
        return message

    def _edit(self, message: dict[str, Any], fields: Mapping[str, Any]) -> None:
        previous = {k: copy.deepcopy(message[k]) for k in ("text", "blocks", "attachments")}
        message["history"].append(previous)
        if "text" in fields:
            message["text"] = fields.get("text") or ""
        for key in ("blocks", "attachments"):
            if key in fields:  # as in Slack, blocks/attachments left out of chat.update are kept
                message[key] = fields.get(key) or []
        message["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        self._say(self._audience(message["channel"]), self._label(message["channel"]), "(updated) " + message_text(message))

    def _delete(self, message: dict[str, Any]) -> None:
        self._messages[message["channel"]].remove(message)
        self._say(self._audience(message["channel"]), self._label(message["channel"]), "(deleted) " + message_text(message))

    @staticmethod
    def _public(message: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in message.items() if k not in ("history", "channel") and v not in (None, [])}

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_name}.slack.com/",
            "team": self.team_name,
            "user": "jitbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _SlackError("no_text")
        message = self._post(channel, params)
        return {"channel": channel, "ts": message["ts"], "message": self._public(message)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params.get("channel"), params.get("ts"))
        self._edit(message, params)
        return {"channel": message["channel"], "ts": message["ts"], "text": message["text"], "message": self._public(message)}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params.get("channel"), params.get("ts"))
        self._delete(message)
        return {"channel": message["channel"], "ts": message["ts"]}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        user = params.get("user")
        if not user:
            raise _SlackError("user_not_found")
        self._check_user(user)
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _SlackError("no_text")
        return {"message_ts": self._ephemeral(channel, user, params, via="chat.postEphemeral")}

    def _ephemeral(self, channel: str | None, user: str | None, fields: Mapping[str, Any], via: str) -> str:
        ts = self._new_ts()
        entry = {
            "channel": channel,
            "user": user,
            "text": fields.get("text") or "",
            "blocks": fields.get("blocks") or [],
            "thread_ts": fields.get("thread_ts"),
            "message_ts": ts,
            "via": via,
        }
        self._ephemerals.append(entry)
        where = f" in {self._label(channel)}" if channel else ""
        self._say(frozenset({user}) if user else None, f"only @{user}{where}", message_text(entry))
        return ts

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {"no_op": True, "already_open": True, "channel": {"id": params["channel"]}}
        users = params.get("users") or ""
        users = [u.strip() for u in (users.split(",") if isinstance(users, str) else users) if u.strip()]
        if not users:
            raise _SlackError("users_list_not_supplied")
        if len(users) > 8:
            raise _SlackError("too_many_users")
        for user in users:
            self._check_user(user)
        channel = self._open_dm(users)
        already = channel in self._opened
        self._opened.add(channel)
        info: dict[str, Any] = {"id": channel}
        if _flag(params.get("return_im")):
            info.update({"is_im": len(set(users)) == 1, "is_mpim": len(set(users)) > 1, "created": 1_700_000_000})
            if len(set(users)) == 1:
                info["user"] = users[0]
        return {"no_op": already, "already_open": already, "channel": info}

    def _store_view(self, view_id: str, kind: str, user: str | None, view: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._views.get(view_id)
        full = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": "A0JITBOT",
            "bot_id": self.bot_id,
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "root_view_id": view_id,
            **copy.deepcopy(dict(view)),
            "state": {"values": {}},
            "hash": f"{next(self._ids)}.{view_id}",
        }
        if stored is None:
            self._views[view_id] = {"id": view_id, "kind": kind, "user": user, "view": full, "history": []}
            prefix = ""
        else:
            stored["history"].append(stored["view"])
            stored["view"] = full
            prefix = "(updated) "
        title = _text(full.get("title"))
        body = render_blocks(full.get("blocks"))
        label = f"{kind} @{user}" if user else kind
        self._say(frozenset({user}) if user else None, label, prefix + "\n".join(t for t in (title, body) if t))
        return full

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger:
            raise _SlackError("invalid_trigger_id")
        if not isinstance(params.get("view"), Mapping):
            raise _SlackError("invalid_arguments")
        user = self._triggers.get(trigger)
        return {"view": self._store_view(self._new_id("V"), "modal", user, params["view"])}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next((i for i, v in self._views.items() if v["view"].get("external_id") == params["external_id"]), None)
        stored = self._views.get(view_id or "")
        if stored is None:
            raise _SlackError("not_found")
        if params.get("hash") and params["hash"] != stored["view"]["hash"]:
            raise _SlackError("hash_conflict")
        if not isinstance(params.get("view"), Mapping):
            raise _SlackError("invalid_arguments")
        return {"view": self._store_view(stored["id"], stored["kind"], stored["user"], params["view"])}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id")
        if not user:
            raise _SlackError("invalid_arguments")
        self._check_user(user)
        if not isinstance(params.get("view"), Mapping):
            raise _SlackError("invalid_arguments")
        return {"view": self._store_view("VHOME" + user, "home", user, params["view"])}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user") or ""
        if not user or (self.strict_users and user not in self.users):
            raise _SlackError("user_not_found")
        name = self.users.get(user, user.lower())
        return {
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": user == self.bot_user_id,
                "tz": "Etc/UTC",
                "tz_offset": 0,
                "profile": {"display_name": name, "real_name": name},
            }
        }

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup") or ""
        if group not in self.usergroups:
            raise _SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(params.get("length") or "")
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if not params.get("filename"):
            raise _SlackError("invalid_arguments")
        file_id = self._new_id("F")
        self._files[file_id] = {
            "id": file_id,
            "name": params["filename"],
            "title": None,
            "length": length,
            "content": None,
            "channel": None,
            "initial_comment": None,
            "thread_ts": None,
        }
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        record = self._files.get(file_id)
        if record is None:
            return 404, {"Content-Type": "text/plain"}, b"file_not_found"
        record["content"] = body
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, f"OK - {len(body)}".encode()

    def _file_info(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "name": record["name"],
            "title": record["title"] or record["name"],
            "size": len(record["content"] or b""),
            "channels": [record["channel"]] if record["channel"] else [],
        }

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params.get("files")
        if not isinstance(items, list) or not items:
            raise _SlackError("invalid_arguments")
        records = [self._files.get(str(item.get("id"))) for item in items]
        if any(r is None or r["content"] is None for r in records):
            raise _SlackError("file_not_found")
        channels = params.get("channels") or params.get("channel_id") or ""
        channel_list = [self._resolve_channel(c.strip()) for c in channels.split(",") if c.strip()]
        for item, record in zip(items, records, strict=True):
            assert record is not None
            record.update(
                {
                    "title": item.get("title") or record["name"],
                    "initial_comment": params.get("initial_comment"),
                    "thread_ts": params.get("thread_ts"),
                    "channel": channel_list[0] if channel_list else None,
                }
            )
        shared = [self._file_info(r) for r in records if r is not None]
        for channel in channel_list:
            names = ", ".join(
                (f["name"] if f["title"] == f["name"] else f'"{f["title"]}" {f["name"]}') + f", {f['size']} bytes" for f in shared
            )
            comment = params.get("initial_comment") or ""
            self._post(
                channel, {"text": comment, "files": shared, "thread_ts": params.get("thread_ts")}, prefix=f"(uploaded {names}) "
            )
        return {"files": shared}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._files.get(params.get("file") or "")
        if record is None:
            raise _SlackError("file_not_found")
        return {"file": self._file_info(record)}

    # ------------------------------------------------------------------ response_url

    def _respond(self, name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            params = self._parse_params(headers, body, "")
            if isinstance(params.get("payload"), str):
                params = json.loads(params["payload"])
        except (ValueError, UnicodeDecodeError):
            return 400, {"Content-Type": "text/plain"}, b"invalid_payload"
        self._responses.append((name, copy.deepcopy(params)))
        binding = self._bindings.get(name, {})
        channel, user, ts = binding.get("channel"), binding.get("user"), binding.get("message_ts")
        try:
            if _flag(params.get("delete_original")) and ts:
                self._delete(self._find(channel, ts))
            elif _flag(params.get("replace_original")) and ts:
                self._edit(self._find(channel, ts), params)
            elif params.get("response_type") == "in_channel" and channel:
                self._post(channel, params)
            elif user or channel:
                self._ephemeral(channel, user, params, via=f"response_url:{name}")
            else:
                self._say(None, f"response_url {name}", message_text(params))
        except _SlackError as error:
            return 404, {"Content-Type": "text/plain"}, str(error).encode()
        return 200, {"Content-Type": "text/html"}, b"ok"
