"""Approve click to credential DM posted at the Slack stand-in, against the raw Vault call it needs (role token + wrap)."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from bench.core import APPROVER, BOT_TOKEN, SCOPE, Figure, Lab, p50, say
from bench.slack_bodies import BodyRecorder
from bench.slack_proc import SlackProc
from bot import blocks
from grants.adapters.kinds.vault_token import token_role

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


def run(lab: Lab) -> list[Figure]:
    rounds = lab.size(30, 5)
    vault = lab.bot_vault()
    lifetime, wrap = f"{30 * 60}s", f"{5 * 60}s"
    subject: list[float] = []
    baseline: list[float] = []
    with SlackProc(BOT_TOKEN) as slack, lab.database(NAME) as database_url:
        lab.adopt(slack)
        recorder = BodyRecorder(slack.url.removesuffix("/api/"))
        with lab.bot(database_url, slack.url) as bot:
            assert bot.runtime is not None
            runtime = bot.runtime
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
                # Subject: a pending request with its approval message posted; an approver clicks Approve.
                request = runtime.service.request(f"U0A{i:05d}", SCOPE, "30m", f"INC-{i} bench approve")
                runtime.notifier.drain()
                channel, ts, _ = runtime.store.message_refs(request.id)[0]
                text, body_blocks = blocks.approval_message(request, runtime.catalog)
                body = recorder.click_body(APPROVER, "approve", request.id, channel, ts, {"text": text, "blocks": body_blocks})
                headers = recorder.signed(body)
                started = time.monotonic()
                status = _post(bot.url + "/slack/events", body, headers)
                if status != 200:
                    raise RuntimeError(f"the Approve click answered HTTP {status}")
                delivered = slack.credential_at(request.id, timeout=15) - started
                runtime.notifier.drain()  # the rest of this approval's messages, before the next round
                if i >= WARM:
                    subject.append(delivered * 1000)
                    baseline.append(raw * 1000)
    say(f"{rounds} approvals: click→DM median {p50(subject):.1f} ms; raw Vault create+wrap median {p50(baseline):.1f} ms")
    return [
        Figure(
            NAME,
            "Approve click → credential DM posted (median)",
            "ms",
            p50(subject),
            p50(baseline),
            "hvac token create via role + wrap (median)",
            max_ratio=1.5,
            note=f"n={rounds}, min {min(subject):.1f} / max {max(subject):.1f} ms",
        )
    ]
