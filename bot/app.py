"""The Bolt app: signature-checked, authorized once from the configured token, with every listener registered."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.context import BotContext
from bot.listeners import actions, commands, events, views

log = logging.getLogger(__name__)
Middleware = Callable[..., Any]  # a Bolt middleware function (keyword arguments by name, as Bolt passes them)
FAILED = (
    ":warning: jitbot could not finish this because of a problem on its side (it is logged). "
    "Check `{command} list` to see what was recorded, and try again in a minute."
)


class _UnusedTokenNotes(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, since the wiring hands it a client and an
    `authorize` of its own, warns at every start that the token "will be unused": true, expected, and read as a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("`token`" in message and ("will be unused" in message or "will be ignored" in message))


_BOLT_LOG = logging.getLogger("slack_bolt.App")
if not any(isinstance(f, _UnusedTokenNotes) for f in _BOLT_LOG.filters):
    _BOLT_LOG.addFilter(_UnusedTokenNotes())


def build_app(ctx: BotContext, client: WebClient, signing_secret: str, middleware: Sequence[Middleware] = ()) -> App:
    """The Bolt app with `middleware` (in order) before every listener."""
    token = client.token

    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        # One workspace, one bot token: no auth.test round trip on the request path.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = App(
        client=client,
        signing_secret=signing_secret,
        authorize=authorize,
        token_verification_enabled=False,
        process_before_response=False,
        # Clicks do their Vault and database work after the ack, in this pool: size it so that
        # slow work never leaves a new request waiting for a thread to ack it.
        listener_executor=ThreadPoolExecutor(max_workers=48, thread_name_prefix="bolt-listener"),
    )

    @app.error
    def on_error(error: Exception, body: dict[str, Any], response: BoltResponse | None) -> None:
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        if response is not None and response.status == 500:
            # Not acknowledged yet: Bolt would answer 500, and Slack would show a bare "failed" with no
            # next step. The person gets a plain answer instead (only a slash command can show one).
            response.status = 200
            if isinstance(body, dict) and body.get("command"):
                response.body = json.dumps({"response_type": "ephemeral", "text": FAILED.format(command=ctx.command)})
                response.headers["content-type"] = ["application/json;charset=utf-8"]
            else:
                response.body = ""

    for piece in middleware:
        app.middleware(piece)
    commands.register(app, ctx)
    actions.register(app, ctx)
    views.register(app, ctx)
    events.register(app, ctx)
    return app
