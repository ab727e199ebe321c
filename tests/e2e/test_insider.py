"""What a database insider can and cannot do: the bot is no revocation oracle for someone else's token."""

from __future__ import annotations

import hvac
from hvac.exceptions import Forbidden
from sqlalchemy import text

from tests.conftest import APPROVER, REQUESTER, World
from tests.e2e.test_e2e import ask


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
