"""Slack user groups resolved through the Web API, cached for a short while."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class SlackDirectory:
    """Implements the core's Directory port. A membership is trusted for `ttl` seconds; when Slack
    fails, the last known membership is used (never a wider one), else nobody."""

    def __init__(self, client: WebClient, ttl: float = 300.0):
        self.client, self.ttl = client, ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(usergroup_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            members = frozenset(self.client.usergroups_users_list(usergroup=usergroup_id)["users"])
        except (SlackApiError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else type(error).__name__
            log.warning("could not resolve a user group", extra={"usergroup": usergroup_id, "error": code})
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._cache[usergroup_id] = (now, members)
        return members
