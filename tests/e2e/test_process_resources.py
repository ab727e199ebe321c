"""A long-lived process stays healthy: a stopped bot gives back its descriptors, and the HTTP loop serves
even when the process already holds more than 1,024 of them (select() cannot; the bot polls)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest

from devkit.harness import LocalBot
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from tests.conftest import BOT_TOKEN, REQUESTER, SIGNING_SECRET, USERS, make_catalog_dir


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def start_bot(tmp_path, db_url, openbao, bot_vault_token) -> Iterator:
    policies = make_catalog_dir(tmp_path)
    with SlackStandIn(BOT_TOKEN, users=USERS) as slack:

        def start() -> LocalBot:
            return LocalBot(
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.url,
                vault_addr=openbao.addr,
                vault_token=bot_vault_token,
                database_url=db_url,
                jitbot_catalog=policies / "catalog.toml",
            ).start()

        yield start


def serve_one_list(bot: LocalBot) -> None:
    status, body = SignedSlackClient(bot.url, SIGNING_SECRET).slash(REQUESTER, "list")
    assert status == 200, (status, body)


def test_a_stopped_bot_closes_its_database_and_vault_connections(start_bot):
    # The suite (and a process embedding the bot) starts and stops runtimes many times: each used to leave
    # its connection pools open, and after some hundred runtimes the HTTP loop died on a descriptor > 1024.
    bot = start_bot()
    serve_one_list(bot)
    bot.stop()
    before = open_descriptors()
    for _ in range(3):
        bot = start_bot()
        serve_one_list(bot)
        bot.stop()
    assert open_descriptors() <= before + 2, f"descriptors grew from {before} to {open_descriptors()}"


def test_the_http_loop_serves_beyond_descriptor_1024(start_bot):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1400
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"this machine allows only {hard} open files; the test needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]  # every new socket now numbers above 1024
    try:
        bot = start_bot()
        try:
            for _ in range(3):
                serve_one_list(bot)
        finally:
            bot.stop()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
