"""One run of the playground's story: the demo's stage, and what only the Slack client would know (answers, closed modals, credentials)."""

from __future__ import annotations

import itertools
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.wiring import open_anchor
from devkit.demo.steps import Stage
from grants.audit import AuditQuery
from grants.credentials import CredentialError
from grants.usecases.auditing import verify_trail

APPROVALS, GENERAL = "C0APPROVALS", "C0GENERAL"
CHANNELS = {APPROVALS: "approvals", GENERAL: "general"}
# What a credential can be tried on: every secret the operator wrote (the demo's two and the playground's own).
PLAYGROUND_SECRETS = {"secret/staging/app": ["db_url=postgres://staging.example/app", "feature_flags=demo"]}
_UNWRAP = re.compile(r"unwrap ([A-Za-z0-9._-]{20,})")


def playground_catalog(shipped: Path, folder: Path) -> Path:
    """The shipped catalog and its policies, copied, with approval requests posted to #approvals: every person of the
    page (the requester too, as in a shared approval channel) sees them, so a refused self-approval can be tried."""
    folder.mkdir(parents=True, exist_ok=True)
    for policy in shipped.parent.glob("*.hcl"):
        shutil.copy(policy, folder / policy.name)
    text = shipped.read_text(encoding="utf-8")
    changed = re.sub(r'(?m)^approval_channel = ""', f'approval_channel = "{APPROVALS}"', text, count=1)
    if changed == text:
        raise RuntimeError(f"the shipped catalog {shipped} sets no empty approval_channel for the playground to fill in")
    target = folder / "catalog.toml"
    target.write_text(changed, encoding="utf-8")
    return target


@dataclass
class Credential:
    """A credential a person unwrapped from the page; the token stays on the server, never in /api/state."""

    id: str
    user: str
    request_id: str
    token: str = field(repr=False)
    accessor: str = ""
    policies: list[str] = field(default_factory=list)
    ttl: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "accessor": self.accessor[:8] + "…",
            "policies": self.policies,
            "ttl": self.ttl,
            "log": self.log,
            "tries": ["token lookup", *(f"kv get {path}" for path in self.paths())],
        }

    @staticmethod
    def paths() -> list[str]:
        from devkit.demo import DEMO_SECRETS

        return [*DEMO_SECRETS, *PLAYGROUND_SECRETS]


class Session:
    """The stage of one story and what the page's people did in it that Slack's client, not Slack's API, remembers."""

    def __init__(self, stage: Stage, generation: int, command: str):
        self.stage = stage
        self.command = command  # the catalog's slash command, e.g. /elevate
        self.generation = generation
        self.lock = threading.RLock()
        self.version = 0  # bumped when something only the playground records changes
        self._ids = itertools.count(1)
        self.ephemerals: list[dict[str, Any]] = []  # slash commands' HTTP answers, shown where they were typed
        self.clicked_ephemeral: dict[str, str] = {}  # response_url name → the ephemeral whose button made it
        self.view_answers: dict[str, dict[str, Any]] = {}  # view ID → {"errors": …} or {"view": …} (response_action)
        self.closed: set[str] = set()
        self.credentials: dict[str, Credential] = {}
        self.audit_store: Any = None

    def bump(self) -> None:
        with self.lock:
            self.version += 1

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # ------------------------------------------------------------------ the audit trail

    def audit(self) -> list[dict[str, Any]]:
        runtime = self.stage.bot.runtime
        if runtime is None:
            return []
        names = self.stage.narrator.names
        events = []
        for event in runtime.store.events(AuditQuery()):
            rule = event.detail.get("rule") if isinstance(event.detail, dict) else None
            events.append(
                {
                    "seq": event.seq,
                    "at": event.at.strftime("%H:%M:%S"),
                    "event": event.event,
                    "request_id": event.request_id,
                    "actor": names.get(event.actor or "", event.actor or "—"),
                    "rule": rule,
                    "hash": (event.hash or "")[:12],
                }
            )
        return events

    def verify(self) -> dict[str, Any]:
        """What `jitbot audit verify` says: the chain recomputed, compared with its head and the anchor in OpenBao."""
        from bot.wiring import open_audit

        if self.audit_store is None:
            self.audit_store, _clock = open_audit(self.stage.settings)
        try:
            verdict = verify_trail(self.audit_store, open_anchor(self.stage.settings))
        except CredentialError as error:
            return {"intact": False, "lines": [f"jitbot: {error}; the chain cannot be checked against its anchor"]}
        if not verdict.intact:
            line = (
                f"audit trail BROKEN at event seq {verdict.broken_seq}: {verdict.why} ({verdict.count} events before it verified)"
            )
            return {"intact": False, "lines": [line]}
        lines = [f"audit trail intact: {verdict.count} events verified"]
        if verdict.anchor is not None:
            lines.append(f"anchor: seq {verdict.anchor.seq} in OpenBao matches")
        else:
            lines.append("anchor: none written yet (the bot writes one every second while it runs)")
        return {"intact": True, "lines": lines}

    # ------------------------------------------------------------------ credentials, with the real `bao`

    def unwrap(self, user: str, channel: str, ts: str) -> tuple[Credential, str]:
        """`user` runs the `bao unwrap` command of their DM; (the credential, its token: shown once, never stored in state)."""
        message = next((m for m in self.stage.standin.messages_in(channel) if m["ts"] == ts), None)
        if message is None or channel != self.stage.standin.dm_channel_id(user):
            raise LookupError("that message is not in your DM")
        from devkit.standin import message_text

        text = message_text(message)
        found = _UNWRAP.search(text)
        if found is None:
            raise LookupError("that message holds no `bao unwrap` command")
        result = self.stage.bao.run("unwrap", found.group(1))
        if not result.ok:
            raise PermissionError(result.error)
        auth = result.data.get("auth") or {}
        request = re.search(r"\bJIT-[A-Z0-9]+\b", text)
        credential = Credential(
            id=self.new_id("cred"),
            user=user,
            request_id=request.group(0) if request else "",
            token=str(auth.get("client_token") or ""),
            accessor=str(auth.get("accessor") or ""),
            policies=sorted(auth.get("policies") or []),
            ttl=int(auth.get("lease_duration") or 0),
        )
        with self.lock:
            self.credentials[credential.id] = credential
            credential.log.append({"command": f"bao unwrap {found.group(1)[:6]}…", "ok": True, "out": "a token for you alone"})
        self.bump()
        return credential, credential.token

    def try_credential(self, user: str, credential_id: str, what: str) -> dict[str, Any]:
        credential = self.credentials.get(credential_id)
        if credential is None or credential.user != user:
            raise LookupError("no such credential of yours")
        if what == "token lookup":
            result = self.stage.bao.run("token lookup", token=credential.token)
            out = f"ttl {result.data['data']['ttl']}s, policies {result.data['data']['policies']}" if result.ok else result.error
        elif what.startswith("kv get ") and what[7:] in credential.paths():
            result = self.stage.bao.run("kv get", what[7:], token=credential.token)
            data = (result.data.get("data") or {}).get("data") or {}
            out = ", ".join(f"{k}={v}" for k, v in sorted(data.items())) if result.ok else result.error
        else:
            raise LookupError(f"not something to try: {what}")
        entry = {"command": f"bao {what}", "ok": result.ok, "out": out, "at": time.strftime("%H:%M:%S", time.gmtime())}
        with self.lock:
            credential.log.append(entry)
        self.bump()
        return entry
