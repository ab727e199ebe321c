"""What the stand-in remembers (messages, ephemerals, views, files, calls, the transcript) and how tests read it."""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from devkit.standin.rendering import MENTION, dm_channel_id, humanize, message_text

if TYPE_CHECKING:
    from devkit.standin.faults import Fault


class SlackError(Exception):
    """An API method answering {"ok": false, "error": ...}."""


class StandInState:
    """The stand-in's configuration and records, guarded by one lock; every reader returns a deep copy."""

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
        app_id: str = "A0JITBOT",
        app_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token  # xapp-…: the only token apps.connections.open accepts (Socket Mode)
        self.users: dict[str, str] = dict(users or {})
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.strict_users = bool(users) if strict_users is None else strict_users
        self.unreachable: dict[str, str] = {}  # user ID -> the error Slack gives for them (user_not_found, user_disabled)
        self.team_id, self.team_name, self.bot_user_id, self.bot_id = team_id, team_name, bot_user_id, bot_id
        self.app_id = app_id
        self._host, self._port = host, port
        self._bound_port: int | None = None  # set while the HTTP server runs
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._next_faults: list[Fault] = []
        self._standing_faults: list[Fault] = []
        self._ids = itertools.count(1)  # IDs and message ts stay unique for the stand-in's whole life, across reset()
        self._ts = itertools.count(1)
        self._version = 0  # bumped on every request served and every reset: what wait_changed() waits on
        self.reset()

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
            self._private_channels: dict[str, bool] = {}  # private channel → the bot is a member
            self._next_faults, self._standing_faults = [], []
            self._notify()

    def _notify(self) -> None:
        """Wake wait_for() and wait_changed(): something was recorded."""
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def wait_changed(self, seen: int, timeout: float) -> int:
        """The change counter, as soon as it differs from `seen` (or when `timeout` seconds have passed)."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen, timeout=timeout)
            return self._version

    @property
    def root(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        if self._bound_port is None:
            raise RuntimeError("SlackStandIn is not started")
        return f"http://{self._host}:{self._bound_port}"

    @property
    def url(self) -> str:
        """The Web API base URL, with its trailing slash: WebClient(base_url=...) / SLACK_API_URL."""
        return f"{self.root}/api/"

    # ------------------------------------------------------------------ readers for tests and the demo

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

    def conversations_of(self, user_id: str) -> dict[str, list[str]]:
        """The DMs and group DMs the bot opened that `user_id` is in: channel ID → its members (the bot aside)."""
        with self._lock:
            return {channel: list(members) for channel, members in self._dm_members.items() if user_id in members}

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

            lines = [MENTION.sub(named, line) for line in lines]
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

    # ------------------------------------------------------------------ recording (lock held)

    def _new_ts(self) -> str:
        micros = next(self._ts) * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _check_user(self, user_id: str) -> None:
        if user_id in self.unreachable:
            raise SlackError(self.unreachable[user_id])
        if self.strict_users and user_id not in self.users:
            raise SlackError("user_not_found")

    def _resolve_channel(self, channel: Any) -> str:
        """A user ID as a channel means the bot's DM with that user, as in Slack."""
        if not channel or not isinstance(channel, str):
            raise SlackError("channel_not_found")
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
        self._transcript.append((audience, f"[{label}] " + humanize(text).replace("\n", "\n    ")))

    def _find(self, channel: Any, ts: Any) -> dict[str, Any]:
        if not channel:
            raise SlackError("channel_not_found")
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

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

    @staticmethod
    def _public(message: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in message.items() if k not in ("history", "channel") and v not in (None, [])}
