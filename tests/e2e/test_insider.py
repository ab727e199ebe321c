"""What a database insider can and cannot do: the bot is no revocation oracle for someone else's token."""

from __future__ import annotations

import json

import hvac
import pytest
from hvac.exceptions import Forbidden
from sqlalchemy import text

from tests.conftest import APPROVER, APPROVER_2, REQUESTER, World
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

    # Two alerts: the row's seal (made for the real token) does not match the lookalike, and the lookup refused it.
    def alerts() -> list[str]:
        return [m["text"] for m in world.slack.messages_in(ALERTS) if rid in m["text"]]

    world.slack.wait_for(lambda: len(alerts()) >= 2 or None)
    assert any("not revoking it" in a for a in alerts())
    assert any("seal stored with credential" in a for a in alerts())
    world.vault.auth.token.revoke_accessor(lookalike["accessor"])


def _swap_in(world: World, rid: str, other: str, trail_too: bool) -> str:
    """The insider copies `other`'s handle and seal into `rid`'s row (and, if `trail_too`, into its `issued` event)."""
    assert world.bot.runtime is not None
    with world.bot.runtime.store.engine.begin() as connection:
        handle, seal = connection.execute(
            text("SELECT accessor, credential_seal FROM requests WHERE id = :id"), {"id": other}
        ).one()
        assert seal is not None  # issued with a seal: the bot read its key from Vault at start-up
        connection.execute(
            text("UPDATE requests SET accessor = :a, credential_seal = :s WHERE id = :id"), {"a": handle, "s": seal, "id": rid}
        )
        if trail_too:
            seq, detail = connection.execute(
                text("SELECT seq, detail FROM audit_events WHERE request_id = :id AND event = 'issued'"), {"id": rid}
            ).one()
            forged = json.dumps({**json.loads(detail), "accessor": handle.partition(":")[2]})
            connection.execute(text("UPDATE audit_events SET detail = :d WHERE seq = :s"), {"d": forged, "s": seq})
    return str(handle).partition(":")[2]


def _two_grants(world: World) -> tuple[str, str, hvac.Client, hvac.Client]:
    mine = ask(world, "payments-read 30m INC-79 insider")
    world.client.click(APPROVER, "approve", mine)
    theirs = ask(world, "payments-read 30m INC-80 victim", user=APPROVER_2)
    world.client.click(APPROVER, "approve", theirs)
    mine_token = hvac.Client(url=world.vault_addr, token=world.unwrap(world.wrapping_token(REQUESTER, mine)))
    their_token = hvac.Client(url=world.vault_addr, token=world.unwrap(world.wrapping_token(APPROVER_2, theirs)))
    return mine, theirs, mine_token, their_token


def test_another_grants_accessor_and_seal_in_the_row_revoke_only_the_real_grant(world: World):
    """The insider copies another request's accessor *and* its valid seal into the row: the trail names the real
    credential, so that one is revoked (its row seal no longer proves it: Vault is asked), the other grant lives."""
    mine, theirs, mine_token, their_token = _two_grants(world)
    _swap_in(world, mine, theirs, trail_too=False)
    status, _ = world.client.slash(REQUESTER, f"revoke {mine}")
    assert status == 200
    world.wait_audit(mine, "revoked")
    with pytest.raises(Forbidden):
        mine_token.auth.token.lookup_self()
    assert their_token.auth.token.lookup_self()["data"]["meta"]["request_id"] == theirs  # untouched
    [mismatch] = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{mine}' AND event = 'rejected'")
    assert "credential_mismatch" in mismatch[0]


def test_another_grants_accessor_and_seal_in_row_and_trail_are_refused_by_the_seal(world: World):
    """The same with the trail rewritten too: the seal was made for the other request, so it proves nothing; the
    refusal is audited as a security failure and alerted, Vault is asked, and the other grant's token lives."""
    mine, theirs, _, their_token = _two_grants(world)
    accessor = _swap_in(world, mine, theirs, trail_too=True)
    status, _ = world.client.slash(REQUESTER, f"revoke {mine}")
    assert status == 200
    world.wait_audit(mine, "revoke_failed")
    assert their_token.auth.token.lookup_self()["data"]["meta"]["request_id"] == theirs  # never revoked
    [refusal] = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{mine}' AND event = 'rejected'")
    assert json.loads(refusal[0]) == {"action": "revoke", "rule": "credential_seal", "accessor": accessor}
    [failed] = world.rows(f"SELECT detail FROM audit_events WHERE request_id = '{mine}' AND event = 'revoke_failed'")
    assert f"belongs to {theirs}" in failed[0]
    alert = world.slack.wait_for(
        lambda: next((m for m in world.slack.messages_in(ALERTS) if mine in m["text"] and "seal" in m["text"]), None)
    )
    assert "does not match" in alert["text"]
