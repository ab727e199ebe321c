"""The demo's scenario, step by step: request, refused self-approval, approval and use, revoke, expiry, a two-step
approval, break-glass and its review, auto-approval and a self-service extension, audit; then the other credential
kinds (a database login, an SSH certificate, a raised Vault identity); then approvals bound to more than a click (a
scope Vault enforces, approved after a TOTP sign-in, and a grant that ends when its Jira ticket closes)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.settings import Settings
from bot.wiring import open_audit
from devkit.demo.context import play_context
from devkit.demo.kinds import play_kinds
from devkit.demo.tools import Bao, DemoError, Narrator
from devkit.harness import LocalBot
from devkit.jira import JiraStandIn
from devkit.slack_client import SignedSlackClient
from devkit.standin import SlackStandIn, dm_channel_id, message_text
from devkit.stepup import OpenBaoIdP
from grants.audit import AuditQuery
from grants.usecases.auditing import verify_trail

DANA, ARI, BEN, AUDREY = "U0DEV0001", "U0APPR001", "U0APPR002", "U0AUDIT01"
CLEO, DMITRI, SAM, SASHA = "U0APPR003", "U0APPR004", "U0SEC0001", "U0SEC0002"  # payments leads; security
CSV_HEADER = "seq,at,event,request_id,scope,actor,subject,detail,prev_hash,hash"
CUT = 140
_UNWRAP = re.compile(r"unwrap ([A-Za-z0-9._-]{20,})")
T = TypeVar("T")


@dataclass
class Stage:
    """Everything the scenario drives: the narrator, the `bao` CLI, the Slack stand-in, the signed client, the bot."""

    narrator: Narrator
    bao: Bao
    standin: SlackStandIn
    client: SignedSlackClient
    bot: LocalBot
    settings: Settings
    _audit_seen: int = field(default=0)
    operator_token: str = field(default="", repr=False)  # the OpenBao root token, for the operator's one-time setups
    work: Path = field(default=Path("."))  # this run's throwaway folder
    jira: JiraStandIn | None = None  # the Jira stand-in the demo's ticket-bound scope asks (None: the playground's stage)
    idp: OpenBaoIdP | None = None  # the approvers' IdP for the demo's vault-enforced scope (None: the playground's stage)

    def wait(self, what: str, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        try:
            return self.standin.wait_for(predicate, timeout=timeout)  # type: ignore[no-any-return]
        except AssertionError:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}") from None

    def dm_about(self, user: str, request_id: str, words: str, timeout: float = 10.0, nth: int = 1) -> dict[str, Any]:
        """The `nth` DM to `user` about `request_id` that says `words`."""

        def found() -> dict[str, Any] | None:
            shown = [m for m in self.standin.dm_messages(user) if request_id in message_text(m) and words in message_text(m)]
            return shown[nth - 1] if len(shown) >= nth else None

        which = "" if nth == 1 else f"a {_ordinal(nth)} "
        return self.wait(f"{which}DM to {self.narrator.name(user)} saying “{words}” about {request_id}", found, timeout)

    def approvers_message(
        self, request_id: str, words: str, timeout: float = 10.0, *, channel: str | None = None
    ) -> dict[str, Any]:
        """The latest approval message (not a thread reply) about `request_id`, once it shows `words`."""

        def about(m: dict[str, Any]) -> bool:
            where = m["channel"] == channel if channel else m["channel"][0] in "GC"
            return where and not m.get("thread_ts") and request_id in message_text(m)

        def found() -> dict[str, Any] | None:
            latest = self.standin.find_message(about)
            return latest if latest is not None and words in message_text(latest) else None

        where = f" in the group DM of {self._members(channel)}" if channel else ""
        return self.wait(f"the approvers' message about {request_id}{where} to show “{words}”", found, timeout)

    def _members(self, channel: str) -> str:
        for users in ((CLEO, DMITRI), (SAM, SASHA), (ARI, CLEO)):
            if dm_channel_id(users) == channel:
                return " and ".join(self.narrator.name(u) for u in users)
        return channel

    def settle(self) -> None:
        """Let the bot finish telling Slack about what just happened, then show it and the new audit events."""
        assert self.bot.runtime is not None
        self.bot.runtime.drain()
        self.narrator.slack()
        events = [e for e in self.bot.runtime.store.events(AuditQuery()) if (e.seq or 0) > self._audit_seen]
        for event in events:
            why = _why(event.detail)
            self.narrator.say(f"audit #{event.seq}: {event.event}{why}, actor {self.narrator.name(event.actor)}", 2)
            self._audit_seen = event.seq or self._audit_seen

    def slash(self, user: str, text: str) -> Any:
        self.narrator.act(user, f"types   /elevate {text}")
        status, body = self.client.slash(user, text)
        if status != 200:
            raise DemoError(f"/elevate {text}: the bot answered HTTP {status}: {body}")
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            self.narrator.ephemeral(user, message_text(body))  # with its buttons, if any
        return body

    def click(self, user: str, label: str, request_id: str, *, action: str | None = None, channel: str | None = None) -> str:
        """`user` presses [label] on the latest message (in `channel`, if given) that shows it for `request_id`."""
        self.narrator.act(user, f"clicks  [{label}] on {request_id}")
        status, body = self.client.click(user, action or label.lower(), request_id, message_channel=channel)
        if status != 200:
            raise DemoError(f"{label} on {request_id}: the bot answered HTTP {status}: {body}")
        assert self.client.last_response_name is not None
        return self.client.last_response_name

    def reply(self, response_name: str, words: str) -> str:
        found = self.wait(f"a reply containing “{words}”", lambda: self.standin.responses_to(response_name))
        text = str(found[0].get("text") or "")
        if words not in text:
            raise DemoError(f"expected a reply containing “{words}”, got: {text}")
        return text

    def ephemeral_text(self, body: Any, words: str) -> str:
        """The slash command's immediate answer, which must contain `words`."""
        text = message_text(body) if isinstance(body, dict) else str(body)
        if words not in text:
            raise DemoError(f"expected the answer to contain “{words}”, got: {text or body!r}")
        return text


