"""The install guide (docs/install.md) followed step by step, as a new admin would, against a fresh OpenBao, the Slack stand-in
and real `jitbot` processes: vault sync and the bot's token, the manifest's URLs, `jitbot check` and its named
mistakes, `jitbot serve` over HTTP and Socket Mode, and the failures the guide's table says come first."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml

from devkit.openbao import OpenBaoDevServer, find_bao
from devkit.processes import ServeProcess
from devkit.slack_client import SignedSlackClient, SocketModeSlackClient
from devkit.standin import SlackStandIn, message_text
from tests.conftest import BOT_TOKEN, REQUESTER, ROOT, SIGNING_SECRET, USERS
from tests.integration.test_cli import jitbot

pytestmark = pytest.mark.slow

APP_TOKEN = "xapp-1-A0JITBOT-install-guide"
APPROVALS = "C0APPROVALS"  # the approval channel's ID, as step 5 says; a private channel in the stand-in
PLACEHOLDER = "https://jitbot.example.com/slack/events"


@dataclass
class Install:
    """What the Vault operator did in step 1 of docs/install.md."""

    workdir: Path
    vault_addr: str
    catalog: Path
    sync: subprocess.CompletedProcess[str]
    token_create: subprocess.CompletedProcess[str]
    bot_vault_token: str


def wait_log(path: Path, needle: str, timeout: float = 15) -> dict[str, Any]:
    """The first JSON log line of `jitbot serve` whose message contains `needle` (polled, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text().splitlines():
            if line.startswith("{") and needle in (entry := json.loads(line)).get("message", ""):
                return dict(entry)
        assert time.monotonic() < deadline, f"no log line with {needle!r} in:\n{path.read_text()}"
        time.sleep(0.05)


def serve_env(install: Install, slack: SlackStandIn, database: Path, **overrides: str) -> dict[str, str]:
    """The settings step 3 lists, as an admin would set them (no SLACK_TEAM_ID: it is learned from auth.test)."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "VAULT_ADDR": install.vault_addr,
        "VAULT_TOKEN": install.bot_vault_token,
        "DATABASE_URL": f"sqlite:///{database}",
        "JITBOT_CATALOG": str(install.catalog),
        "JITBOT_SSH_KRL": str(install.workdir / "revoked.krl"),
        **overrides,
    }


@pytest.fixture(scope="module")
def vault() -> Iterator[OpenBaoDevServer]:
    """A fresh OpenBao of its own: nothing synced yet, as on the day of the install."""
    with OpenBaoDevServer() as server:
        yield server


# The shipped catalog's scopes whose backends docs/kinds.md sets up: the SSH and PKI CA mounts, a database role.
UNSET_BACKENDS = {"web-ssh", "api-client-cert", "database/jit-orders-read"}


@pytest.fixture(scope="module")
def install(vault: OpenBaoDevServer, tmp_path_factory: pytest.TempPathFactory) -> Install:
    workdir = tmp_path_factory.mktemp("install")
    shutil.copytree(ROOT / "vault_policies", workdir / "vault_policies")
    catalog = workdir / "vault_policies" / "catalog.toml"
    # Step 5 of the Slack guide: the approval channel, by ID.
    catalog.write_text(catalog.read_text().replace('approval_channel = ""', f'approval_channel = "{APPROVALS}"'))
    operator = {"VAULT_ADDR": vault.addr, "VAULT_TOKEN": vault.root_token}
    sync = jitbot(
        "vault",
        "sync",
        JITBOT_CATALOG=str(catalog),
        JITBOT_SSH_KRL=str(workdir / "revoked.krl"),
        DATABASE_URL=f"sqlite:///{workdir / 'unused.db'}",
        **operator,
    )
    # The shipped catalog's database, SSH and PKI scopes need their backends (a database role, the SSH and PKI CA mounts), which
    # docs/kinds.md sets up: until then vault sync names them and exits 1; everything else is written.
    assert sync.returncode == 1 and unset_backends(sync.stdout) == UNSET_BACKENDS, sync.stdout
    # The guide's command, word for word, with the `-field=token` it suggests to print only the token.
    command = [
        find_bao(),
        "token",
        "create",
        "-policy=jitbot-bot",
        "-no-default-policy",
        "-orphan",
        "-period=24h",
        "-field=token",
    ]
    token_create = subprocess.run(command, capture_output=True, text=True, timeout=30, env={**os.environ, **operator})
    assert token_create.returncode == 0, token_create.stderr
    token = token_create.stdout.strip()
    assert token.startswith("s.") and len(token.split()) == 1, "one token, nothing else, to paste into VAULT_TOKEN"
    return Install(workdir, vault.addr, catalog, sync, token_create, token)


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    """The workspace: the approval channel is private and the bot is not in it yet."""
    with SlackStandIn(BOT_TOKEN, users=USERS, app_token=APP_TOKEN) as standin:
        standin.private_channel(APPROVALS)
        yield standin


@pytest.fixture(scope="module")
def bot(install: Install, slack: SlackStandIn) -> Iterator[ServeProcess]:
    """Step 4: `jitbot serve` over HTTP with the settings of step 3."""
    process = ServeProcess(serve_env(install, slack, install.workdir / "jitbot.db"), install.workdir / "serve.log").start()
    try:
        yield process
    finally:
        process.stop()
    log = (install.workdir / "serve.log").read_text()
    assert install.bot_vault_token not in log and BOT_TOKEN not in log and SIGNING_SECRET not in log, "a secret reached the log"


def manifest_for(url: str) -> dict[str, Any]:
    """Step 1: bot/manifest.yaml with the placeholder URL replaced by the bot's own."""
    text = (ROOT / "bot" / "manifest.yaml").read_text()
    assert text.count(PLACEHOLDER) == 4, "the guide says there are four URLs to replace"
    loaded: dict[str, Any] = yaml.safe_load(text.replace(PLACEHOLDER, url))
    return loaded


# --- docs/install.md, step 1: the Vault operator ---------------------------------------


def test_vault_sync_then_a_token_holding_only_jitbot_bot(install: Install, vault: OpenBaoDevServer) -> None:
    assert "jitbot-bot" in install.sync.stdout and "created" in install.sync.stdout
    root = hvac.Client(url=vault.addr, token=vault.root_token)
    assert "jitbot-bot" in root.sys.list_acl_policies()["data"]["keys"]
    looked_up = root.auth.token.lookup(install.bot_vault_token)["data"]
    assert looked_up["policies"] == ["jitbot-bot"], "only jitbot-bot, not even `default`"
    assert looked_up["orphan"] is True and looked_up["period"] == 24 * 3600 and looked_up["renewable"] is True
    # What jitbot-bot does not allow: reading policies, minting tokens outside the jitbot-* roles, secrets.
    capabilities = root.adapter.post(
        "/v1/sys/capabilities",
        json={"token": install.bot_vault_token, "paths": ["sys/policies/acl/jitbot-bot", "auth/token/create", "secret/data/x"]},
    )
    assert all(
        capabilities["data"][path] == ["deny"] for path in ("sys/policies/acl/jitbot-bot", "auth/token/create", "secret/data/x")
    )
    # The guide's check of it, with the CLI an operator has.
    lookup = subprocess.run(
        [find_bao(), "token", "lookup", install.bot_vault_token],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "VAULT_ADDR": vault.addr, "VAULT_TOKEN": vault.root_token},
    )
    fields = dict(line.split(None, 1) for line in lookup.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert lookup.returncode == 0 and fields["policies"] == "[jitbot-bot]" and fields["period"] == "24h", lookup.stdout
    again = jitbot("vault", "sync", JITBOT_CATALOG=str(install.catalog), VAULT_ADDR=vault.addr, VAULT_TOKEN=vault.root_token)
    assert again.returncode == 1 and unset_backends(again.stdout) == UNSET_BACKENDS, again.stdout
    assert "created" not in again.stdout and "updated" not in again.stdout, again.stdout


def unset_backends(output: str) -> set[str]:
    """What the `error:` lines of vault sync name: the scope (ssh) or the database role (database) not set up."""
    found = re.findall(r"^error: (?:scope (\S+?):|database role (\S+) does not exist)", output, re.M)
    assert len(found) == len(re.findall(r"^error:", output, re.M)), output
    return {scope or role for scope, role in found}


# --- Slack guide, step 1: the manifest -----------------------------------------------------------------------------


def test_the_manifest_sends_everything_to_the_one_endpoint(bot: ServeProcess, install: Install) -> None:
    endpoint = f"{bot.url}/slack/events"
    manifest = manifest_for(endpoint)
    urls = [
        manifest["features"]["slash_commands"][0]["url"],
        manifest["settings"]["interactivity"]["request_url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["message_menu_options_url"],  # the scope picker's options, past 100 scopes
    ]
    assert urls == [endpoint] * 4
    assert "jitbot.example.com" not in json.dumps(manifest)
    assert manifest["features"]["slash_commands"][0]["command"] in install.catalog.read_text(), "same command as the catalog"


# --- Slack guide, step 6: `jitbot check`, then the mistakes it names ---------------------------------------------


def test_jitbot_check_passes_then_names_each_mistake_the_guide_warns_about(
    install: Install, slack: SlackStandIn, tmp_path: Path
) -> None:
    passed = jitbot("check", JITBOT_CATALOG=str(install.catalog))
    assert passed.returncode == 0 and "catalog and policies are valid" in passed.stdout, passed.stdout + passed.stderr

    shutil.copytree(install.catalog.parent, tmp_path / "policies")
    wrong = tmp_path / "policies" / "catalog.toml"
    text = wrong.read_text()
    for old, new in (
        ('db-oncall = ["U0APPR001", "U0APPR002"]', 'db-oncall = ["@ari", "U0APPR002"]'),  # a display name, not an ID
        ('approvers = ["group:security"]', 'approvers = ["usergroup:security"]'),  # a group's handle, not its S… ID
        (f'approval_channel = "{APPROVALS}"', 'approval_channel = "#approvals"'),  # a channel name, not its ID
    ):
        assert old in text, old
        text = text.replace(old, new)
    wrong.write_text(text)
    failed = jitbot("check", JITBOT_CATALOG=str(wrong))
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    for expected in (
        "groups.db-oncall: `@ari` is not a Slack user ID (U…)",
        "scopes.payments-write.approval_steps[1].approvers: `usergroup:security` is not a Slack user group ID (usergroup:S…)",
        "settings.approval_channel: `#approvals` is not a Slack channel ID (C…)",
    ):
        assert any(expected in line for line in lines), f"{expected!r} not in:\n{failed.stdout}"
    assert "3 problem(s) found." in failed.stderr

    # The bot itself does not start on that catalog either: the same problems, before anything is served.
    refused = jitbot("serve", "--port", "9", **serve_env(install, slack, tmp_path / "x.db", JITBOT_CATALOG=str(wrong)))
    assert refused.returncode == 2 and "`#approvals` is not a Slack channel ID" in refused.stderr, refused.stderr


# --- Slack guide, steps 2 and 7: HTTP mode, then "Try it" ---------------------------------------------------------


def test_healthz_challenge_help_form_and_home_over_http(bot: ServeProcess, slack: SlackStandIn) -> None:
    status, health = bot.health()
    assert status == 200 and {k: health[k] for k in ("database", "vault", "scheduler")} == dict.fromkeys(
        ("database", "vault", "scheduler"), "ok"
    ), health
    assert health["role"] == "serve", "one process, web side and worker together"

    endpoint = manifest_for(f"{bot.url}/slack/events")["settings"]["event_subscriptions"]["request_url"]
    client = SignedSlackClient(endpoint, SIGNING_SECRET, standin=slack)
    # Saving the Event Subscriptions URL: Slack's signed url_verification, answered with the challenge.
    status, answer = client._send_event(
        {"token": "unused", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    assert status == 200 and answer == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}, answer

    status, answer = client.slash(REQUESTER, "help")
    assert status == 200 and "/elevate list" in answer["text"] and "open the request form" in answer["text"], answer
    assert answer["response_type"] == "ephemeral", "only the person who typed it sees the usage"

    status, _ = client.slash(REQUESTER, "")
    assert status == 200
    slack.wait_for(lambda: any(v["view"].get("callback_id") == "request_modal" for v in slack.views.values()), message="the form")

    status, answer = client.open_home(REQUESTER)
    assert status == 200
    home = slack.wait_for(lambda: slack.views.get("VHOME" + REQUESTER), message="the Home tab published")
    assert home["view"]["type"] == "home" and home["view"]["blocks"]


# --- "The failures you are likely to meet first" ------------------------------------------------------------------


def test_a_wrong_signing_secret_is_refused_with_the_logged_line(bot: ServeProcess, slack: SlackStandIn, install: Install) -> None:
    client = SignedSlackClient(bot.url, "the-signing-secret-of-another-app", standin=slack)
    status, _ = client.slash(REQUESTER, "help")
    assert status == 401
    wait_log(install.workdir / "serve.log", "refused a Slack request with a bad or stale signature")


def test_an_app_token_as_the_bot_token_stops_start_up_with_one_line(
    install: Install, slack: SlackStandIn, tmp_path: Path
) -> None:
    result = jitbot("serve", "--port", "9", **serve_env(install, slack, tmp_path / "x.db", SLACK_BOT_TOKEN=APP_TOKEN))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "jitbot: SLACK_BOT_TOKEN is malformed (must start with xoxb-): "
        "set it to the Bot User OAuth Token of your Slack app, starting with xoxb-."
    )
    assert APP_TOKEN not in result.stdout + result.stderr


def test_a_token_slack_does_not_know_stops_start_up_with_one_line(install: Install, slack: SlackStandIn, tmp_path: Path) -> None:
    # Another app's token (or a revoked one) would never work: the bot says so at start-up, SLACK_TEAM_ID set or not.
    for pinned in ({}, {"SLACK_TEAM_ID": slack.team_id}):
        env = serve_env(install, slack, tmp_path / "x.db", SLACK_BOT_TOKEN="xoxb-another-apps-token", **pinned)
        result = jitbot("serve", "--port", "9", **env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            "jitbot: Slack refuses SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token (xoxb-…) "
            "from your app's OAuth & Permissions page"
        )
        assert "another-apps-token" not in result.stdout + result.stderr


def test_a_private_approval_channel_without_the_bot_then_invited(
    bot: ServeProcess, slack: SlackStandIn, install: Install
) -> None:
    client = SignedSlackClient(bot.url, SIGNING_SECRET, standin=slack)
    status, answer = client.slash(REQUESTER, "payments-read 10m INC-1 before the invitation")
    assert status == 200 and "Request `JIT-" in answer["text"], answer
    first = answer["text"].split("`")[1]
    entry = wait_log(install.workdir / "serve.log", "could not reach C0APPROVALS (not_in_channel)")
    assert first in entry["message"]
    assert not slack.messages_in(APPROVALS), "nothing reaches the channel (the approvers are DM'd instead)"

    slack.invite_bot(APPROVALS)  # `/invite @jitbot` in the channel, as the table's fix says
    status, answer = client.slash("U0DEV0002", "payments-read 10m INC-2 after the invitation")
    assert status == 200 and "Request `JIT-" in answer["text"], answer
    second = answer["text"].split("`")[1]
    slack.wait_for(lambda: next((m for m in slack.messages_in(APPROVALS) if second in message_text(m)), None))


# --- Slack guide, step 2: Socket Mode --------------------------------------------------------------------------------


def test_help_over_socket_mode(install: Install, slack: SlackStandIn, tmp_path: Path) -> None:
    variables = serve_env(install, slack, tmp_path / "socket.db", SLACK_APP_TOKEN=APP_TOKEN)
    process = ServeProcess(variables, tmp_path / "serve.log").start()
    try:
        slack.wait_for_connection(1, timeout=15)
        status, answer = SocketModeSlackClient(slack).slash(REQUESTER, "help")
        assert status == 200 and "/elevate list" in answer["text"], answer
    finally:
        process.stop()
    assert APP_TOKEN not in (tmp_path / "serve.log").read_text()
