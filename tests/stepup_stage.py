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
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import text

from devkit.harness import LocalBot
from devkit.openbao import OpenBaoDevServer
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn
from devkit.standin import message_text as shown
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, USERS
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
LINK = re.compile(r"<(http://[^|>]+/stepup/start\?t=[^|>]+)\|")


@dataclass
class Stage:
    vault: VaultApprovals
    bot: LocalBot
    slack: SlackStandIn
    client: SignedSlackClient

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


@dataclass
class Browserless:
    """What a browser does on the page, over plain HTTP with a cookie jar; the IdP's login is its API (+ TOTP)."""

    stage: Stage
    session: requests.Session

    def open(self, link: str) -> requests.Response:
        return self.session.get(link, timeout=10)

    def submit(self, page: requests.Response, **headers: str) -> requests.Response:
        fields = dict(re.findall(r'name="(t|csrf)" value="([^"]+)"', page.text))
        return self.session.post(
            f"{self.stage.url}/stepup/start",
            data=fields,
            headers={"Origin": self.stage.url, **headers},
            allow_redirects=False,
            timeout=10,
        )

    def sign_in(self, link: str, who: str) -> requests.Response:
        """Open the link, press the button, sign in at the IdP as `who` (password + TOTP), come back."""
        started = self.submit(self.open(link))
        assert started.status_code == 303, started.text
        return self.come_back(started.headers["Location"], who)

    def come_back(self, idp_url: str, who: str) -> requests.Response:
        code = self.stage.vault.authorize_at_idp(idp_url, self.stage.vault.idp_login(who))
        state = parse_qs(urlsplit(idp_url).query)["state"][0]
        return self.session.get(f"{self.stage.url}/stepup/callback", params={"state": state, "code": code}, timeout=10)


@contextmanager
def stage(kind: str, tmp: Path, extra: str = "", prepare: Callable[[VaultApprovals], None] | None = None) -> Iterator[Stage]:
    """The stage; `extra` scopes join the catalog, and `prepare` sets up what they need in Vault before the sync."""
    with OpenBaoDevServer() as server, fresh_database(kind, tmp) as db_url:
        world = start(server)
        if prepare is not None:
            prepare(world)
        for person in (APPROVER_1, APPROVER_2, REQUESTER):
            world.link(person)
        with SlackStandIn(BOT_TOKEN, users=USERS) as slack:
            bot = LocalBot(
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.url,
                vault_addr=server.addr,
                vault_token=world.bot_token(),  # its policy is written by the sync below, before the bot starts
                database_url=db_url,
                jitbot_catalog=tmp / "policies" / "catalog.toml",
            )
            policies = catalog_dir(tmp, web_url=bot.url, extra=STEPPED_TOML + extra)  # the port is the bot's, picked already
            world.identity_provider(f"{bot.url}/stepup/callback")
            world.sync(policies)
            with bot:
                yield Stage(world, bot, slack, SignedSlackClient(bot.url, SIGNING_SECRET, standin=slack))
