"""chat.* and conversations.open as Slack answers them, and response_url endpoints that act like Slack's."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from devkit.standin.rendering import message_text
from devkit.standin.state import SlackError, StandInState
from devkit.standin.wire import Reply, flag, parse_params, text_reply


class ChatMethods(StandInState):
    def response_url(
        self, name: str, *, user: str | None = None, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url served here; what is POSTed to it is recorded in .responses under `name`.

        With `channel`/`user`/`message_ts` it acts like Slack's: replace_original / delete_original edit that
        message, response_type "in_channel" posts to the channel, anything else is an ephemeral for `user`."""
        with self._lock:
            self._bindings[name] = {"user": user, "channel": channel, "message_ts": message_ts}
        return f"{self.root}/respond/{name}"

    def private_channel(self, channel: str, *, bot_invited: bool = False) -> None:
        """Make `channel` a private channel: until the bot is invited (`invite_bot`), posting there answers
        `not_in_channel`, as Slack does, even with chat:write.public (which covers public channels only)."""
        with self._lock:
            self._private_channels[channel] = bot_invited

    def invite_bot(self, channel: str) -> None:
        """`/invite @jitbot` in a private channel."""
        with self._lock:
            self._private_channels[channel] = True

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        if self._private_channels.get(channel) is False:
            raise SlackError("not_in_channel")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackError("no_text")
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
            raise SlackError("user_not_found")
        self._check_user(user)
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackError("no_text")
        return {"message_ts": self._ephemeral(channel, user, params, via="chat.postEphemeral")}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {"no_op": True, "already_open": True, "channel": {"id": params["channel"]}}
        users = params.get("users") or ""
        users = [u.strip() for u in (users.split(",") if isinstance(users, str) else users) if u.strip()]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 8:
            raise SlackError("too_many_users")
        for user in users:
            self._check_user(user)
        channel = self._open_dm(users)
        already = channel in self._opened
        self._opened.add(channel)
        info: dict[str, Any] = {"id": channel}
        if flag(params.get("return_im")):
            info.update({"is_im": len(set(users)) == 1, "is_mpim": len(set(users)) > 1, "created": 1_700_000_000})
            if len(set(users)) == 1:
                info["user"] = users[0]
        return {"no_op": already, "already_open": already, "channel": info}

    def _respond(self, name: str, headers: dict[str, str], body: bytes) -> Reply:
        try:
            params = parse_params(headers, body, "")
            if isinstance(params.get("payload"), str):
                params = json.loads(params["payload"])
        except (ValueError, UnicodeDecodeError):
            return text_reply(400, "invalid_payload")
        self._responses.append((name, copy.deepcopy(params)))
        return self._answer_as_slack(name, params)

    def _answer_as_slack(self, name: str, params: Mapping[str, Any]) -> Reply:
        """What Slack does with a response (a response_url POST, or a slash command's immediate answer)."""
        binding = self._bindings.get(name, {})
        channel, user, ts = binding.get("channel"), binding.get("user"), binding.get("message_ts")
        try:
            if flag(params.get("delete_original")) and ts:
                self._delete(self._find(channel, ts))
            elif flag(params.get("replace_original")) and ts:
                self._edit(self._find(channel, ts), params)
            elif params.get("response_type") == "in_channel" and channel:
                self._post(channel, params)
            elif user or channel:
                self._ephemeral(channel, user, params, via=f"response_url:{name}")
            else:
                self._say(None, f"response_url {name}", message_text(params))
        except SlackError as error:
            return text_reply(404, str(error))
        return text_reply(200, "ok", "text/html")
