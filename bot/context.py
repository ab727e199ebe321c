"""What listeners need, bundled: the service, the catalog, the notifier, the post-ack workers and the command name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from slack_bolt.context.respond import Respond

from bot.listeners import deferred
from bot.notifier import SlackNotifier
from bot.tasks import Task
from grants.catalog import Catalog
from grants.service import ElevationService

log = logging.getLogger(__name__)


@dataclass
class BotContext:
    service: ElevationService
    catalog: Catalog
    notifier: SlackNotifier
    # After the ack, the slow part of a click (Vault, the database) runs here: a few workers, so it
    # never crowds out the threads that acknowledge new requests within Slack's 3 seconds.
    work: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="jitbot-work"))
    # How a deferred task answers through a response URL (tests put a recorder here).
    responder: Callable[[str | None], Respond] = lambda url: Respond(response_url=url)

    def later(self, task: Task) -> None:
        """Run `task` after the ack, in this process's pool."""
        self.work.submit(self.run, task)

    def run(self, task: Task) -> None:
        try:
            deferred.run(self, task)
        except Exception:
            log.exception("background work failed", extra={"task": task.kind})

    @property
    def command(self) -> str:
        return self.catalog.settings.command
