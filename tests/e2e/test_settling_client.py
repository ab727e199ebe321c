"""The tests' signed client fails loudly when the inbox never makes a request it recorded (it once gave up in silence)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import REQUESTER, SettlingClient, local_bot


def test_a_request_the_inbox_never_makes_fails_the_settling_client_naming_its_row(tmp_path, openbao, bot_vault_token):
    with local_bot(tmp_path, openbao.addr, bot_vault_token) as world:
        runtime = world.bot.runtime
        assert runtime is not None
        hold = threading.Event()
        for _ in range(runtime.ctx.work._max_workers):  # every post-ack worker busy: the acked request waits
            runtime.ctx.work.submit(hold.wait, 30)
        impatient = SettlingClient(world.bot, world.slack, timeout=1)
        started = time.monotonic()
        try:
            with pytest.raises(
                AssertionError, match=r"the inbox never settled: 1 new request\(s\) still not made 1 s .*inbox row \d+"
            ):
                impatient.slash(REQUESTER, "payments-read 30m INC-7 made late")
            assert time.monotonic() - started < 10
            assert world.rows("SELECT count(*) FROM requests")[0][0] == 0
        finally:
            hold.set()
        world.client.settle()  # the workers are free: the same row is made once, and the inbox settles
        assert world.rows("SELECT count(*) FROM requests")[0][0] == 1
