"""The step-up stage: a real bot (signed Slack requests, the stand-in) on real OpenBao, whose own OIDC provider with
userpass + TOTP login MFA is the approvers' IdP, and the step-up page on the bot's port; one per database."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from devkit.harness import LocalBot
from devkit.openbao import OpenBaoDevServer
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from devkit.stepup import LINK, StepUpBrowser
from tests.conftest import SettlingClient, local_bot
from tests.databases import fresh_database
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER, VaultApprovals, catalog_dir, start

STEPPED = "stepped"  # approval = "bot" with step_up: the core wants the page's evidence
STEPPED_TOML = f"""
[scopes.{STEPPED}]
description = "Read production payment secrets, after a sign-in"
credential = "vault_token"
policies = ["payments-read"]
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER_1}", "{APPROVER_2}"]
step_up = true
"""


@dataclass
class Stage:
    vault: VaultApprovals
    bot: LocalBot
    slack: SlackStandIn
    client: SettlingClient

    @property
    def url(self) -> str:
        return self.bot.url

    def rows(self, sql: str) -> list[Any]:
        assert self.bot.runtime is not None
        with self.bot.runtime.store.engine.connect() as connection:
            return list(connection.execute(text(sql)))

    def ask(self, scope: str, reason: str = "CHG-7 rotate the payment keys") -> str:
        status, body = self.client.slash(REQUESTER, f"{scope} 15m {reason}")
        assert status == 200 and "Request `JIT-" in body["text"], body
        rid = str(body["text"].split("`")[1])
        self.slack.wait_for(lambda: self.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
        return rid

    def click_approve(self, user: str, rid: str) -> str:
        """`user` clicks Approve; the link the bot answers them with, privately."""
        status, _ = self.client.click(user, "approve", rid)
        assert status == 200
        name = self.client.last_response_name
        assert name is not None
        reply = self.slack.wait_for(
            lambda: next((r for r in self.slack.responses_to(name) if "stepup" in str(r.get("text"))), None)
        )
        assert reply.get("response_type") == "ephemeral" and not reply.get("replace_original"), reply
        found = LINK.search(str(reply["text"]))
        assert found, reply
        return found.group(1)

    def audit(self, rid: str | None = None, event: str | None = None) -> list[tuple[str, str, str]]:
        where = [f"request_id = '{rid}'"] if rid else []
        where += [f"event = '{event}'"] if event else []
        sql = (
            "SELECT event, actor, detail FROM audit_events" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq"
        )
        return [(r[0], r[1], str(r[2])) for r in self.rows(sql)]

    def rules(self, rid: str | None = None) -> list[str]:
        return re.findall(r'"rule": ?"([a-z_]+)"', " ".join(d for _, _, d in self.audit(rid, "rejected")))

    def state(self, rid: str) -> str:
        return str(self.rows(f"SELECT state FROM requests WHERE id = '{rid}'")[0][0])

    def wait_state(self, rid: str, state: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.state(rid) != state:
            assert time.monotonic() < deadline, f"{rid} is {self.state(rid)}, not {state}"
            time.sleep(0.05)


class Browserless(StepUpBrowser):
    """The dev kit's browser over plain HTTP (`devkit/stepup.py`, which `jitbot demo` signs approvers in with) on a stage."""

    def __init__(self, stage: Stage, session: requests.Session):
        super().__init__(stage.url, stage.vault, session)
        self.stage = stage


@contextmanager
def stage(kind: str, tmp: Path, extra: str = "", prepare: Callable[[VaultApprovals], None] | None = None) -> Iterator[Stage]:
    """The stage; `extra` scopes join the catalog, and `prepare` sets up what they need in Vault before the sync."""
    with OpenBaoDevServer() as server, fresh_database(kind, tmp) as db_url:
        world = start(server)
        if prepare is not None:
            prepare(world)
        for person in (APPROVER_1, APPROVER_2, REQUESTER):
            world.link(person)
        catalog = tmp / "policies" / "catalog.toml"  # written by catalog_dir below, once the bot's port is known
        with local_bot(tmp, server.addr, world.bot_token(), db_url=db_url, catalog=catalog, start=False) as built:
            policies = catalog_dir(tmp, web_url=built.bot.url, extra=STEPPED_TOML + extra)
            # One requester asks more often in a module's tests than the budget of a person's 10 minutes allows.
            text = catalog.read_text().replace("[settings]\n", "[settings]\nrequest_budget = 1000\n", 1)
            catalog.write_text(text)
            world.identity_provider(f"{built.bot.url}/stepup/callback")
            world.sync(policies)  # the bot's policy too: written before the bot starts
            with built.bot:
                yield Stage(world, built.bot, built.slack, built.client)
