"""The demo's scenario, step by step: request, refused self-approval, approval and use, revoke, expiry, audit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.demo_tools import Bao, DemoError, Narrator
from bot.devkit.harness import LocalBot
from bot.devkit.slack_client import SignedSlackClient
from bot.devkit.slack_standin import SlackStandIn, message_text
from bot.settings import Settings
from bot.wiring import open_audit
from grants.audit import AuditQuery, verify

DANA, ARI, BEN, AUDREY = "U0DEV0001", "U0APPR001", "U0APPR002", "U0AUDIT01"
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

    def wait(self, what: str, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        try:
            return self.standin.wait_for(predicate, timeout=timeout)  # type: ignore[no-any-return]
        except AssertionError:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}") from None

    def dm_about(self, user: str, request_id: str, words: str, timeout: float = 10.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            shown = (m for m in self.standin.dm_messages(user) if request_id in message_text(m))
            return next((m for m in shown if words in message_text(m)), None)

        return self.wait(f"{self.narrator.name(user)}'s DM saying “{words}” about {request_id}", found, timeout)

    def approvers_message(self, request_id: str, words: str, timeout: float = 10.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            latest = self.standin.find_message(lambda m: m["channel"][0] in "GC" and request_id in message_text(m))
            return latest if latest is not None and words in message_text(latest) else None

        return self.wait(f"the approvers' message about {request_id} to show “{words}”", found, timeout)

    def settle(self) -> None:
        """Let the bot finish telling Slack about what just happened, then show it and the new audit events."""
        assert self.bot.runtime is not None
        self.bot.runtime.notifier.drain()
        self.narrator.slack()
        events = [e for e in self.bot.runtime.store.events(AuditQuery()) if (e.seq or 0) > self._audit_seen]
        for event in events:
            rule = event.detail.get("rule")
            why = f" ({rule})" if rule else ""
            self.narrator.say(f"audit #{event.seq}: {event.event}{why}, actor {self.narrator.name(event.actor)}", 2)
            self._audit_seen = event.seq or self._audit_seen

    def slash(self, user: str, text: str) -> Any:
        self.narrator.act(user, f"types   /elevate {text}")
        status, body = self.client.slash(user, text)
        if status != 200:
            raise DemoError(f"/elevate {text}: the bot answered HTTP {status}: {body}")
        if isinstance(body, dict) and body.get("text"):
            self.narrator.ephemeral(user, body["text"])
        return body

    def click(self, user: str, label: str, request_id: str) -> str:
        self.narrator.act(user, f"clicks  [{label}] on {request_id}")
        status, body = self.client.click(user, label.lower(), request_id)
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


def play(stage: Stage) -> None:
    request_id = ask_for_payments(stage)
    approve_own_request(stage, request_id)
    token = approve_and_use(stage, request_id)
    revoke_early(stage, request_id, token)
    expire_on_time(stage)
    export_audit(stage)
    verify_audit(stage)


def ask_for_payments(stage: Stage) -> str:
    stage.narrator.step("Dana asks for payments-read, for 20 minutes")
    request_id = _request_id(stage.slash(DANA, "payments-read 20m INC-4411 replay stuck refunds"))
    stage.approvers_message(request_id, "[Approve] [Deny]")
    stage.settle()
    return request_id


def approve_own_request(stage: Stage, request_id: str) -> None:
    stage.narrator.step("Dana tries to approve her own request")
    stage.reply(stage.click(DANA, "Approve", request_id), "cannot approve or deny your own request")
    stage.settle()
    stage.narrator.note("refused: sign-off must come from someone other than the requester (audited as `rejected`)")


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


def verify_audit(stage: Stage) -> None:
    n = stage.narrator
    n.step("The hash chain is checked, as `jitbot audit verify` does")
    store, _clock = open_audit(stage.settings)
    verdict = verify(store.events(AuditQuery()))
    if not verdict.intact:
        raise DemoError(f"audit trail BROKEN at event seq {verdict.broken_seq}: {verdict.why}")
    n.say(f"audit trail intact: {verdict.count} events verified", 2)


def unwrap(stage: Stage, wrapping: str) -> str:
    """Dana runs the command from her DM; the credential she gets is never printed."""
    n = stage.narrator
    n.hide(wrapping, keep=6)
    unwrapped = stage.bao.run("unwrap", wrapping)
    if not unwrapped.ok:
        raise DemoError(f"`bao unwrap` failed: {unwrapped.error}")
    token = str(unwrapped.data["auth"]["client_token"])
    n.hide(token)
    n.shell(
        "Dana", f"bao unwrap {wrapping}", ["a token for her alone (not shown); the wrapping token is now used up"], "no token"
    )
    again = stage.bao.run("unwrap", wrapping)
    n.shell("Dana", f"bao unwrap {wrapping}", [f"{again.error or 'worked again: that is a bug'}  (single use)"], "again")
    if again.ok:
        raise DemoError("the wrapping token could be unwrapped twice")
    return token


def _show_dead(stage: Stage, token: str, shown: str, words: str, *args: str) -> None:
    result = stage.bao.run(words, *args, token=token)
    stage.narrator.shell("Dana", shown, [result.error or "(it worked: that is a bug)"], "VAULT_TOKEN=the old token")
    if result.ok:
        raise DemoError(f"`{shown}` still worked with a token that should be dead")


def _request_id(ack: Any) -> str:
    text = str(ack.get("text") or "") if isinstance(ack, dict) else str(ack)
    match = re.search(r"Request `([A-Za-z0-9_-]{1,16})`", text)
    if match is None:
        raise DemoError(f"expected the request to be acknowledged with its ID, got: {text or ack!r}")
    return match.group(1)


def _wrapping_token(text: str) -> str:
    match = _UNWRAP.search(text)
    if match is None:
        raise DemoError("Dana's credential DM holds no `bao unwrap <token>` command")
    return match.group(1)


def _token_facts(info: dict[str, Any]) -> list[str]:
    return [
        f"policies          {info.get('policies')}",
        f"ttl               {info.get('ttl')}s",
        f"explicit_max_ttl  {info.get('explicit_max_ttl')}s",
        f"renewable         {str(info.get('renewable')).lower()}",
        f"meta              {info.get('meta')}",
    ]
