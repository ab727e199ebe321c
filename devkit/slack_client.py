"""Plays Slack towards a Bolt app: slash commands, button clicks, view submissions, Home tab events, over signed HTTP or Socket Mode."""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

if TYPE_CHECKING:
    from devkit.standin import Ack, SlackStandIn

DEFAULT_CHANNEL = "C0GENERAL"
_TRANSPORT_HEADERS = frozenset({"content-length", "host", "connection", "transfer-encoding"})
_UNREACHABLE = "http://127.0.0.1:9/respond/"  # discard port: a response_url that fails fast when no stand-in is given


class SlackPeople:
    """What people do in Slack (type a command, press a button, submit a modal, open the Home tab), as Slack's payloads.

    Subclasses deliver them: over signed HTTP (SignedSlackClient) or as Socket Mode envelopes (SocketModeSlackClient).
    Every call returns (status, the app's answer: parsed JSON or text). With a stand-in, each request gets a fresh
    response_url and trigger_id served by it (see last_response_name / last_trigger_id), and a click finds the
    message whose button it presses."""

    def __init__(
        self,
        *,
        standin: SlackStandIn | None = None,
        team_id: str | None = None,
        api_app_id: str = "A0JITBOT",
        timeout: float = 10.0,
    ) -> None:
        self.standin = standin
        self.team_id = team_id or (standin.team_id if standin else "T0JITBOT")
        self.api_app_id = api_app_id
        self.timeout = timeout
        self.last_response_name: str | None = None
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------ delivery (subclasses)

    def _send_form(self, fields: Mapping[str, str], timestamp: int | str | None) -> tuple[int, Any]:
        """A slash command's fields."""
        raise NotImplementedError

    def _send_payload(self, payload: Mapping[str, Any], timestamp: int | str | None) -> tuple[int, Any]:
        """An interaction payload (block_actions, view_submission)."""
        raise NotImplementedError

    def _send_event(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        """An Events API event_callback body."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    def _user_name(self, user_id: str) -> str:
        return (self.standin.users.get(user_id) if self.standin else None) or user_id.lower()

    def _user(self, user_id: str) -> dict[str, str]:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _new_response_url(self, kind: str, user: str, channel: str | None, message_ts: str | None) -> str:
        name = f"{kind}-{next(self._seq)}"
        self.last_response_name = name
        if self.standin is None:
            self.last_response_url = _UNREACHABLE + name
        else:
            self.last_response_url = self.standin.response_url(name, user=user, channel=channel, message_ts=message_ts)
        return self.last_response_url

    def _new_trigger_id(self, user_id: str) -> str:
        n = next(self._seq)
        self.last_trigger_id = self.standin.trigger_id(user_id) if self.standin else f"{n}.{1_000_000 + n}.signedclient"
        return self.last_trigger_id

    @staticmethod
    def _button(message: Mapping[str, Any], action_id: str, value: str | None) -> tuple[str, dict[str, Any]] | None:
        for block in message.get("blocks") or []:
            for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
                # A request ID names the button for that request, whichever decision (`:r`, `:e1`) it carries; a
                # select is named by one of its options' values.
                options = [str(o.get("value")) for o in element.get("options") or []]
                if element.get("action_id") == action_id and value in options:
                    return str(block.get("block_id") or ""), element
                shown = str(element.get("value") or "")
                if element.get("action_id") == action_id and value in (None, shown, shown.partition(":")[0]):
                    return str(block.get("block_id") or ""), element
        return None

    # ------------------------------------------------------------------ what a person does in Slack

    def slash(
        self,
        user_id: str,
        text: str,
        command: str = "/elevate",
        response_url: str | None = None,
        trigger_id: str | None = None,
        *,
        channel_id: str = DEFAULT_CHANNEL,
        channel_name: str | None = None,
        timestamp: int | str | None = None,
    ) -> tuple[int, Any]:
        """`user_id` types `command text` in `channel_id` (named `channel_name`)."""
        fields = {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "team_domain": "jitbot-dev",
            "channel_id": channel_id,
            "channel_name": channel_name or ("directmessage" if channel_id.startswith("D") else channel_id.lower()),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self._new_response_url("slash", user_id, channel_id, None),
            "trigger_id": trigger_id or self._new_trigger_id(user_id),
        }
        return self._send_form(fields, timestamp)

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str,
        message_channel: str | None = None,
        message_ts: str | None = None,
        response_url: str | None = None,
        *,
        block_id: str | None = None,
        trigger_id: str | None = None,
        timestamp: int | str | None = None,
    ) -> tuple[int, Any]:
        """`user_id` presses the button `action_id` carrying `value`.

        With a stand-in and no message_ts, the latest message (in message_channel, if given) showing that button
        is the one clicked; its real blocks, block_id and label go into the payload, as Slack would send them."""
        message: dict[str, Any] | None = None
        if self.standin is not None:

            def shows_button(m: Mapping[str, Any]) -> bool:
                in_place = message_channel in (None, m["channel"]) and message_ts in (None, m["ts"])
                return in_place and self._button(m, action_id, value) is not None

            message = self.standin.find_message(shows_button)
            if message is None and message_channel and message_ts:
                message = next((m for m in self.standin.messages_in(message_channel) if m["ts"] == message_ts), None)
        if message is not None:
            message_channel, message_ts = message["channel"], message["ts"]
        found = self._button(message, action_id, value) if message else None
        element = found[1] if found else {"text": {"type": "plain_text", "text": action_id}}
        value = str(element.get("value") or value)  # what the button itself carries, as Slack sends it
        action = {
            "action_id": action_id,
            "block_id": block_id or (found[0] if found else "actions"),
            "text": element.get("text"),
            "value": value,
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("style"):
            action["style"] = element["style"]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": "verification-token-unused",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": message_channel, "is_ephemeral": False},
            "trigger_id": trigger_id or self._new_trigger_id(user_id),
            "team": {"id": self.team_id, "domain": "jitbot-dev"},
            "enterprise": None,
            "is_enterprise_install": False,
            "state": {"values": {}},
            "response_url": response_url or self._new_response_url("click", user_id, message_channel, message_ts),
            "actions": [action],
        }
        if message_channel:
            name = "directmessage" if message_channel.startswith("D") else message_channel.lower()
            payload["channel"] = {"id": message_channel, "name": name}
        if message is not None:
            keep = ("type", "subtype", "text", "blocks", "attachments", "ts", "thread_ts", "user", "bot_id", "edited", "files")
            payload["message"] = {k: message[k] for k in keep if message.get(k) not in (None, [])}
            payload["message"]["team"] = self.team_id
        elif message_ts:
            payload["message"] = {"type": "message", "ts": message_ts, "text": "", "blocks": []}
        return self._send_payload(payload, timestamp)

    def choose(self, user_id: str, action_id: str, option: str) -> tuple[int, Any]:
        """`user_id` picks `option` (its value) in the select `action_id` of the latest message showing it."""
        assert self.standin is not None, "choose() finds the select in the stand-in's messages"
        message = self.standin.find_message(lambda m: self._button(m, action_id, option) is not None)
        assert message is not None, f"no message shows the select {action_id} with {option}"
        block_id, element = self._button(message, action_id, option)  # type: ignore[misc]
        picked = next(o for o in element["options"] if o["value"] == option)
        action = {"action_id": action_id, "block_id": block_id, "type": "static_select", "selected_option": picked,
                  "placeholder": element.get("placeholder"), "action_ts": f"{time.time():.6f}"}  # fmt: skip
        channel, ts = message["channel"], message["ts"]
        payload: dict[str, Any] = {
            "type": "block_actions", "user": self._user(user_id), "api_app_id": self.api_app_id,
            "token": "verification-token-unused", "trigger_id": self._new_trigger_id(user_id),
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "team": {"id": self.team_id, "domain": "jitbot-dev"}, "enterprise": None, "is_enterprise_install": False,
            "state": {"values": {}}, "response_url": self._new_response_url("click", user_id, channel, ts),
            "actions": [action], "channel": {"id": channel, "name": channel.lower()},
            "message": {k: message[k] for k in ("type", "text", "blocks", "ts", "user", "bot_id") if message.get(k)},
        }  # fmt: skip
        return self._send_payload(payload, None)

    def open_home(self, user_id: str) -> tuple[int, Any]:
        """`user_id` opens the app's Home tab: Slack's app_home_opened event."""
        event = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.standin.dm_channel_id(user_id) if self.standin else "D0HOME",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        body = {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._seq):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": self.team_id, "user_id": "U0JITBOT", "is_bot": True, "is_enterprise_install": False}],
        }
        return self._send_event(body)

    def submit_view(
        self,
        user_id: str,
        callback_id: str,
        state_values: Mapping[str, Mapping[str, Any]],
        private_metadata: str | None = None,
        *,
        view_id: str | None = None,
        timestamp: int | str | None = None,
    ) -> tuple[int, Any]:
        """`user_id` submits the modal `callback_id` with `state_values` ({block_id: {action_id: value}}).

        A plain string value is sent as a plain_text_input; pass a dict to send any other element's state as is.
        With a stand-in, the latest modal opened for the user with that callback_id supplies id, title, blocks and
        (unless given) private_metadata."""
        stored: dict[str, Any] = {}
        if self.standin is not None:
            modals = [
                v
                for v in self.standin.views.values()
                if v["kind"] == "modal" and v["view"].get("callback_id") == callback_id and v["user"] in (None, user_id)
            ]
            match = [v for v in modals if v["id"] == view_id] if view_id else modals
            stored = match[-1]["view"] if match else {}
        values = {
            block: {
                action: (dict(v) if isinstance(v, Mapping) else {"type": "plain_text_input", "value": v})
                for action, v in actions.items()
            }
            for block, actions in state_values.items()
        }
        the_id = view_id or stored.get("id") or "V0SUBMITTED"
        view = {
            "id": the_id,
            "team_id": self.team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": stored.get("private_metadata", "") if private_metadata is None else private_metadata,
            "title": stored.get("title") or {"type": "plain_text", "text": callback_id},
            "blocks": stored.get("blocks") or [],
            "state": {"values": values},
            "hash": stored.get("hash") or f"{int(time.time())}.{the_id}",
            "root_view_id": stored.get("root_view_id") or the_id,
            "previous_view_id": None,
            "external_id": stored.get("external_id", ""),
            "app_id": self.api_app_id,
            "bot_id": stored.get("bot_id") or "B0JITBOT",
        }
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "jitbot-dev"},
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": "verification-token-unused",
            "trigger_id": self._new_trigger_id(user_id),
            "view": view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        return self._send_payload(payload, timestamp)


class SignedSlackClient(SlackPeople):
    """Plays Slack's side over HTTP: signs each request with the app's signing secret and POSTs it to the app."""

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        *,
        standin: SlackStandIn | None = None,
        team_id: str | None = None,
        api_app_id: str = "A0JITBOT",
        path: str = "/slack/events",
        timeout: float = 10.0,
    ) -> None:
        super().__init__(standin=standin, team_id=team_id, api_app_id=api_app_id, timeout=timeout)
        base = app_url.rstrip("/")
        self.url = base if base.endswith(path) else base + path
        self.verifier = SignatureVerifier(signing_secret)

    def sign(self, body: str | bytes, timestamp: int | str | None = None) -> dict[str, str]:
        """The X-Slack-Request-Timestamp / X-Slack-Signature headers Slack would send with this body."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.verifier.generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    def raw(self, body: str | bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        """POST this body with these headers, unsigned: for tampered or stale requests (Content-Length/Host are redone)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        headers = {k: v for k, v in headers.items() if k.lower() not in _TRANSPORT_HEADERS}
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.timeout)
        try:
            connection.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), body=data, headers=dict(headers))
            response = connection.getresponse()
            status, content_type, payload = response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()
        text = payload.decode("utf-8", errors="replace")
        if "json" in content_type or text.startswith(("{", "[")):
            try:
                return status, json.loads(text)
            except ValueError:
                pass
        return status, text

    def _send_form(self, fields: Mapping[str, str], timestamp: int | str | None) -> tuple[int, Any]:
        body = urlencode(fields)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.sign(body, timestamp)}
        return self.raw(body, headers)

    def _send_payload(self, payload: Mapping[str, Any], timestamp: int | str | None) -> tuple[int, Any]:
        return self._send_form({"payload": json.dumps(payload)}, timestamp)

    def _send_event(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        text = json.dumps(body)
        return self.raw(text, {"Content-Type": "application/json", **self.sign(text)})


class SocketModeSlackClient(SlackPeople):
    """Plays Slack's side over Socket Mode: each action goes to the app as an envelope over the stand-in's WebSocket;
    the answer is the payload of the app's ack (status 200), as Slack would use it."""

    def __init__(self, standin: SlackStandIn, *, api_app_id: str = "A0JITBOT", timeout: float = 10.0) -> None:
        super().__init__(standin=standin, api_app_id=api_app_id, timeout=timeout)
        self.socket = standin
        self.last_ack: Ack | None = None  # the app's ack of the last envelope (which connection, when, its payload)

    def _envelope(self, kind: str, payload: Mapping[str, Any]) -> tuple[int, Any]:
        envelope_id = self.socket.send_envelope(kind, dict(payload))
        self.last_ack = self.socket.wait_for_ack(envelope_id, self.timeout)
        return 200, self.last_ack.payload if self.last_ack.payload is not None else ""

    def _send_form(self, fields: Mapping[str, str], timestamp: int | str | None) -> tuple[int, Any]:
        return self._envelope("slash_commands", fields)

    def _send_payload(self, payload: Mapping[str, Any], timestamp: int | str | None) -> tuple[int, Any]:
        return self._envelope("interactive", payload)

    def _send_event(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        return self._envelope("events_api", body)
