"""A vault-enforced database scope end to end, on both databases: a request in Slack, two approvers each sign in with
TOTP on the step-up page and authorize with their own identity, the requester unwraps one working PostgreSQL login
from the DM, and the bot's timer ends it on time (Vault's lease revoked, the open session cut)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import hvac
import pytest
import requests

from devkit.standin import message_text as shown
from tests.integration.test_kind_database import _role_exists, _session_is_dead
from tests.stepup_stage import Browserless, Stage, stage
from tests.vault_approval import APPROVER_1, APPROVER_2, REQUESTER
from tests.vault_database import DB_TOML, SCOPE, TABLE, database_engine, drop_table, leases, login

WRAPPING = re.compile(r"unwrap (\S+?)`")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def on(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with stage(request.param, tmp_path_factory.mktemp("stepup-db"), extra=DB_TOML, prepare=database_engine) as built:
        yield built
    drop_table()


def sign_in_and_approve(on: Stage, who: str, rid: str) -> None:
    done = Browserless(on, requests.Session()).sign_in(on.click_approve(who, rid), who)
    assert done.status_code == 200 and "Approved" in done.text, done.text


def test_two_sign_ins_release_one_working_login_that_the_timer_ends_on_time(on: Stage) -> None:
    before = leases(on.vault)
    status, body = on.client.slash(REQUESTER, f"{SCOPE} 8s INC-80 count stuck orders")
    assert status == 200 and "Request `JIT-" in body["text"], body
    rid = str(body["text"].split("`")[1])
    on.slack.wait_for(lambda: on.slack.find_message(lambda m: rid in shown(m) and "Approve" in shown(m)))
    sign_in_and_approve(on, APPROVER_1, rid)
    assert on.state(rid) == "pending" and not leases(on.vault) - before  # one approver: no login exists
    sign_in_and_approve(on, APPROVER_2, rid)
    on.wait_state(rid, "active")
    dm = on.slack.wait_for(
        lambda: next((m for m in on.slack.dm_messages(REQUESTER) if rid in shown(m) and "unwrap" in shown(m)), None)
    )
    found = WRAPPING.search(shown(dm))
    assert found, shown(dm)
    creds = hvac.Client(url=on.vault.addr, token=found.group(1)).sys.unwrap()["data"]
    session = login(creds)
    try:
        assert session.execute(f"SELECT id FROM {TABLE}").fetchall() == [(7,)]  # one working login, in an open transaction
        assert len(leases(on.vault) - before) == 1
        approvals = on.audit(rid, "approval_added") + on.audit(rid, "approved")
        assert [a[1] for a in approvals] == [APPROVER_1, APPROVER_2] and all("totp" in a[2] for a in approvals)
        # Pitfall (b): the hold is gone, so nothing can be released a second time.
        with pytest.raises(hvac.exceptions.InvalidPath):
            on.vault.root.secrets.kv.v2.read_secret_version(
                path=f"jitbot/control-groups/{rid}", mount_point="secret", raise_on_deleted_version=True
            )
        issued = time.monotonic()
        on.wait_state(rid, "expired", timeout=30)  # the bot's own timer, on real time
        ended = time.monotonic() - issued
        assert not _role_exists(creds["username"]) and _session_is_dead(session)  # recorded only once the login is gone
        assert ended < 8 + 10, ended
        lag = float(re.findall(r"lag_seconds['\"]?:\s*(-?[0-9.]+)", on.audit(rid, "expired")[0][2])[0])
        assert 0 <= lag < 5, lag  # recorded at the grant's end, not before, and soon after
        print(f"\nexpired {ended:.1f} s after the login was first used (grant of 8 s), {lag:.2f} s after its end")
    finally:
        session.close()  # a failed assertion must not leave it holding the table
