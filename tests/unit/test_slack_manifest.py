"""bot/manifest.yaml is valid by Slack's official manifest schema, asks for exactly the scopes the bot uses, and
its usage hint names every subcommand."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.listeners.commands import SUBCOMMAND_LIST
from bot.slack_catalog import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
# Vendored from github.com/slackapi/manifest-schema (see tests/slack_manifest_schema/README.md).
SCHEMA = json.loads((ROOT / "tests/slack_manifest_schema/manifest.schema.1.0.0.json").read_text(encoding="utf-8"))

# Each Web API method the product calls, and the bot scopes it needs (https://docs.slack.dev/reference/methods).
METHOD_SCOPES: dict[str, set[str]] = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "conversations_open": {"im:write", "mpim:write"},  # one DM, or one group DM of the approvers
    "files_upload_v2": {"files:write"},
    "usergroups_users_list": {"usergroups:read"},
    "auth_test": set(),  # learns the workspace ID to pin (no scope needed)
    "views_open": set(),
    "views_publish": set(),
}
# Scopes no method call shows: the slash command itself, and posting to a public channel the bot was not invited to.
ALWAYS = {"commands", "chat:write.public"}


def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "bot/manifest.yaml").read_text(encoding="utf-8"))


def methods_called() -> set[str]:
    product = [p for p in (ROOT / "bot").rglob("*.py") if "devkit" not in p.parts and not p.name.startswith("demo")]
    return {m for p in product for m in re.findall(r"client\.([a-z]+_[A-Za-z0-9_]+)\(", p.read_text(encoding="utf-8"))}


def test_the_manifest_is_valid_by_the_official_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(manifest())


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: m["features"]["slash_commands"][0].update(command="elevate"),  # no leading slash
        lambda m: m["features"]["slash_commands"][0].update(usage_hint="x" * 1001),
        lambda m: m["oauth_config"].update(scopes={"bots": ["commands"]}),  # unknown key
        lambda m: m["settings"]["interactivity"].update(message_menu_options_url="jitbot.example.com/slack/events"),
    ],
)
def test_the_schema_check_catches_a_broken_manifest(breakage):
    broken = copy.deepcopy(manifest())
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_the_bot_asks_for_exactly_the_scopes_it_uses():
    called = methods_called()
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"the bot now calls {unknown}: add each with its scopes to METHOD_SCOPES (and to the manifest)"
    needed = ALWAYS.union(*(METHOD_SCOPES[m] for m in called))
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == needed
    assert "users:read" not in needed


def test_every_url_is_the_one_bolt_endpoint_and_the_usage_hint_names_every_subcommand():
    m = manifest()
    (command,) = m["features"]["slash_commands"]
    interactivity = m["settings"]["interactivity"]
    # Without the options URL real Slack sends the form's external_select (past 100 scopes) nowhere: no options.
    urls = [
        command["url"],
        m["settings"]["event_subscriptions"]["request_url"],
        interactivity["request_url"],
        interactivity["message_menu_options_url"],
    ]
    assert urls == ["https://jitbot.example.com/slack/events"] * 4
    hint = command["usage_hint"]
    assert all(word in hint.split() for word in SUBCOMMANDS), hint
    assert set(SUBCOMMAND_LIST.split(", ")) == SUBCOMMANDS, "the unknown-word reply lists exactly the subcommands"
    assert "<" not in hint, "placeholders are words, not markup"
    assert m["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
