"""Approve click to credential DM posted at the Slack stand-in, against the raw Vault call it needs (role token + wrap)."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient

from bench.core import APPROVER, BOT_TOKEN, SCOPE, Figure, Lab, p50, say
from bench.slack_bodies import BodyRecorder
from bench.slack_proc import SlackProc
from bot import blocks
from grants.adapters.kinds.vault_token import token_role
from grants.credentials import CredentialHandle
from grants.domain import Approval, AuditEvent, Grant, Request
from grants.lifecycle import Event

NAME = "approve"
WARM = 3


def _post(url: str, body: str, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=15)
    try:
        connection.request("POST", parts.path, body=body.encode("utf-8"), headers=headers)
        response = connection.getresponse()
        response.read()
        return int(response.status)
    finally:
        connection.close()


def _event(name: Event, request: Request, actor: str, **detail: Any) -> AuditEvent:
    return AuditEvent(
        event=name, at=datetime.now(UTC), actor=actor, request_id=request.id, scope=request.scope,
        subject=request.requester, detail=detail,
    )  # fmt: skip


def _straight_line(runtime: Any, vault: Any, slack: WebClient, request: Request, i: int) -> float:
    """The least an approval must do, in a straight line on the same store, Vault token and Slack stand-in:
    one CAS commit with its audit row, the role token create + wrap, one commit recording the issue, one DM."""
    lifetime, wrap = f"{30 * 60}s", f"{5 * 60}s"
    started = time.monotonic()
    now = datetime.now(UTC)
    approved = request.advance(Event.APPROVED, approval=Approval(decided_by=APPROVER, decided_at=now))
    assert runtime.store.commit(approved, _event(Event.APPROVED, approved, APPROVER), expected_version=request.version)
    response = vault.auth.token.create(
        role_name=token_role(SCOPE), policies=[SCOPE], no_default_policy=False, ttl=lifetime, explicit_max_ttl=lifetime,
        renewable=False, display_name=f"jitbot-{request.id}",
        meta={"request_id": request.id, "requester": request.requester, "scope": SCOPE}, wrap_ttl=wrap,
    )  # fmt: skip
    accessor = response["wrap_info"]["wrapped_accessor"]
    grant = Grant(CredentialHandle("vault_token", accessor), now, now + timedelta(minutes=30))
    active = approved.advance(Event.ISSUED, grant=grant)
    assert runtime.store.commit(
        active, _event(Event.ISSUED, active, "system", accessor=accessor), expected_version=approved.version
    )
    slack.chat_postMessage(channel=request.requester, text=f"bao unwrap {response['wrap_info']['token']}")
    return time.monotonic() - started


def run(lab: Lab) -> list[Figure]:
    rounds = lab.size(30, 5)
    vault = lab.bot_vault()
    lifetime, wrap = f"{30 * 60}s", f"{5 * 60}s"
    subject: list[float] = []
    baseline: list[float] = []
    vault_only: list[float] = []
    with SlackProc(BOT_TOKEN) as slack, lab.database(NAME) as database_url:
        lab.adopt(slack)
        recorder = BodyRecorder(slack.url.removesuffix("/api/"))
        with lab.bot(database_url, slack.url) as bot:
            assert bot.runtime is not None
            runtime = bot.runtime
            web = WebClient(token=BOT_TOKEN, base_url=slack.url)
            for i in range(WARM + rounds):
                # Baseline: the one Vault call an approval needs, with the issuer's own arguments, on the bot's token.
                started = time.monotonic()
                vault.auth.token.create(
                    role_name=token_role(SCOPE),
                    policies=[SCOPE],
                    no_default_policy=False,
                    ttl=lifetime,
                    explicit_max_ttl=lifetime,
                    renewable=False,
                    display_name=f"jitbot-bench-{i}",
                    meta={"request_id": f"BENCH-{i}", "requester": "U0BENCH", "scope": SCOPE},
                    wrap_ttl=wrap,
                )
                raw = time.monotonic() - started
                # Baseline: the straight-line minimum (store commits, Vault, one DM) for a request of its own.
                line_request = runtime.service.request(f"U0L{i:05d}", SCOPE, "30m", f"INC-{i} bench straight line")
                runtime.drain()
                line = _straight_line(runtime, vault, web, runtime.store.get(line_request.id), i)
                # Subject: a pending request with its approval message posted; an approver clicks Approve.
                request = runtime.service.request(f"U0A{i:05d}", SCOPE, "30m", f"INC-{i} bench approve")
                runtime.drain()
                channel, ts, _ = runtime.store.message_refs(request.id)[0]
                text, body_blocks = blocks.approval_message(request, runtime.catalog)
                body = recorder.click_body(APPROVER, "approve", request.id, channel, ts, {"text": text, "blocks": body_blocks})
                headers = recorder.signed(body)
                started = time.monotonic()
                status = _post(bot.url + "/slack/events", body, headers)
                if status != 200:
                    raise RuntimeError(f"the Approve click answered HTTP {status}")
                delivered = slack.credential_at(request.id, timeout=15) - started
                runtime.drain()  # the rest of this approval's messages, before the next round
                if i >= WARM:
                    subject.append(delivered * 1000)
                    baseline.append(line * 1000)
                    vault_only.append(raw * 1000)
    say(
        f"{rounds} approvals: click→DM median {p50(subject):.1f} ms; straight line median {p50(baseline):.1f} ms; "
        f"Vault create+wrap alone {p50(vault_only):.1f} ms"
    )
    return [
        Figure(
            NAME,
            "Approve click → credential DM posted (median)",
            "ms",
            p50(subject),
            p50(baseline),
            "straight line: CAS+audit commit, Vault create+wrap, issue commit, chat.postMessage (median)",
            max_ratio=1.5,
            note=f"n={rounds}, min {min(subject):.1f} / max {max(subject):.1f} ms; Vault call alone {p50(vault_only):.1f} ms",
        )
    ]
