"""A click acknowledged while the database is down is not dropped in silence: the clicker is told to try again."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import APPROVER, REQUESTER, local_bot
from tests.databases import fresh_database
from tests.tcp_proxy import FreezableProxy


@pytest.mark.usefixtures("vault_synced")
def test_an_acked_click_that_meets_a_dead_database_tells_the_clicker(tmp_path, openbao, bot_vault_token):
    with (
        fresh_database("postgresql", tmp_path) as url,
        FreezableProxy(("127.0.0.1", 5432)) as proxy,
        local_bot(
            tmp_path, openbao.addr, bot_vault_token, db_url=url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        ) as world,
    ):
        bot, slack, client = world.bot, world.slack, world.client
        assert bot.runtime is not None
        status, body = client.slash(REQUESTER, "payments-read 30m INC-7 look at refunds")
        assert status == 200 and "Request `JIT-" in body["text"], body
        rid = body["text"].split("Request `", 1)[1].split("`", 1)[0]
        slack.wait_for(lambda: slack.find_message(lambda m: rid in str(m) and "approve" in str(m).lower()))
        # Hold the post-ack workers so the click is acked (the database still up) and carried out after it dies.
        hold, held = threading.Event(), []
        for _ in range(bot.runtime.ctx.work._max_workers):
            bot.runtime.ctx.work.submit(lambda: (held.append(1), hold.wait(30)))
        status, _ = client.click(APPROVER, "approve", rid)
        assert status == 200  # acked: Slack shows the person nothing more
        name = client.last_response_name
        proxy.cut()
        hold.set()
        reply = slack.wait_for(lambda: slack.responses_to(name), timeout=30)
        assert reply[0].get("response_type") == "ephemeral" and reply[0].get("replace_original") is False
        assert "could not be carried out" in reply[0]["text"] and rid in reply[0]["text"] and "click again" in reply[0]["text"]
        # With the database still down, a new slash command is answered in words, never with a 500 (no inbox to settle).
        status, body = client.slash(REQUESTER, "list", settle=False)
        assert status == 200 and "cannot reach its database" in body["text"], body
        status, _ = client.click(APPROVER, "approve", rid)
        assert status == 503
