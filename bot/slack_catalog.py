"""Slack's half of the catalog's validation: its user, user group and channel IDs, and the subcommand words."""

from __future__ import annotations

import re
from pathlib import Path

from grants import catalog as core
from grants.catalog import Catalog

# The words after `/elevate` that are not scope names (bot/listeners/commands.py dispatches on them).
SUBCOMMANDS = frozenset(
    {"list", "revoke", "audit", "help", "cancel", "break-glass", "extend", "nudge", "reviews", "ssh-key", "csr"}
)
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")  # public (C…) or older private (G…) channel; names are not stable


def slack_problems(catalog: Catalog) -> list[str]:
    """What the core cannot know is wrong: a name where Slack wants an ID, a scope that a subcommand would shadow."""
    problems: list[str] = []
    for group, members in catalog.groups.items():
        problems += [f"groups.{group}: `{m}` is not a Slack user ID (U…)" for m in members if not USER_ID.match(m)]
    for where, values, _ in core.principal_fields(catalog):
        for value in values:
            if value == "*" or value.startswith(("group:", "oncall:")):
                continue  # the core's own syntax, checked there
            if value.startswith("usergroup:"):
                if not USERGROUP_ID.match(value.removeprefix("usergroup:")):
                    problems.append(f"{where}: `{value}` is not a Slack user group ID (usergroup:S…)")
            elif not USER_ID.match(value):
                problems.append(
                    f"{where}: `{value}` is neither a Slack user ID (U…), `group:NAME`, `usergroup:S…`, `oncall:SCHEDULE` nor `*`"
                )
    for key in ("approval_channel", "alert_channel"):
        channel = getattr(catalog.settings, key)
        # A name (`#approvals`) breaks on the first rename, and Slack refuses it where an ID is required
        # (chat.update of the approval message): only the ID, which never changes, is accepted.
        if channel and not CHANNEL_ID.match(channel):
            problems.append(
                f"settings.{key}: `{channel}` is not a Slack channel ID (C…); "
                "open the channel → its name → About → copy the Channel ID"
            )
    for name, tracker in catalog.settings.trackers.items():
        problems += [
            f"settings.trackers.{name}.accounts: `{user}` is not a Slack user ID (U…)"
            for user in tracker.accounts
            if not USER_ID.match(user)
        ]
    oncall = catalog.settings.oncall
    accounts = oncall.accounts if oncall is not None else {}
    problems += [
        f"settings.oncall.accounts: `{user}` is not a Slack user ID (U…)" for user in accounts if not USER_ID.match(user)
    ]
    # `/elevate list` must mean the subcommand: a scope of that name could never be requested by typing it.
    problems += [
        f"scopes.{name}: `{name}` is a subcommand word; rename the scope" for name in catalog.scopes if name in SUBCOMMANDS
    ]
    return problems


def load_catalog(path: Path) -> Catalog:
    """The catalog file, checked by the core and for Slack: what `jitbot serve` and `jitbot check` load."""
    return core.load_catalog(path, slack_problems)


def parse_catalog(data: dict[str, object], policy_dir: Path | None = None) -> Catalog:
    return core.parse_catalog(data, policy_dir, slack_problems)
