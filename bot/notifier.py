"""The Slack notifier: posts and re-renders approval messages and DMs people, off the request path."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from grants.catalog import Catalog
from grants.domain import IssuedCredential, Request

log = logging.getLogger(__name__)
GROUP_DM_LIMIT = 8  # Slack's multi-person DMs hold at most 8 people besides the bot


class MessageRefs(Protocol):
    def add_message_ref(self, request_id: str, channel: str, ts: str) -> None: ...

    def message_refs(self, request_id: str) -> list[tuple[str, str]]: ...


class SlackNotifier:
    """Implements the Notifier port. Work for one request runs in order on one lane, so the
    approval message exists before it is updated; different requests run in parallel."""

    def __init__(
        self,
        client: WebClient,
        catalog: Catalog,
        refs: MessageRefs,
        lanes: int = 4,
        on_failure: Callable[[], None] = lambda: None,
    ):
        self.client, self.catalog, self.refs, self.on_failure = client, catalog, refs, on_failure
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"notify-{i}") for i in range(lanes)]

    def _submit(self, request_id: str, work: Callable[[], None]) -> Future[None]:
        lane = self._lanes[zlib.crc32(request_id.encode()) % len(self._lanes)]
        return lane.submit(_logged, request_id, work, self.on_failure)

    def drain(self) -> None:
        """Wait for every queued notification (shutdown, tests)."""
        for lane in self._lanes:
            lane.submit(lambda: None).result()

    def shutdown(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)

    # Notifier port ----------------------------------------------------------------------------------

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None:
        self._submit(request.id, lambda: self._post_approval(request, approvers))

    def request_changed(self, request: Request) -> None:
        self._submit(request.id, lambda: self._rerender(request))

    def tell_requester(self, request: Request, news: str, **context: object) -> None:
        text = messages.news_text(request, news, context)
        self._submit(request.id, lambda: self.dm(request.requester, text))

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        # The wrapping token goes to the requester's DM only: never a channel, never a log line.
        text = messages.credential_text(request, credential.delivery, credential.unwrap_hint, credential.delivery_ttl)
        self._submit(request.id, lambda: self.dm(request.requester, text))

    def alert(self, text: str) -> None:
        channel = self.catalog.settings.alert_channel
        log.warning("alert: %s", text)
        if channel:
            self._submit("alerts", lambda: self._post(channel, f":rotating_light: {text}"))

    # Slack calls ------------------------------------------------------------------------------------

    def dm(self, user: str, text: str, blocks_: list[dict[str, Any]] | None = None) -> str:
        channel = self.client.conversations_open(users=user)["channel"]["id"]
        self._post(channel, text, blocks_)
        return str(channel)

    def _post(self, channel: str, text: str, blocks_: list[dict[str, Any]] | None = None) -> str:
        response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks_, unfurl_links=False)
        return str(response["ts"])

    def _post_approval(self, request: Request, approvers: frozenset[str]) -> None:
        text, body = blocks.approval_message(request, self.catalog)
        channel = self.catalog.settings.approval_channel
        if channel:
            targets = [channel]
        elif len(approvers) <= GROUP_DM_LIMIT:
            targets = [self.client.conversations_open(users=",".join(sorted(approvers)))["channel"]["id"]]
        else:
            targets = [self.client.conversations_open(users=a)["channel"]["id"] for a in sorted(approvers)]
        for target in targets:
            self.refs.add_message_ref(request.id, target, self._post(target, text, body))

    def _rerender(self, request: Request) -> None:
        text, body = blocks.approval_message(request, self.catalog)
        for channel, ts in self.refs.message_refs(request.id):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)


def _logged(request_id: str, work: Callable[[], None], on_failure: Callable[[], None]) -> None:
    try:
        work()
    except Exception as exc:
        on_failure()
        # The decision stands even when Slack fails. Only the error's kind is logged: Slack's
        # error payloads can echo the message, and a message may carry a wrapping token.
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.error("slack notification failed: %s", code, extra={"request_id": request_id})
