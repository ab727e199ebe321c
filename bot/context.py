"""What listeners need, bundled: the service, the catalog, the notifier, the post-ack workers and the command name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bot.notifier import SlackNotifier
from grants.catalog import Catalog
from grants.service import ElevationService


@dataclass(frozen=True)
class BotContext:
    service: ElevationService
    catalog: Catalog
    notifier: SlackNotifier
    # After the ack, the slow part of a click (Vault, the database) runs here: a few workers, so it
    # never crowds out the threads that acknowledge new requests within Slack's 3 seconds.
    work: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="jitbot-work"))

    def later(self, job: Callable[..., Any], *args: Any) -> None:
        self.work.submit(_logged, job, *args)

    @property
    def command(self) -> str:
        return self.catalog.settings.command


def _logged(job: Callable[..., Any], *args: Any) -> None:
    try:
        job(*args)
    except Exception:
        logging.getLogger(__name__).exception("background work failed")
