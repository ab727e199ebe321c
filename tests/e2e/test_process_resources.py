"""A long-lived process stays healthy: a stopped bot gives back its descriptors, and the HTTP loop serves
even when the process already holds more than 1,024 of them (select() cannot; the bot polls)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from devkit.standin import SlackStandIn
from tests.conftest import BOT_TOKEN, REQUESTER, USERS, World, local_bot, make_catalog_dir


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def start_bot(tmp_path, db_url, openbao, bot_vault_token) -> Iterator[Callable[[], AbstractContextManager[World]]]:
    """Starts a bot on the test's database, as often as asked, each a new runtime."""
    catalog = make_catalog_dir(tmp_path) / "catalog.toml"
    with SlackStandIn(BOT_TOKEN, users=USERS) as slack:
        yield lambda: local_bot(tmp_path, openbao.addr, bot_vault_token, db_url=db_url, catalog=catalog, slack=slack)


def serve_one_list(world: World) -> None:
    status, body = world.client.slash(REQUESTER, "list")
    assert status == 200, (status, body)


def test_a_stopped_bot_closes_its_database_and_vault_connections(start_bot):
    # The suite (and a process embedding the bot) starts and stops runtimes many times: each used to leave
    # its connection pools open, and after some hundred runtimes the HTTP loop died on a descriptor > 1024.
    with start_bot() as world:
        serve_one_list(world)
    before = open_descriptors()
    for _ in range(3):
        with start_bot() as world:
            serve_one_list(world)
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
        with start_bot() as world:
            for _ in range(3):
                serve_one_list(world)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
