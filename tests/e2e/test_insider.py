"""What a database insider can and cannot do: the bot is no revocation oracle for someone else's token."""

from __future__ import annotations

import json

import hvac
import pytest
from hvac.exceptions import Forbidden
from sqlalchemy import text

from tests.conftest import APPROVER, REQUESTER, World
from tests.e2e.test_e2e import ask

ALERTS = "C0ALERTS1"


@pytest.fixture
def catalog_edits() -> dict[str, str]:
    return {'alert_channel = ""': f'alert_channel = "{ALERTS}"'}


def test_a_swapped_accessor_revokes_the_real_grant_and_never_the_foreign_token(world: World):
    rid = ask(world, "payments-read 30m INC-77 insider")
    world.client.click(APPROVER, "approve", rid)
    grant = hvac.Client(url=world.vault_addr, token=world.unwrap(world.wrapping_token(REQUESTER, rid)))
    ci = world.vault.auth.token.create(policies=["default"], ttl="1h", meta={"purpose": "ci pipeline"})["auth"]
    # The insider points the grant's row at the CI pipeline's token, hoping the bot will revoke that one instead.
    assert world.bot.runtime is not None
    with world.bot.runtime.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE requests SET accessor = :a WHERE id = :id"), {"a": f"vault_token:{ci['accessor']}", "id": rid}
        )

    status, _ = world.client.slash(REQUESTER, f"revoke {rid}")
    assert status == 200
    world.wait_audit(rid, "revoked")
    assert world.vault.auth.token.lookup(ci["client_token"])["data"]["accessor"] == ci["accessor"]  # untouched
    try:
        grant.auth.token.lookup_self()
        raise AssertionError("the real grant is still alive")
    except Forbidden:
        pass  # the grant the trail recorded was revoked
    mismatch = world.rows(f"SELECT actor, detail FROM audit_events WHERE request_id = '{rid}' AND event = 'rejected'")
    assert len(mismatch) == 1 and "credential_mismatch" in mismatch[0][1] and mismatch[0][0] == "system"
    revoked = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'revoked'")
    assert ci["accessor"] not in revoked[0][0]


def test_a_token_naming_the_request_only_in_its_metadata_is_never_revoked_and_the_refusal_alerts(world: World):
    """An insider who rewrote the row *and* the trail points the grant at a token whose metadata says it is the request's
    but whose display name is not the one jitbot gives it (anyone who may create tokens can write metadata): the bot
    looks it up, refuses to revoke it, records `revoke_failed` and alerts."""
    rid = ask(world, "payments-read 30m INC-78 insider")
    world.client.click(APPROVER, "approve", rid)
    world.wait_audit(rid, "issued")
    lookalike = world.vault.auth.token.create(
        policies=["default"], ttl="1h", meta={"request_id": rid}, display_name="ci-pipeline"
    )["auth"]
    assert world.bot.runtime is not None
    with world.bot.runtime.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE requests SET accessor = :a WHERE id = :id"), {"a": f"vault_token:{lookalike['accessor']}", "id": rid}
        )
        seq, detail = connection.execute(
            text("SELECT seq, detail FROM audit_events WHERE request_id = :id AND event = 'issued'"), {"id": rid}
        ).one()
        forged = json.dumps({**json.loads(detail), "accessor": lookalike["accessor"]})
        connection.execute(text("UPDATE audit_events SET detail = :d WHERE seq = :s"), {"d": forged, "s": seq})

    status, _ = world.client.slash(REQUESTER, f"revoke {rid}")
    assert status == 200
    world.wait_audit(rid, "revoke_failed")
    assert world.vault.auth.token.lookup(lookalike["client_token"])["data"]["accessor"] == lookalike["accessor"]  # alive
    [failed] = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{rid}' AND event = 'revoke_failed'")
    assert "is called `token-ci-pipeline`" in failed[0]
    alert = world.slack.wait_for(lambda: next((m for m in world.slack.messages_in(ALERTS) if rid in m["text"]), None))
    assert "not revoking it" in alert["text"]
    world.vault.auth.token.revoke_accessor(lookalike["accessor"])
