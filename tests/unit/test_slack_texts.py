"""Every text the bot sends is mrkdwn without a raw `<`, and every command hint names the catalog's own command."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot import blocks, messages
from bot.context import BotContext
from bot.listeners import actions, commands, events, views
from grants.adapters.kinds import database_kind, identity_kind, ssh_kind
from grants.adapters.kinds.database_kind import DatabaseKind
from grants.adapters.kinds.identity_kind import VaultIdentityKind
from grants.adapters.kinds.ssh_kind import SshKind
from grants.adapters.kinds.vault_token import VaultTokenKind
from grants.catalog import parse_catalog
from grants.credentials import CredentialError, CredentialHandle, IssueOrder
from grants.domain import Approval, DomainError, Grant, Request, State
from grants.lifecycle import Event
from grants.outbox import Alert, News
from grants.service import ElevationService
from tests.catalogs import APPROVER_1, AUDITOR, OUTSIDER, REQUESTER, catalog_data
from tests.fakes import FakeClock, FakeIssuer, FakeNotifier, FakeStore, FakeTimer, InlineWork, bootstrap
from tests.slack_payloads import raw_angle_brackets
from tests.unit.test_listeners import FakeSlackNotifier, FakeWebClient, Recorder, click_body

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
HOSTILE = "<!channel> & <@U0FAKE> <https://evil.example|your bank> `<key>`"
PEOPLE = ["U0APPR001", "C0APPROVALS", "<!here>"]


def texts_in(node: object, key: str = "text") -> list[str]:
    """Every string Slack would render from an ack/respond/DM payload: `text` fields, nested blocks, form errors."""
    if isinstance(node, str):
        return [node] if key in ("text", "errors") else []
    if isinstance(node, dict):
        return [t for k, value in node.items() for t in texts_in(value, "errors" if key == "errors" else k)]
    if isinstance(node, list | tuple):
        return [t for value in node for t in texts_in(value, key)]
    return []


def assert_clean(texts: list[str]) -> None:
    assert texts
    for text in texts:
        assert not raw_angle_brackets(text), text
        assert "/elevate" not in text, f"the catalog's command is /jit: {text}"


def hostile_request(**fields: Any) -> Request:
    base: dict[str, Any] = dict(
        id="JIT-ABCD1234",
        scope="payments-read",
        requester=REQUESTER,
        duration=timedelta(minutes=30),
        reason=HOSTILE,
        state=State.ACTIVE,
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
        approval=Approval(1, ("U0APPR001",), "U0APPR001", NOW),
        ended_at=NOW,
        grant=Grant(CredentialHandle("vault_token", "acc"), NOW, NOW + timedelta(minutes=30)),
    )
    return Request(**{**base, **fields})


# ---- what the notifier sends: news, alerts, credentials ---------------------------------------------------


@pytest.mark.parametrize("news", [*Event, *News])
def test_every_news_kind_escapes_what_people_and_vault_wrote(news: Event | News):
    context = {"reason": HOSTILE, "note": HOSTILE, "error": HOSTILE, "rule": HOSTILE, "actor": "U0APPR001", "people": PEOPLE}
    text = messages.news_text(hostile_request(), news, context)
    assert_clean([text])
    assert "JIT-ABCD1234" in text, "the request ID is in every DM"


def test_a_grant_jitbot_ended_for_its_closed_ticket_says_so_and_names_no_auto_approval():
    ended = hostile_request(state=State.REVOKED, ticket="jira:PAY-7", approval=Approval(1, ("U0APPR001",), "system", NOW))
    text = messages.news_text(ended, Event.REVOKED, {"actor": "system", "cause": "ticket_closed"})
    assert "was revoked by jitbot at" in text and text.endswith(", because its ticket PAY-7 was closed."), text
    line = blocks.status_line(ended)
    assert line.startswith(":lock: Revoked by jitbot at") and "auto-approval" not in line, line
    by_hand = messages.news_text(ended, Event.REVOKED, {"actor": "U0APPR001"})
    assert "revoked by <@U0APPR001> at" in by_hand and "ticket" not in by_hand


@pytest.mark.parametrize("alert", list(Alert))
def test_every_alert_kind_is_worded_at_the_edge_and_escapes_what_it_quotes(alert: Alert):
    context = {
        "scope": "payments-read",
        "error": HOSTILE,
        "note": HOSTILE,
        "text": HOSTILE,
        "why": HOSTILE,
        "row": HOSTILE,
        "audited": HOSTILE,
        "accessor": HOSTILE,
        "requester": REQUESTER,
        "actor": "U0APPR001",
        "people": PEOPLE,
        "notice": "opened",
        "duration": "30m",
        "review_within": "1h",
        "attempt": 2,
        "retry_in": "10s",
        "nobody": True,
    }
    text = messages.alert_text(alert, "JIT-ABCD1234", context)
    assert_clean([text])
    if alert in (Alert.ANCHOR_REFUSED, Alert.ANCHOR_DOWN):  # about the whole trail, not one request
        assert messages.esc(HOSTILE) in text and "audit verify" in text
    elif alert is Alert.AUDIT_STREAM_BEHIND:  # about a collector, not one request
        words = messages.alert_text(alert, None, {**context, "sink": HOSTILE, "behind": 7, "since": "2026-12-07 21:00:00 UTC"})
        assert_clean([words])
        assert messages.esc(HOSTILE) in words and "7 or more waiting" in words and "since 2026-12-07 21:00:00 UTC" in words
    elif alert in (Alert.INBOX_FORGED, Alert.INBOX_GAVE_UP):  # about an inbox row, not one request
        words = messages.alert_text(alert, None, {**context, "entry": 7, "task": HOSTILE, "attempts": 6})
        assert_clean([words])
        assert "Inbox row 7" in words and messages.esc(HOSTILE) in words
    elif alert is not Alert.PLAIN:
        assert "JIT-ABCD1234" in text and text != messages.esc(HOSTILE), "each kind has its own words"


class RefusingVault(FakeIssuer):
    """Vault that, once `refusing`, answers every call with an error quoting markup (as a proxy's HTML page might)."""

    refusing = False

    def issue(self, order: IssueOrder, scope: Any) -> Any:
        if self.refusing:
            raise CredentialError(HOSTILE)
        return super().issue(order, scope)

    def revoke(self, handle: Any, request_id: str, proven: bool = False) -> None:
        if self.refusing:
            raise CredentialError(HOSTILE)
        super().revoke(handle, request_id, proven)


def test_alerts_from_the_core_carry_ids_not_markup_and_render_clean():
    """Real paths: break-glass, a review flagged with a hostile note, Vault refusing to issue and to revoke."""
    data = catalog_data()
    data["scopes"]["payments-read"]["break_glass"] = {"requesters": [REQUESTER], "max_duration": "30m"}  # type: ignore[index]
    vault = RefusingVault()
    core = bootstrap(parse_catalog(data), issuer=vault)
    glass = core.service.break_glass(REQUESTER, "payments-read", "10m", "INC-1 fire")
    core.service.review(glass.id, APPROVER_1, "flagged", HOSTILE)
    vault.refusing = True
    core.service.revoke(glass.id, REQUESTER)
    failed = core.service.request(REQUESTER, "payments-write", "10m", "INC-2 x")
    core.service.approve(failed.id, APPROVER_1)
    core.service.approve(failed.id, "U0APPR003")
    alerts = [payload for kind, payload in core.notifier.sent if kind == "alert"]
    kinds = {alert for alert, _, _ in alerts}  # type: ignore[misc]
    assert {Alert.BREAK_GLASS, Alert.REVIEW_FLAGGED, Alert.REVOKE_FAILED, Alert.ISSUE_FAILED} <= kinds, kinds
    for alert, request_id, context in alerts:  # type: ignore[misc]
        text = messages.alert_text(alert, request_id, context)
        assert_clean([text])
        if alert is Alert.BREAK_GLASS:
            assert f"<@{REQUESTER}> took `payments-read`" in text, "the edge writes the mention"
        elif alert is Alert.REVIEW_FLAGGED:
            assert f"<@{APPROVER_1}>" in text and "&lt;!channel&gt;" in text
        else:
            assert "&lt;!channel&gt; &amp; &lt;@U0FAKE&gt;" in text, "Vault's error is shown, not parsed"


def kind_catalog() -> Any:
    data = catalog_data()
    scopes: dict[str, Any] = data["scopes"]  # type: ignore[assignment]
    common = {"requesters": ["*"], "approvers": ["group:db-oncall"], "max_duration": "1h"}
    hint = "psql -h <db-host> -d orders && echo ok"
    scopes["orders-db"] = {
        **common,
        "description": "db",
        "credential": "database",
        "database_role": "jit-orders",
        "connect_hint": hint,
    }
    scopes["web-ssh"] = {**common, "description": "ssh", "credential": "ssh", "ssh_role": "jit-web", "principals": ["web-admin"]}
    scopes["payments-identity"] = {**common, "description": "id", "credential": "vault_identity", "policies": ["payments-read"]}
    return parse_catalog(data)


class TokenApi:
    """The two calls VaultTokenKind.issue makes, answered as Vault does."""

    def __init__(self) -> None:
        self.asked = 0

    def create(self, **kwargs: Any) -> dict[str, Any]:
        self.asked = int(kwargs["ttl"].rstrip("s"))
        return {"wrap_info": {"wrapped_accessor": "acc-1", "token": "hvs.wrapping<&>"}}

    def lookup_accessor(self, accessor: str) -> dict[str, Any]:
        return {"data": {"ttl": self.asked}}


def test_every_credential_kinds_dm_is_escaped(monkeypatch):
    catalog = kind_catalog()
    client: Any = SimpleNamespace(auth=SimpleNamespace(token=TokenApi()))
    issued = SimpleNamespace(
        accessor="acc-2", wrapping_token="hvs.db<&>", wrap_ttl=timedelta(minutes=5), wrap_accessor="wacc-2", lease=""
    )
    monkeypatch.setattr(database_kind, "issue_database_credential", lambda *a, **k: issued)
    monkeypatch.setattr(ssh_kind, "parse_public_key", lambda text: SimpleNamespace(openssh=text, fingerprint="SHA256:x"))
    certificate = SimpleNamespace(
        text="ssh-ed25519-cert-v01@openssh.com AAAA <comment>",
        serial=7,
        key_id="jitbot-r-00",
        principals=("web-admin",),
        valid_before=NOW,
    )
    monkeypatch.setattr(ssh_kind, "sign_certificate", lambda *a, **k: certificate)
    monkeypatch.setattr(ssh_kind, "ca_public_key", lambda *a, **k: "ssh-ed25519 AAAA ca")
    monkeypatch.setattr(identity_kind, "requester_entity_id", lambda *a, **k: "entity-1")
    monkeypatch.setattr(identity_kind, "create_grant_group", lambda *a, **k: SimpleNamespace(name="jit-x", group_id="g-1"))
    kinds = {
        "payments-read": VaultTokenKind(client),
        "orders-db": DatabaseKind(client),
        "web-ssh": SshKind(client, SimpleNamespace(signed=lambda *a: None)),  # type: ignore[arg-type]
        "payments-identity": VaultIdentityKind(client),
    }
    texts = {}
    for scope, kind in kinds.items():
        order = IssueOrder(
            "JIT-ABCD1234", scope, REQUESTER, timedelta(minutes=30), NOW + timedelta(minutes=30), None, "ssh-ed25519 AAAA"
        )
        delivery = kind.issue(order, catalog.scopes[scope]).delivery
        texts[scope] = messages.credential_text(hostile_request(scope=scope), delivery)
        assert_clean([texts[scope]])
        if delivery.code:
            assert f"```{messages.esc(delivery.code)}```" in texts[scope]
    assert "`psql -h &lt;db-host&gt; -d orders &amp;&amp; echo ok`" in texts["orders-db"]
    assert "`~/.ssh/id_ed25519-cert.pub`" in texts["web-ssh"] and "&lt;comment&gt;```" in texts["web-ssh"]


# ---- what the listeners answer ------------------------------------------------------------------------------


def jit_context() -> BotContext:
    data = catalog_data()
    data["settings"]["command"] = "/jit"  # type: ignore[index]
    data["scopes"]["web-ssh"] = {  # type: ignore[index]
        "description": "Log in to the web hosts",
        "credential": "ssh",
        "ssh_role": "jit-web",
        "principals": ["web-admin"],
        "requesters": ["*"],
        "approvers": ["group:db-oncall"],
        "max_duration": "1h",
    }
    clock = FakeClock()
    service = ElevationService(parse_catalog(data), FakeStore(), FakeIssuer(), FakeNotifier(), FakeTimer(clock), clock)
    return BotContext(service=service, catalog=service.catalog, notifier=FakeSlackNotifier(), work=InlineWork())  # type: ignore[arg-type]


SLASHES = [
    (REQUESTER, "help"),
    (REQUESTER, "list"),
    (REQUESTER, "reviews"),
    (REQUESTER, "<!channel> now"),
    (REQUESTER, "ssh-key"),
    (REQUESTER, "ssh-key not-a-key <x>"),
    (REQUESTER, "revoke"),
    (REQUESTER, "revoke <JIT-NOPE>"),
    (REQUESTER, "cancel JIT-NOPE"),
    (REQUESTER, "nudge JIT-NOPE"),
    (REQUESTER, "extend a b c"),
    (REQUESTER, "break-glass"),
    (REQUESTER, "break-glass payments-read 10m INC-1 fire"),
    (REQUESTER, "payments-read for"),
    (REQUESTER, "payments-read for svc 10m INC-1"),
    (REQUESTER, "web-ssh 10m INC-1 login"),
    (REQUESTER, "payments-read forever INC-1"),
    (REQUESTER, "payments-write 10m <no ticket>"),
    (REQUESTER, "payments-read 10m INC-1 first"),
    (REQUESTER, "payments-read 10m INC-1 again"),
    (OUTSIDER, "payments-write 10m INC-1"),
    (REQUESTER, "audit --bogus <x>"),
    (REQUESTER, "audit"),
    (AUDITOR, "audit --format <x>"),
]


def test_every_listener_reply_is_clean_and_names_the_catalogs_command():
    ctx = jit_context()
    replies: dict[str, list[str]] = {}
    for user, text in SLASHES:
        ack, respond = Recorder(), Recorder()
        ctx.responder = lambda _url, respond=respond: respond  # what runs after the ack answers through the same URL
        command = {"user_id": user, "text": text, "trigger_id": "1.2.abc", "channel_id": "C0TEST"}
        commands.elevate(ack, command, FakeWebClient(), respond, ctx=ctx)  # type: ignore[arg-type]
        replies[text] = texts_in(ack.calls) + texts_in(respond.calls)
    ack, respond = Recorder(), Recorder()
    commands.elevate(
        ack, {"user_id": REQUESTER, "text": "", "trigger_id": "1"}, FakeWebClient("expired_trigger_id"), respond, ctx=ctx
    )  # type: ignore[arg-type]
    replies["(form refused)"] = texts_in(respond.calls)

    rid = ctx.service.mine(REQUESTER)[0].id
    clicks = [
        (blocks.APPROVE, OUTSIDER, rid),
        (blocks.APPROVE, REQUESTER, rid),
        (blocks.APPROVE, APPROVER_1, "<!here>"),
        (blocks.APPROVE_FOR, APPROVER_1, f"{rid}:r@99h"),
        (blocks.CANCEL, APPROVER_1, rid),
        (blocks.DONE, OUTSIDER, rid),
        (blocks.EXTEND, REQUESTER, rid),
        (blocks.NUDGE, OUTSIDER, rid),
        (blocks.REVIEW_ACK, APPROVER_1, rid),
        (blocks.REVIEW_FLAG, APPROVER_1, rid),
    ]
    assert {action for action, _, _ in clicks} == set(actions.DEFERRED), "every deferred click is tried"
    for action, user, value in clicks:
        respond = Recorder()
        ctx.responder = lambda _url, respond=respond: respond
        actions.later(Recorder(), click_body(user, action, value), ctx=ctx)
        replies[f"{action} by {user} on {value}"] = texts_in(respond.calls)
    respond = Recorder()
    actions.deny(Recorder(), click_body(OUTSIDER, "x", rid), FakeWebClient(), respond, ctx=ctx)  # type: ignore[arg-type]
    replies["deny by outsider"] = texts_in(respond.calls)
    for metadata in ("<!here>", rid):
        ack = Recorder()
        state = {"reason": {"value": {"value": "no <reason>"}}}
        views.submit_deny(ack, {"user": {"id": OUTSIDER}}, {"private_metadata": metadata, "state": {"values": state}}, ctx=ctx)  # type: ignore[arg-type]
        replies[f"deny form {metadata}"] = texts_in(ack.calls)
    ack = Recorder()
    state = {"scope": {"value": {"selected_option": {"value": "payments-read"}}}, "duration": {"value": {"value": "<1h>"}}}
    views.submit_request(ack, {"user": {"id": REQUESTER}}, {"state": {"values": state}}, ctx=ctx)  # type: ignore[arg-type]
    replies["request form"] = texts_in(ack.calls)
    events.home_opened({"user": REQUESTER, "tab": "home"}, ctx=ctx)
    replies["dms"] = [text for _, text in ctx.notifier.dms]  # type: ignore[attr-defined]

    for said in replies.values():
        assert_clean(said) if said else None
    every = "\n".join(t for said in replies.values() for t in said)
    assert not [k for k, said in replies.items() if not said and k != "dms"], "every input gets an answer"
    # The hints, each with the catalog's command and the refusal's own fields.
    assert f"`/jit revoke {rid}` before asking again" in every, "AlreadyOpen names the open request"
    assert "Ask for it the usual way: `/jit payments-read &lt;duration&gt; &lt;reason…&gt;`" in every, "AskNormally"
    assert "`/jit ssh-key &lt;the line of your ~/.ssh/id_ed25519.pub&gt;`" in every, "SshKeyMissing and bare ssh-key"
    assert "`/jit list`" in every and "`/jit help`" in every and "`/jit revoke &lt;request-id&gt;`" in every


def test_every_hint_uses_the_catalogs_command_and_every_refusal_code_has_one_or_none():
    def subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    codes = {cls.code for cls in subclasses(DomainError)}
    assert set(messages.HINTS) <= codes, "a hint no refusal selects"
    for cls in subclasses(DomainError):
        error = cls("Refused <x>.", request_id="JIT-1", scope="payments-read") if cls.__init__ is DomainError.__init__ else None
        if error is None:
            continue
        text = messages.error_text(error, "/jit")
        assert_clean([text])
        if cls.code in messages.HINTS:
            assert "`/jit" in text, text
    for code, hint in messages.HINTS.items():
        assert "{command}" in hint or "`" not in hint, code
    assert "/jit" in messages.usage_text("x", "/jit") and "/jit" in messages.no_ssh_key_text("/jit")
    assert_clean([messages.help_text("/jit", ["payments-read"]), messages.form_failed_text("x", "/jit", ["a"])])


def test_the_credential_dm_of_an_extension_and_of_an_approval_mentions_only_approvers():
    delivery = SimpleNamespace(summary="a <thing>", lines=("line <1>",), code=None)
    for request in (hostile_request(), replace(hostile_request(), approval=Approval(1, ()))):
        text = messages.credential_text(request, delivery)  # type: ignore[arg-type]
        assert_clean([text])
        assert "a &lt;thing&gt;" in text and "line &lt;1&gt;" in text