def play(stage: Stage) -> None:
    request_id = ask_for_payments(stage)
    approve_own_request(stage, request_id)
    token = approve_and_use(stage, request_id)
    revoke_early(stage, request_id, token)
    expire_on_time(stage)
    two_step_approval(stage)
    break_glass_and_review(stage)
    extend_a_grant(stage)
    export_audit(stage)
    verify_audit(stage)
    play_kinds(stage)
    play_context(stage)


def ask_for_payments(stage: Stage) -> str:
    stage.narrator.step("Dana asks for payments-read, for 20 minutes")
    request_id = _request_id(stage.slash(DANA, "payments-read 20m INC-4411 replay stuck refunds"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()
    return request_id


def approve_own_request(stage: Stage, request_id: str) -> None:
    stage.narrator.step("Dana tries to approve her own request, as if she could see the approvers' message")
    stage.narrator.note(
        "she is not in the approvers' group DM; with an approval_channel she reads she could click it: "
        "the stand-in lets her click it here, and the bot decides by who clicked, never by where"
    )
    stage.reply(stage.click(DANA, "Approve", request_id), "cannot approve or deny your own request")
    stage.settle()
    stage.narrator.note("refused: the bot re-checks who clicked, and sign-off must come from someone other than the requester")


def approve_and_use(stage: Stage, request_id: str) -> str:
    n, bao = stage.narrator, stage.bao
    n.step("Ari approves; Dana unwraps her credential and uses it")
    stage.click(ARI, "Approve", request_id)
    delivered = stage.dm_about(DANA, request_id, "unwrap")
    stage.approvers_message(request_id, "Active")
    stage.settle()
    wrapping = _wrapping_token(message_text(delivered))
    token = unwrap(stage, wrapping)
    secret = bao.must("kv get", "secret/payments/stripe", token=token)["data"]["data"]
    n.shell(
        "Dana", "bao kv get secret/payments/stripe", [f"{k} = {v}" for k, v in secret.items()], "VAULT_TOKEN=the unwrapped token"
    )
    n.note("the unwrapped credential read the secret")
    info = bao.must("token lookup", token=token)["data"]
    n.shell("Dana", "bao token lookup", _token_facts(info), "same token")
    if (
        sorted(info["policies"]) != ["default", "payments-read"]
        or info["explicit_max_ttl"] != 1200
        or not 0 < info["ttl"] <= 1200
    ):
        raise DemoError(f"the credential is not scoped as approved: {_token_facts(info)}")
    denied = bao.run("kv get", "secret/k8s/prod", token=token)
    n.shell("Dana", "bao kv get secret/k8s/prod", [denied.error or "(it worked: that is a bug)"], "same token")
    if denied.ok:
        raise DemoError("the payments-read credential could read secret/k8s/prod")
    n.note("outside the approved scope: denied")
    return token


def revoke_early(stage: Stage, request_id: str, token: str) -> None:
    stage.narrator.step("Dana is done early and revokes her grant")
    stage.slash(DANA, f"revoke {request_id}")
    stage.reply(stage.client.last_response_name or "", "Revoked")
    stage.dm_about(DANA, request_id, "was revoked by you")
    stage.approvers_message(request_id, "Revoked")
    stage.settle()
    _show_dead(stage, token, "bao kv get secret/payments/stripe", "kv get", "secret/payments/stripe")
    stage.narrator.note("the token no longer works")


def expire_on_time(stage: Stage) -> None:
    n = stage.narrator
    n.step("Dana asks for db-admin-staging for 10 seconds; Ben approves; time runs out")
    request_id = _request_id(stage.slash(DANA, "db-admin-staging 10s staging schema migration"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()
    stage.click(BEN, "Approve", request_id)
    delivered = stage.dm_about(DANA, request_id, "unwrap")
    stage.settle()
    token = unwrap(stage, _wrapping_token(message_text(delivered)))
    n.shell("Dana", "bao token lookup", _token_facts(stage.bao.must("token lookup", token=token)["data"]), "VAULT_TOKEN=it")
    n.note("nobody does anything now: the bot's timer ends the grant when its 10 seconds are up…")
    stage.dm_about(DANA, request_id, "ended at", timeout=25)
    stage.approvers_message(request_id, "Expired")
    stage.settle()
    _show_dead(stage, token, "bao token lookup", "token lookup")
    n.note("the grant expired on time and the token is dead")


def two_step_approval(stage: Stage) -> None:
    n = stage.narrator
    n.step("Ari asks for payments-write: first a payments lead approves, then security")
    request_id = _request_id(stage.slash(ARI, "payments-write 10m CHG-2291 rotate webhook keys"))
    leads, security = dm_channel_id([CLEO, DMITRI]), dm_channel_id([SAM, SASHA])
    stage.approvers_message(request_id, "now waiting for *payments lead*", channel=leads)
    stage.settle()
    n.note("only the waiting step's approvers, the payments leads, are asked; security is not bothered yet")
    n.note("say Sam (security) gets at that [Approve] button before his turn (he is not in this DM; in a shared")
    n.say("approval channel he would be): a button carries only the request ID, and the bot re-checks whoever", 4)
    n.say("presses it against the step that waits", 4)
    stage.reply(stage.click(SAM, "Approve", request_id), "waits for step `payments lead`")
    stage.settle()
    n.note("refused (not_this_step): steps go in order")
    stage.click(CLEO, "Approve", request_id, channel=leads)
    stage.approvers_message(request_id, "now waiting for *security*", channel=leads)
    stage.approvers_message(request_id, "[Approve] [Deny]", channel=security)
    stage.settle()
    n.note("step 1 is done; the request now goes to security")
    stage.reply(stage.click(CLEO, "Approve", request_id, channel=leads), "one person approves at most one step")
    stage.settle()
    n.note("refused (one_step_per_person): the second approval must come from someone else")
    stage.click(SAM, "Approve", request_id, channel=security)
    delivered = stage.dm_about(ARI, request_id, "unwrap")
    stage.approvers_message(request_id, "Active", channel=security)
    stage.approvers_message(request_id, "Active", channel=leads)
    stage.settle()
    token = unwrap(stage, _wrapping_token(message_text(delivered), ARI), ARI, again=False)
    info = stage.bao.must("token lookup", token=token)["data"]
    n.shell("Ari", "bao token lookup", _token_facts(info)[:3], "VAULT_TOKEN=it")
    if sorted(info["policies"]) != ["default", "payments-read", "payments-write"] or info["explicit_max_ttl"] != 600:
        raise DemoError(f"the payments-write credential is not scoped as approved: {_token_facts(info)}")
    n.note("two people from two steps signed: a 10-minute token with exactly payments-write's policies")


def break_glass_and_review(stage: Stage) -> None:
    n = stage.narrator
    n.step("Ben, on call, breaks the glass on payments-read; Ari reviews it afterwards")
    granted = stage.slash(BEN, "break-glass payments-read 10m INC-5000 payments API down")
    request_id = _break_glass_id(granted)
    stage.dm_about(BEN, request_id, "unwrap")
    stage.approvers_message(request_id, "[Acknowledge] [Flag]")
    stage.settle()
    if not any(request_id in line for line in n.logged()):
        raise DemoError(f"the bot logged no break-glass alert for {request_id}")
    n.note("issued at once, no approval; the approvers got a loud notice, and a review is open")
    n.note("the shipped catalog sets no alert_channel, so the alert reached the bot's log only (above)")
    stage.ephemeral_text(stage.slash(AUDREY, "reviews"), request_id)
    stage.click(ARI, "Acknowledge", request_id, action="review_acknowledged")
    stage.dm_about(BEN, request_id, "acknowledged")
    stage.approvers_message(request_id, "review: acknowledged")
    stage.settle()
    stage.ephemeral_text(stage.slash(AUDREY, "reviews"), "No break-glass review is open")
    n.note("the review is closed, by an approver other than Ben, and the outcome is in the audit trail")


def extend_a_grant(stage: Stage) -> None:
    n, bao = stage.narrator, stage.bao
    n.step("Dana takes staging-read, approved automatically, then extends it herself")
    request_id = _request_id(stage.slash(DANA, "staging-read 30m"))
    stage.dm_about(DANA, request_id, "developers on staging")
    delivered = stage.dm_about(DANA, request_id, "unwrap")
    stage.settle()
    n.note("no person was asked: the catalog rule “developers on staging” approved it, recorded as by `system`")
    old = unwrap(stage, _wrapping_token(message_text(delivered), DANA), DANA, again=False)
    stage.slash(DANA, "staging-read 30m")
    stage.reply(stage.client.last_response_name or "", "already hold")  # the store is asked after the ack
    n.note("asking again for a scope she already holds offers an extension instead of a second grant")
    stage.slash(DANA, f"extend {request_id} 15m")
    stage.reply(stage.client.last_response_name or "", "extended until")
    fresh = stage.dm_about(DANA, request_id, "unwrap", nth=2)
    stage.settle()
    n.note("staging-read allows 3 extensions without approval; Vault cannot stretch a token, so a new one comes")
    new = unwrap(stage, _wrapping_token(message_text(fresh), DANA), DANA, again=False)
    info = bao.must("token lookup", token=new)["data"]
    n.shell("Dana", "bao token lookup", _token_facts(info)[:3], "VAULT_TOKEN=the new token")
    if not 2600 < info["ttl"] <= 2700 or not 2600 < info["explicit_max_ttl"] <= 2700:
        raise DemoError(f"the extended credential should live about 45m from when it was first issued: {_token_facts(info)}")
    n.note("the new token lives until the extended end: 30m + 15m from the first issue, less the time gone by")
    _show_dead(stage, old, "bao token lookup", "token lookup", who=DANA)
    n.note("the old token was revoked when the new one was issued")


def export_audit(stage: Stage) -> None:
    n = stage.narrator
    n.step("Audrey, the auditor, exports the audit trail")
    stage.slash(AUDREY, "audit --format csv")
    upload = stage.wait(
        "the CSV export in Audrey's DM",
        lambda: next((f for f in stage.standin.files.values() if f.get("channel") and f.get("content")), None),
    )
    stage.reply(stage.client.last_response_name or "", "Uploaded")
    stage.settle()
    lines = upload["content"].decode("utf-8").splitlines()
    if not lines or lines[0] != CSV_HEADER:
        raise DemoError(f"the export does not start with the CSV header: {lines[:1]}")
    n.say(f"{upload['name']} ({len(lines) - 1} events; first lines, each cut at {CUT} characters):", 2)
    for line in lines[:12]:
        n.say(line if len(line) <= CUT else line[: CUT - 1] + "…", 4)
    kinds = Counter(row["event"] for row in csv.DictReader(lines))
    n.say(f"all {sum(kinds.values())} events by kind: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items()), 2)


def verify_audit(stage: Stage) -> None:
    n = stage.narrator
    n.step("The hash chain is checked, as `jitbot audit verify` does")
    store, _clock = open_audit(stage.settings)
    verdict = verify_trail(store)  # the same use case as `jitbot audit verify`
    if not verdict.intact:
        raise DemoError(f"audit trail BROKEN at event seq {verdict.broken_seq}: {verdict.why}")
    n.say(f"audit trail intact: {verdict.count} events verified", 2)


def unwrap(stage: Stage, wrapping: str, who: str = DANA, again: bool = True) -> str:
    """`who` runs the command from their DM; the credential they get is never printed."""
    n, name = stage.narrator, stage.narrator.name(who)
    n.hide(wrapping, keep=6)
    unwrapped = stage.bao.run("unwrap", wrapping)
    if not unwrapped.ok:
        raise DemoError(f"`bao unwrap` failed: {unwrapped.error}")
    # A token the bot wrapped comes back as `auth`; one a control group released, as the wrapped response's `data`.
    auth = unwrapped.data.get("auth") or {}
    token = str(auth.get("client_token") or (unwrapped.data.get("data") or {}).get("token") or "")
    if not token:
        raise DemoError(f"`bao unwrap` returned no token (fields: {sorted(unwrapped.data)})")
    n.hide(token)
    n.shell(
        name, f"bao unwrap {wrapping}", [f"a token for {name} alone (not shown); the wrapping token is now used up"], "no token"
    )
    if not again:
        return token
    second = stage.bao.run("unwrap", wrapping)
    n.shell(name, f"bao unwrap {wrapping}", [f"{second.error or 'worked again: that is a bug'}  (single use)"], "again")
    if second.ok:
        raise DemoError("the wrapping token could be unwrapped twice")
    return token


def _show_dead(stage: Stage, token: str, shown: str, words: str, *args: str, who: str = DANA) -> None:
    result = stage.bao.run(words, *args, token=token)
    name = stage.narrator.name(who)
    stage.narrator.shell(name, shown, [result.error or "(it worked: that is a bug)"], "VAULT_TOKEN=the old token")
    if result.ok:
        raise DemoError(f"`{shown}` still worked with a token that should be dead")


def _request_id(ack: Any) -> str:
    text = str(ack.get("text") or "") if isinstance(ack, dict) else str(ack)
    match = re.search(r"Request `([A-Za-z0-9_-]{1,16})`", text)
    if match is None:
        raise DemoError(f"expected the request to be acknowledged with its ID, got: {text or ack!r}")
    return match.group(1)


def _break_glass_id(ack: Any) -> str:
    text = str(ack.get("text") or "") if isinstance(ack, dict) else str(ack)
    match = re.search(r"Break-glass ([A-Za-z0-9_-]{1,16}):", text)
    if match is None or "yours until" not in text:
        raise DemoError(f"expected break-glass to be granted at once, with its request ID, got: {text or ack!r}")
    return match.group(1)


def _wrapping_token(text: str, who: str = DANA) -> str:
    match = _UNWRAP.search(text)
    if match is None:
        raise DemoError(f"the credential DM to {who} holds no `bao unwrap <token>` command")
    return match.group(1)


def _why(detail: dict[str, Any]) -> str:
    """The audit detail worth a glance: the rule that refused, break-glass, the rule that approved, an extension."""
    shown = [str(detail["rule"])] if detail.get("rule") else []
    if detail.get("break_glass"):
        shown.append("break-glass")
    if detail.get("auto_approve"):
        shown.append(f"catalog rule “{detail['auto_approve']}”")
    if detail.get("cause"):
        shown.append(str(detail["cause"]))
    if detail.get("sign_in"):
        shown.append("signed in with " + str(detail["sign_in"].get("mfa", "?")))
    if detail.get("old_accessor"):
        shown.append(f"+{detail.get('added')}; old and new accessor recorded")
    return f" ({', '.join(shown)})" if shown else ""


def _ordinal(n: int) -> str:
    return {2: "second", 3: "third"}.get(n, f"{n}th")


def _token_facts(info: dict[str, Any]) -> list[str]:
    return [
        f"policies          {info.get('policies')}",
        f"ttl               {info.get('ttl')}s",
        f"explicit_max_ttl  {info.get('explicit_max_ttl')}s",
        f"renewable         {str(info.get('renewable')).lower()}",
        f"meta              {info.get('meta')}",
    ]
