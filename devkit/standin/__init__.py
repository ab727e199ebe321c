"""A local stand-in of the Slack Web API (plus file-upload, response_url and Socket Mode endpoints) over real HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from devkit.standin.rendering import dm_channel_id, message_text, render_blocks
from devkit.standin.server import RESPOND, UPLOAD, HttpServing, Method
from devkit.standin.socket_mode import Ack, SocketModeSide
from devkit.standin.users import UserMethods
from devkit.standin.views import ViewMethods

__all__ = ["RESPOND", "UPLOAD", "Ack", "SlackStandIn", "dm_channel_id", "message_text", "render_blocks"]


class SlackStandIn(HttpServing, ViewMethods, UserMethods, SocketModeSide):
    """Slack Web API stand-in: records what the bot sent, answers like Slack, injects faults on demand.

    With an `app_token` (xapp-…) it also speaks Socket Mode over a WebSocket of its own."""

    def __init__(
        self,
        bot_token: str,
        users: Mapping[str, str] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(bot_token, users, usergroups, **options)
        self._reset_socket_mode()

    def start(self) -> SlackStandIn:
        self._start_http()
        if self.app_token is not None:
            self._start_socket_mode()
        return self

    def stop(self) -> None:
        self._stop_socket_mode()
        self._stop_http()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def methods(self) -> dict[str, Method]:
        return {
            "api.test": lambda params: {"args": params},
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
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
