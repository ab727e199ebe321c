"""The credential seam holds: outside the three files of a kind, code asks a kind's capabilities, never its name."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.messages import news_text
from grants.catalog import kind_models, parse_catalog, revoke_caveat
from grants.domain import InvalidRequest, SshKeyMissing
from tests.catalogs import APPROVER_1, REQUESTER, catalog_data
from tests.fakes import bootstrap

ROOT = Path(__file__).resolve().parents[2]
# The files a kind may live in (docs/architecture.md, "How to add a credential kind: three files") and its adapters.
KIND_HOMES = ("grants/catalog_kinds.py", "grants/adapters/kinds/")
MODELS = r"\b(VaultTokenScope|DatabaseScope|SshScope|VaultIdentityScope|PkiScope)\b"


def kind_name_uses(text: str) -> list[str]:
    """Lines that branch on a kind by name: a comparison or membership test with a kind's literal, or a kind's model."""
    names = "|".join(kind_models())
    literal = re.compile(rf"(==|!=|\bin)\s*[\(\[{{]?\s*[\"']({names})[\"']|{MODELS}")
    return [line.strip() for line in text.splitlines() if literal.search(line)]


def test_the_finder_sees_kind_branches_and_not_prose():
    assert kind_name_uses('if scope.credential == "ssh":\n    x = 1') == ['if scope.credential == "ssh":']
    assert kind_name_uses("isinstance(scope, SshScope)") == ["isinstance(scope, SshScope)"]
    assert kind_name_uses('kind in ("database", "ssh")') == ['kind in ("database", "ssh")']
    assert kind_name_uses('text = "only vault_identity scopes that list services can"') == []


def test_no_product_code_outside_a_kinds_files_branches_on_a_kind():
    found = {}
    for path in sorted([*ROOT.glob("grants/**/*.py"), *ROOT.glob("bot/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(KIND_HOMES) or "/migrations/" in rel:
            continue
        if uses := kind_name_uses(path.read_text(encoding="utf-8")):
            found[rel] = uses
    assert found == {}, f"kind-specific code outside the kind's three files (ask a capability instead): {found}"


def test_every_kind_of_the_union_has_a_model_and_capabilities():
    assert set(kind_models()) == {"vault_token", "database", "ssh", "vault_identity", "pki"}
    assert [k for k, m in kind_models().items() if m.needs_public_key] == ["ssh"]
    assert [k for k, m in kind_models().items() if m.needs_csr] == ["pki"]
    assert [k for k, m in kind_models().items() if not m.ends_by_itself] == ["vault_identity"]
    assert "sessions already open survive" in revoke_caveat("ssh")
    assert revoke_caveat("database") == revoke_caveat("no-such-kind") == ""


def seam_catalog():
    data = catalog_data()
    data["scopes"]["web-ssh"] = {  # type: ignore[index]
        "description": "SSH to the web hosts", "credential": "ssh", "ssh_role": "jit-web-ssh", "principals": ["web-admin"],
        "requesters": ["*"], "approvers": [APPROVER_1], "min_duration": "1m", "max_duration": "30m",
    }  # fmt: skip
    data["scopes"]["payments-identity"] = {  # type: ignore[index]
        "description": "Raise an identity", "credential": "vault_identity", "policies": ["payments-read"],
        "on_behalf_of": ["entity:ci-deployer"], "requesters": ["*"], "approvers": [APPROVER_1],
    }  # fmt: skip
    return parse_catalog(data)


def told_context(store, request_id: str, news: str) -> dict[str, object]:
    for row in store.outbox:
        notice = row["notice"]
        if notice.kind == "told" and notice.request_id == request_id and notice.args["news"] == news:
            return dict(notice.args["context"])
    raise AssertionError(f"no `{news}` notice for {request_id}")


def test_a_revoke_carries_the_kinds_caveat_and_the_message_says_it():
    world = bootstrap(seam_catalog())
    world.store.set_ssh_key(REQUESTER, "ssh-ed25519 AAAA test", "SHA256:x", datetime.now(UTC))
    ssh = world.service.request(REQUESTER, "web-ssh", "10m", "INC-1 look at the logs")
    token = world.service.request(REQUESTER, "payments-read", "10m", "INC-1 look at the logs")
    for request in (ssh, token):
        world.service.approve(request.id, APPROVER_1)
        world.service.revoke(request.id, REQUESTER)
    ssh_context, token_context = told_context(world.store, ssh.id, "revoked"), told_context(world.store, token.id, "revoked")
    assert ssh_context["caveat"] == revoke_caveat("ssh") and "caveat" not in token_context
    ended = world.store.get(ssh.id)
    assert "sessions already open survive" in news_text(ended, "revoked", ssh_context)
    assert "survive" not in news_text(world.store.get(token.id), "revoked", token_context)


def test_a_kind_that_certifies_a_key_refuses_without_one_and_others_do_not_ask():
    world = bootstrap(seam_catalog())
    with pytest.raises(SshKeyMissing):
        world.service.request(REQUESTER, "web-ssh", "10m", "INC-1 look at the logs")
    assert world.service.request(REQUESTER, "payments-read", "10m", "INC-1 look at the logs").id


def test_only_a_scope_that_lists_services_may_be_asked_for_one():
    world = bootstrap(seam_catalog())
    with pytest.raises(InvalidRequest, match="cannot be requested for a service"):
        world.service.request(REQUESTER, "payments-read", "10m", "INC-1 deploy", on_behalf_of="ci-deployer")
    request = world.service.request(REQUESTER, "payments-identity", "10m", "INC-1 deploy", on_behalf_of="ci-deployer")
    assert request.on_behalf_of == "entity:ci-deployer"
