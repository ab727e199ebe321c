"""The Slack notifier: approval messages and their threads, DMs and Home tabs, all off the request path."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks, messages
from grants.catalog import Catalog
from grants.credentials import IssuedCredential
from grants.domain import Request, State
from grants.lifecycle import Event
from grants.outbox import Alert, News, Unreachable
from grants.steps import step_progress

log = logging.getLogger(__name__)
GROUP_DM_LIMIT = 8  # Slack's multi-person DMs hold at most 8 people besides the bot
# Slack's answers for a person it cannot reach, and for an approval channel the bot cannot post to.
PERSON_UNREACHABLE = frozenset({"user_not_found", "user_disabled", "account_inactive", "cannot_dm_bot"})
CHANNEL_UNREACHABLE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
REMEMBERED = 10_000  # requests whose last thread line and approvers are kept in memory


class MessageRefs(Protocol):
    """Where each request's messages were posted (and for which approval step), to update them in place."""

    def add_message_ref(self, request_id: str, channel: str, ts: str, step: int | None = None) -> None: ...

    def message_refs(self, request_id: str) -> list[tuple[str, str, int | None]]: ...


class SlackNotifier:
    """Implements the Notifier port. Every method sends in the caller's thread and raises when Slack refuses: the
    outbox's workers call it, one notice of a request at a time and in order, and retry what failed. Each person's
    Home tab is published on a lane of its own, rendered from the database when it runs."""

    def __init__(
        self,
        client: WebClient,
        catalog: Catalog,
        refs: MessageRefs,
        lanes: int = 2,
        on_failure: Callable[[], None] = lambda: None,
        home: Callable[[str], dict[str, Any]] | None = None,
    ):
        self.client, self.catalog, self.refs, self.on_failure = client, catalog, refs, on_failure
        self.home = home  # renders one person's Home tab view; without it Home tabs are left alone
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"home-{i}") for i in range(lanes)]
        self._lock = threading.Lock()
        self._viewers: set[str] = set()  # who opened the Home tab since this process started
        self._approvers: dict[str, frozenset[str]] = {}  # request ID -> everyone it was offered to
        self._lines: dict[str, str] = {}  # request ID -> the last state line posted in its threads
        self._dm_channels: dict[str, str] = {}  # user ID -> their DM channel with the bot

    def _submit(self, key: str, work: Callable[[], object]) -> Future[None]:
        lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
        return lane.submit(_logged, key, work, self.on_failure)

    def drain(self) -> None:
        """Wait for the Home tabs queued so far (`Runtime.drain` first drains the outbox, which queues them)."""
        for lane in self._lanes:
            lane.submit(lambda: None).result()

    def shutdown(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)

    # Notifier port ----------------------------------------------------------------------------------

    def request_opened(self, request: Request, approvers: frozenset[str]) -> None:
        with self._lock:
            _remember(self._approvers, request.id, self._approvers.get(request.id, frozenset()) | approvers)
        self.refresh_home(*self._concerned(request))
        self._post_approval(request, approvers, self._step_waiting(request))

    def request_changed(self, request: Request) -> None:
        self.refresh_home(*self._concerned(request))
        self._rerender(request)

    def approvers_notice(self, request: Request, approvers: frozenset[str], kind: str) -> None:
        with self._lock:
            _remember(self._approvers, request.id, self._approvers.get(request.id, frozenset()) | approvers)
        self.refresh_home(*self._concerned(request))
        text = messages.notice_text(request, approvers, kind)
        if kind in ("break_glass", "extension", "escalation"):
            # These need buttons the people may not have yet: a message of their own, kept in step
            # with the request like any approval message, and the notice (with mentions) in its thread.
            try:
                self._post_approval(request, approvers)
            except Unreachable:
                self._thread_reply(request.id, text)  # those reached still get the notice
                raise
            self._thread_reply(request.id, text)
        else:
            self._thread_reply(request.id, text)

    def tell_requester(self, request: Request, news: Event | News, **context: object) -> None:
        text = messages.news_text(request, news, context)
        body = blocks.expiring(request, text, bool(context.get("can_extend"))) if news == News.EXPIRING else None
        self.refresh_home(request.requester)
        self.dm(request.requester, text, body)

    def deliver_credential(self, request: Request, credential: IssuedCredential) -> None:
        # The wrapping token goes to the requester's DM only: never a channel, never a log line, never the outbox.
        self.dm(request.requester, messages.credential_text(request, credential.delivery))

    def alert(self, alert: Alert, request_id: str | None = None, **context: object) -> None:
        text = messages.alert_text(alert, request_id, context)
        channel = self.catalog.settings.alert_channel
        log.warning("alert: %s", text)
        if channel:
            self._post(channel, f":rotating_light: {text}")

    # Home tabs and threads -------------------------------------------------------------------------

    def show_home(self, user: str) -> None:
        """`user` is looking at the Home tab: publish it now and keep it fresh from here on."""
        with self._lock:
            self._viewers.add(user)
        self._submit(f"home:{user}", lambda: self._publish_home(user))

    def refresh_home(self, *users: str) -> None:
        """Re-publish the Home tab of those of `users` who have opened it (others see it fresh when they do)."""
        with self._lock:
            viewers = sorted(set(users) & self._viewers)
        for user in viewers:
            self._submit(f"home:{user}", partial(self._publish_home, user))

    def _thread_reply(self, request_id: str, text: str) -> None:
        for channel, ts, _ in self.refs.message_refs(request_id):
            self._post(channel, text, thread_ts=ts)

    def _concerned(self, request: Request) -> set[str]:
        # The catalog's approvers, plus everyone the service offered the request to (Slack user
        # groups, later steps, escalation): whoever may have it under "Waiting on you".
        scope = self.catalog.scopes.get(request.scope)
        with self._lock:
            offered = self._approvers.get(request.id, frozenset())
        return {request.requester, *offered, *(self.catalog.approvers(scope) if scope else ())}

    def _step_waiting(self, request: Request) -> int | None:
        """The index of the approval step a pending request waits for (None when not pending)."""
        scope = self.catalog.scopes.get(request.scope)
        if scope is None or request.state is not State.PENDING:
            return None
        return step_progress(scope, request.approvals)[0]

    def _publish_home(self, user: str) -> None:
        if self.home is not None:
            self.client.views_publish(user_id=user, view=self.home(user))

    # Slack calls ------------------------------------------------------------------------------------

    def dm(self, user: str, text: str, blocks_: list[dict[str, Any]] | None = None) -> str:
        channel = self.dm_channel(user)
        self._post(channel, text, blocks_)
        return channel

    def dm_channel(self, user: str) -> str:
        """A person's DM channel ID never changes: ask Slack once per user and process."""
        with self._lock:
            cached = self._dm_channels.get(user)
        if cached is None:
            cached = str(self.client.conversations_open(users=user)["channel"]["id"])
            with self._lock:
                _remember(self._dm_channels, user, cached)
        return cached

    def _post(self, channel: str, text: str, blocks_: list[dict[str, Any]] | None = None, thread_ts: str | None = None) -> str:
        response = self.client.chat_postMessage(
            channel=channel, text=text, blocks=blocks_, thread_ts=thread_ts, unfurl_links=False
        )
        return str(response["ts"])

    def _post_approval(self, request: Request, approvers: frozenset[str], step: int | None = None) -> None:
        """Post the approval message to the approval channel, or the approvers' group DM, or each approver's DM.
        One person Slack cannot reach never silences the rest: they are skipped, and Unreachable says who."""
        text, body = blocks.approval_message(request, self.catalog)
        with self._lock:
            if request.id not in self._lines:  # the message itself says it; the thread starts with what follows
                _remember(self._lines, request.id, blocks.thread_line(request))
        channel = self.catalog.settings.approval_channel
        if channel:
            try:
                self.refs.add_message_ref(request.id, channel, self._post(channel, text, body), step)
                return
            except SlackApiError as exc:
                if exc.response.get("error") not in CHANNEL_UNREACHABLE:
                    raise
                # The bot is not in the channel (or it is gone): ask the approvers directly, and say why.
                reached, _ = self._post_to_each(request, approvers, text, body, step)
                raise Unreachable([channel], len(reached), str(exc.response.get("error"))) from None
        if 1 < len(approvers) <= GROUP_DM_LIMIT:
            try:
                group = str(self.client.conversations_open(users=",".join(sorted(approvers)))["channel"]["id"])
            except SlackApiError as exc:
                if exc.response.get("error") not in PERSON_UNREACHABLE:
                    raise
            else:
                self.refs.add_message_ref(request.id, group, self._post(group, text, body), step)
                return
        # One by one: a group DM that named someone Slack does not know, more than 8 approvers, or just one.
        reached, errors = self._post_to_each(request, approvers, text, body, step)
        if len(reached) < len(approvers):
            raise Unreachable(approvers - reached, len(reached), ", ".join(sorted(errors)))

    def _post_to_each(
        self, request: Request, approvers: frozenset[str], text: str, body: list[dict[str, Any]], step: int | None
    ) -> tuple[set[str], set[str]]:
        """DM each approver; who was reached, and Slack's errors for those who were not."""
        reached: set[str] = set()
        errors: set[str] = set()
        for approver in sorted(approvers):
            try:
                target = self.dm_channel(approver)
            except SlackApiError as exc:
                if exc.response.get("error") not in PERSON_UNREACHABLE:
                    raise
                errors.add(str(exc.response.get("error")))
                continue
            self.refs.add_message_ref(request.id, target, self._post(target, text, body), step)
            reached.add(approver)
        return reached, errors

    def _rerender(self, request: Request) -> None:
        text, body = blocks.approval_message(request, self.catalog)
        line = blocks.thread_line(request)
        with self._lock:
            moved_on = self._lines.get(request.id) != line
            _remember(self._lines, request.id, line)
        waiting = self._step_waiting(request)
        for channel, ts, step in self.refs.message_refs(request.id):
            if step is not None and waiting is not None and step < waiting:
                # The people of a finished step keep the story but lose the buttons: nothing there is theirs to decide.
                done_text, done_body = blocks.approval_message(request, self.catalog, step_done=True)
                self.client.chat_update(channel=channel, ts=ts, text=done_text, blocks=done_body)
            else:
                self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
        if moved_on:  # a re-render of the same state adds nothing to the thread
            self._thread_reply(request.id, line)


def _remember(memory: dict[str, Any], key: str, value: Any) -> None:
    """Set `key`, forgetting the oldest entries beyond REMEMBERED (a restart forgets them all)."""
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > REMEMBERED:
        memory.pop(next(iter(memory)))


def _logged(request_id: str, work: Callable[[], object], on_failure: Callable[[], None]) -> None:
    try:
        work()
    except Exception as exc:
        on_failure()
        # The decision stands even when Slack fails. Only the error's kind is logged: Slack's
        # error payloads can echo the message, and a message may carry a wrapping token.
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.error("slack notification failed: %s", code, extra={"request_id": request_id})
