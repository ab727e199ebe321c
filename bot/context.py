"""What listeners need, bundled: the service, the catalog, the notifier and the slash command's name."""

from __future__ import annotations

from dataclasses import dataclass

from bot.notifier import SlackNotifier
from grants.catalog import Catalog
from grants.service import ElevationService


@dataclass(frozen=True)
class BotContext:
    service: ElevationService
    catalog: Catalog
    notifier: SlackNotifier

    @property
    def command(self) -> str:
        return self.catalog.settings.command
