"""`jitbot demo` as a user runs it: a real subprocess on embedded defaults, its transcript checked step by step."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from bot import cli, commands
from bot.commands import GROUP

ROOT = Path(__file__).resolve().parents[2]
CSV_HEADER = "seq,at,event,request_id,scope,actor,subject,detail,prev_hash,hash"
# A Vault/OpenBao token in full (service s., batch b., recovery r.; hvs./hvb./hvr. in Vault). Masked ones show 4 chars.
FULL_TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{8,}")
Demo = subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo() -> Demo:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def section(out: str, title: str) -> str:
    """The transcript of one step: from its heading to the next heading."""
    start = out.index(title)
    end = out.find("\nStep ", start + len(title))
    return out[start : end if end != -1 else len(out)]


def test_demo_succeeds_quietly(demo: Demo) -> None:
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr
    assert "FAILED" not in demo.stderr and "Traceback" not in demo.stderr, demo.stderr
    assert not [line for line in demo.stdout.splitlines() if line.startswith('{"')], "log lines leaked onto stdout"
    ending = demo.stdout[demo.stdout.index("Demo complete.") :]
    assert "jitbot playground" in ending and "install guide" in ending, "the demo ends with what to do next"


def test_the_first_screen_reads_as_success(demo: Demo) -> None:
    first = demo.stdout[: demo.stdout.index("Step 1 ·")]
    assert "jitbot vault sync" in first and "policy jitbot-bot: created" in first
    assert "warning:" not in first and "error:" not in first, first
    assert "the database and SSH backends come in steps 11 and 12, payments-keys' approvers in step 14" in first
    assert "bao auth enable oidc" in first  # Vault's OIDC auth method, which the step-up page signs approvers in through


@pytest.mark.parametrize("step_name", ["Step 11 ·", "Step 12 ·", "Step 13 ·", "Step 14 ·", "Step 15 ·"])
def test_the_approvers_message_is_shown_before_anyone_clicks_it(demo: Demo, step_name: str) -> None:
    step = section(demo.stdout, step_name)
    assert step.index("[Approve] [Deny]") < step.index("clicks  [Approve]")


def test_request_reaches_the_approvers(demo: Demo) -> None:
    step = section(demo.stdout, "Step 1 ·")
    assert "/elevate payments-read 20m INC-4411 replay stuck refunds" in step
    assert "[only Dana sees]" in step and "Request `JIT-" in step
    assert "[group DM jitbot → Ari, Ben, Cleo]" in step and "[Approve] [Deny]" in step
    assert "audit #1: requested, actor Dana" in step


def test_self_approval_is_refused_and_audited(demo: Demo) -> None:
    step = section(demo.stdout, "Step 2 ·")
    assert "Dana clicks  [Approve]" in step
    assert "[only Dana sees" in step and "You cannot approve or deny your own request." in step
    assert "rejected (self_approval), actor Dana" in step


def test_approval_delivers_a_credential_that_works_in_scope_only(demo: Demo) -> None:
    step = section(demo.stdout, "Step 3 ·")
    assert "Ari clicks  [Approve]" in step
    assert (
        "(updated in place)" in step
        and "approved by @Ari" in step
        and ":large_green_circle: Active" in step
        and "- [Approve] [Deny]" in step
    )
    assert "[DM jitbot → Dana]" in step and re.search(r"```bao unwrap s\.[A-Za-z0-9]{4}…```", step)
    assert "wrapping token is not valid or does not exist  (single use)" in step
    assert "api_key = sk_demo_not_a_real_key_4242" in step and "the unwrapped credential read the secret" in step
    assert "policies          ['default', 'payments-read']" in step and "explicit_max_ttl  1200s" in step
    ttl = re.search(r"\bttl +(\d+)s", step)
    assert ttl and 0 < int(ttl.group(1)) <= 1200
    assert re.search(r"bao kv get secret/k8s/prod\n +HTTP 403: permission denied", step)


def test_revoke_kills_the_token(demo: Demo) -> None:
    step = section(demo.stdout, "Step 4 ·")
    assert "/elevate revoke JIT-" in step and "Revoked" in step and "was revoked by you" in step
    assert "audit #5: revoked, actor Dana" in step
    assert re.search(r"bao kv get secret/payments/stripe\n +HTTP 403: permission denied", step)


def test_expiry_on_time(demo: Demo) -> None:
    step = section(demo.stdout, "Step 5 ·")
    assert "/elevate db-admin-staging 10s staging schema migration" in step and "Ben clicks  [Approve]" in step
    assert "explicit_max_ttl  10s" in step
    assert "ended at" in step and "the credential was revoked" in step
    assert "+ :lock: Expired — credential revoked" in step
    assert "expired, actor system" in step
    assert re.search(r"bao token lookup\n +HTTP 403: permission denied", step)


def test_two_step_approval_goes_step_by_step(demo: Demo) -> None:
    step = section(demo.stdout, "Step 6 ·")
    assert "/elevate payments-write 10m CHG-2291 rotate webhook keys" in step
    assert "[only Ari sees]" in step and "in steps: payments lead (1) → security (1)" in step
    assert "[group DM jitbot → Cleo, Dmitri]" in step and "now waiting for *payments lead* (0 of 1)" in step
    sam_first, cleo = step.index("▶ Sam clicks  [Approve]"), step.index("▶ Cleo clicks  [Approve]")
    assert sam_first < step.index("rejected (not_this_step), actor Sam") < cleo
    assert "[only Sam sees" in step and "waits for step `payments lead`, which you are not an approver of" in step
    assert "+ Approval steps: 1. payments lead (1) → 2. security (1) · now waiting for *security* (0 of 1)" in step
    assert step.index("[group DM jitbot → Sam, Sasha]") > cleo and "approval_added, actor Cleo" in step
    cleo_again = step.index("▶ Cleo clicks  [Approve]", cleo + 1)
    sam = step.index("▶ Sam clicks  [Approve]", cleo_again)
    refusal = step.index("rejected (one_step_per_person), actor Cleo")
    assert cleo_again < refusal < sam and "one person approves at most one step" in step
    assert "approved by @Cleo, @Sam" in step and re.search(r"audit #\d+: approved, actor Sam", step[sam:])
    assert "[DM jitbot → Ari]" in step and re.search(r"```bao unwrap s\.[A-Za-z0-9_-]{4}…```", step[sam:])
    assert "policies          ['default', 'payments-read', 'payments-write']" in step and "explicit_max_ttl  600s" in step


def test_break_glass_is_issued_at_once_and_reviewed(demo: Demo) -> None:
    step = section(demo.stdout, "Step 7 ·")
    assert "Ben types   /elevate break-glass payments-read 10m INC-5000 payments API down" in step
    assert "[only Ben sees]" in step and "`payments-read` is yours until" in step
    assert "[DM jitbot → Ben]" in step and "your `payments-read` credential is ready" in step
    assert "[group DM jitbot → Ari, Cleo]" in step and "BREAK-GLASS JIT-" in step and "[Acknowledge] [Flag]" in step
    assert "@Ari @Cleo BREAK-GLASS: @Ben took `payments-read`" in step and "[jitbot's log, warning]" in step
    assert "requested (break-glass), actor Ben" in step and "approved (break-glass), actor system" in step
    listed = step.index("*Open break-glass reviews*")
    acknowledged = step.index("▶ Ari clicks  [Acknowledge]")
    assert "Audrey types   /elevate reviews" in step and listed < acknowledged
    assert "review: acknowledged by @Ari" in step and "@Ari acknowledged your break-glass use of `payments-read`" in step
    assert "review_acknowledged, actor Ari" in step
    assert step.index("No break-glass review is open.") > acknowledged


def test_auto_approval_and_a_self_service_extension(demo: Demo) -> None:
    step = section(demo.stdout, "Step 8 ·")
    assert "Dana types   /elevate staging-read 30m" in step and "approved automatically" in step
    assert "approved automatically by the catalog rule “developers on staging”" in step
    assert "approved (catalog rule “developers on staging”), actor system" in step
    assert "You already hold `staging-read`" in step and "[Extend]" in step
    assert re.search(r"/elevate extend JIT-[A-Z0-9]+ 15m", step) and "extended until" in step
    assert "extended (+15m" in step and step.count("your `staging-read` credential is ready") == 2
    new, old = step.index("(VAULT_TOKEN=the new token)"), step.index("(VAULT_TOKEN=the old token)")
    ttl = re.search(r"\bttl +(\d+)s", step[new:])
    assert ttl and 2600 < int(ttl.group(1)) <= 2700  # 30m + 15m, less the seconds gone by
    assert re.search(r"bao token lookup\n +HTTP 403: permission denied", step[old:])


def test_audit_export_and_verify(demo: Demo) -> None:
    step = section(demo.stdout, "Step 9 ·")
    assert "/elevate audit --format csv" in step and "[DM jitbot → Audrey]" in step and "(uploaded jitbot-audit-" in step
    assert CSV_HEADER in step and ",rejected," in step and ",issued," in step and ",expired," in step
    for kind in ("rejected 3", "approval_added 1", "review_acknowledged 1", "extended 1"):
        assert kind in step, kind
    assert re.search(r"audit trail intact: 2\d events verified", demo.stdout)


def test_a_database_grants_open_session_dies_at_revoke(demo: Demo) -> None:
    step = section(demo.stdout, "Step 11 ·")  # PostgreSQL listens on 127.0.0.1:5432 on this machine
    assert "skipped" not in step and "/elevate orders-db-read 15m INC-4500 count stuck orders" in step
    user = re.search(r"username (jit_jit-[a-z0-9]{8}_[a-z0-9]{6})", step)
    assert user and "password (not shown)" in step and "42  (the session stays open, holding its lock)" in step
    assert "revoked, actor Dana" in step and "terminating connection due to administrator command" in step
    assert f"the open session was ended and the login {user.group(1)} dropped" in step


def test_an_ssh_login_stops_after_revoke_and_the_krl(demo: Demo) -> None:
    step = section(demo.stdout, "Step 12 ·")  # sshd and ssh-keygen exist on this machine
    assert "skipped" not in step and "Registered your SSH key ssh-ed25519 `SHA256:" in step
    assert "Eve clicks  [Approve]" in step and "Principals: web-admin. Valid until" in step
    logged_in = re.search(r"\n +logged in with principal web-admin, as local user \w+ on this throwaway sshd", step)
    assert logged_in, step
    logged_in = logged_in.start()
    krl = step.index("/ssh/revoked.krl -o revoked.krl")
    assert logged_in < krl < step.index("Permission denied (publickey)")
    assert "sessions already open survive" in step


def test_an_identity_grant_raises_the_users_own_token_until_revoked(demo: Demo) -> None:
    step = section(demo.stdout, "Step 13 ·")
    denied = [m.start() for m in re.finditer(r"bao kv get secret/payments/stripe\n +HTTP 403", step)]
    assert len(denied) == 2
    allowed = step.index("api_key = sk_demo_not_a_real_key_4242")
    assert denied[0] < allowed < denied[1]
    assert "log in to Vault as usual" in step and "identity_policies  ['payments-read']" in step
    assert "policies           ['default']" in step  # the same token: nothing new was issued to her


def test_a_vault_enforced_scope_is_released_after_two_sign_ins_with_totp(demo: Demo) -> None:
    step = section(demo.stdout, "Step 14 ·")
    assert "identity group jitbot-approvers-payments-keys-1: 2 approver entities" in step  # synced after the linking
    assert "/elevate payments-keys 15m CHG-2300 rotate the payment keys" in step and "2 approval(s) needed" in step
    clicks = [m.start() for m in re.finditer(r"▶ (Ari|Ben) clicks  \[Approve\]", step)]
    assert len(clicks) == 2
    for click, who, approvals in ((clicks[0], "Ari", "1 of 2"), (clicks[1], "Ben", "")):
        turn = step[click : clicks[1] if click == clicks[0] else len(step)]
        assert f"[only {who} sees" in turn and "needs a fresh sign-in" in turn and "your click here approved nothing" in turn
        assert re.search(r"open http://127\.0\.0\.1:\d+/stepup/start\?t=[A-Za-z0-9_-]{4}…\n +HTTP 200", turn), turn
        assert "Enforced by Vault (your own sign-in authorizes it)" in turn and "Requester Dana (U0DEV0001)" in turn
        assert re.search(r"\[Sign in and approve\]\n +HTTP 303 → http://127\.0\.0\.1:\d+/ui/vault/identity/oidc/provider", turn)
        assert f"sign in as {who.lower()}: password …, then the TOTP code" in turn
        assert re.search(r"GET /stepup/callback\?state=…&code=…\n +HTTP 200\n +Approved", turn), turn
        assert approvals in turn
    first, second = step[clicks[0] : clicks[1]], step[clicks[1] :]
    # OpenBao itself, asked by the operator: pending and authorized by nobody, then by Ari alone (Vault counts, not jitbot).
    pending = r"bao write sys/control-group/request accessor=…\n +approved +false\n +authorized by +"
    assert re.search(pending + "nobody", step[: clicks[0]]) and re.search(pending + "Ari\n", first), step
    assert "the click approved nothing by itself" in first and "approval_added (signed in with totp), actor Ari" in first
    assert "It now has 1 of 2 approvals" in first and "[DM jitbot → Dana]" not in first  # one approver released nothing
    assert "approved (signed in with totp), actor Ben" in second and "It is active" in second
    assert "approved by @Ari (approved with sign-in), @Ben (approved with sign-in)" in second
    assert re.search(r"```bao unwrap s\.[A-Za-z0-9_-]{4}…```", second)
    assert "wrapping token is not valid or does not exist  (single use)" in second  # one approval, one credential
    assert "api_key = sk_demo_not_a_real_key_4242" in second
    assert "policies          ['default', 'payments-read', 'payments-write']" in second and "explicit_max_ttl  900s" in second
    revoked = second.index("/elevate revoke JIT-")
    assert "revoked, actor Dana" in second[revoked:]
    assert re.search(r"bao kv get secret/payments/stripe\n +HTTP 403: permission denied", second[revoked:])


def test_a_ticket_bound_grant_ends_when_its_jira_ticket_closes(demo: Demo) -> None:
    step = section(demo.stdout, "Step 15 ·")
    assert "PAY-7 is open in Jira (the demo's stand-in at http://127.0.0.1:" in step
    assert "/elevate payments-support 30m PAY-7 replay stuck refunds" in step and "Ari clicks  [Approve]" in step
    resolved = step.index("▶ Support resolves PAY-7 in Jira (status Done)")
    before, after = step[:resolved], step[resolved:]
    assert "api_key = sk_demo_not_a_real_key_4242" in before  # the credential worked while the ticket was open
    assert re.search(r"jitbot JIT-[A-Z0-9]+: requested payments-support for 30m", before)  # the ticket was told
    assert re.search(r"jitbot JIT-[A-Z0-9]+: access granted until", before)
    assert "revoked (ticket_closed), actor system" in after and "revoked" not in before.split("audit #")[-1]
    assert re.search(
        r"your access to `payments-support` was revoked by jitbot at [^,]+, because its ticket PAY-7 was closed", after
    )
    assert "+ :lock: Revoked by jitbot at" in after and "auto-approval" not in after
    took = re.search(r"revoked by system (\d+\.\d)s after PAY-7 was resolved", after)
    assert took and float(took.group(1)) < 15  # JITBOT_TICKET_WATCH is 1 s in the demo
    assert re.search(r"jitbot JIT-[A-Z0-9]+: access revoked by system \(ticket closed\)", after)
    assert re.search(r"bao kv get secret/payments/stripe\n +HTTP 403: permission denied", after)


def test_the_demo_adds_its_two_scopes_to_a_copy_that_jitbot_check_accepts(tmp_path: Path) -> None:
    from devkit.demo import POLICY_DIR, demo_catalog
    from grants.catalog import load_catalog

    theirs = tmp_path / "policies"  # a --workdir may hold anything: the demo's copy has a name of its own
    theirs.mkdir()
    (theirs / "keep.toml").write_text("kept")
    web, jira = "http://127.0.0.1:21999", "http://127.0.0.1:21998"
    path = demo_catalog(POLICY_DIR / "catalog.toml", tmp_path / "jitbot-demo-policies", web_url=web, jira_url=jira)
    checked = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check"], cwd=tmp_path, env={"JITBOT_CATALOG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "catalog and policies are valid" in checked.stdout, checked.stdout + checked.stderr
    catalog = load_catalog(path)
    keys, support = catalog.scopes["payments-keys"], catalog.scopes["payments-support"]
    assert keys.approval == "vault" and keys.step_up and keys.approvals_required == 2 and catalog.settings.web_url == web
    assert support.ticket is not None and support.ticket.end_when_closed and support.ticket.tracker == "jira"
    assert catalog.settings.trackers["jira"].kind == "jira" and catalog.settings.trackers["jira"].url == jira
    assert not {"payments-keys", "payments-support"} & set(load_catalog(POLICY_DIR / "catalog.toml").scopes)  # shipped: as is
    assert (theirs / "keep.toml").read_text() == "kept"


def test_the_kind_steps_say_plainly_when_this_machine_lacks_a_part(monkeypatch) -> None:
    from devkit.demo import kinds
    from devkit.harness import free_port

    why = kinds.postgres_unavailable(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert why is not None and why.startswith("no PostgreSQL accepts `postgres` without a password on 127.0.0.1:5432 (")
    assert kinds.postgres_unavailable() is None  # this machine has one
    assert kinds.ssh_unavailable() is None
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(kinds, "SSHD", "/nonexistent/sshd")
    assert kinds.ssh_unavailable() == "this machine has no ssh-keygen, ssh, sshd (OpenSSH)"


def test_no_token_or_secret_is_ever_printed(demo: Demo) -> None:
    everything = demo.stdout + demo.stderr
    assert not FULL_TOKEN.findall(everything), "a Vault token was printed in full"
    assert len(re.findall(r"bao unwrap s\.[A-Za-z0-9]{4}…", everything)) >= 6  # shown masked, every credential
    assert not re.search(r"root-[0-9a-f]{8}", everything) and "xoxb-" not in everything
    assert not re.search(r"\b[A-Z2-7]{32}\b", everything), "a TOTP secret (base32, 20 bytes) was printed"
    assert not re.search(r"stepup/start\?t=[A-Za-z0-9_-]{5}", everything), "a step-up link was printed in full"
    assert not re.search(r"code=[A-Za-z0-9_-]{5}", everything), "an authorization code was printed"


def test_demo_without_its_catalog_fails_clearly() -> None:
    code = "import sys, pathlib, devkit.demo as d; d.POLICY_DIR = pathlib.Path('/nonexistent'); sys.exit(d.run_demo(None))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "jitbot demo: FAILED: the demo runs on the shipped catalog" in done.stderr and "Traceback" not in done.stderr


def test_the_stand_in_knows_everyone_the_catalog_names() -> None:
    from devkit.demo import POLICY_DIR, cast_of
    from grants.catalog import load_catalog

    cast = cast_of(load_catalog(POLICY_DIR / "catalog.toml"))
    assert {"U0SEC0001": "Sam", "U0SEC0002": "Sasha", "U0APPR004": "Dmitri", "U0AUDIT01": "Audrey"}.items() <= cast.items()
    assert "*" not in cast


def test_the_demo_is_found_through_its_entry_point() -> None:
    from bot.commands import load_command
    from devkit.demo import main

    assert load_command("demo") is main


@pytest.mark.parametrize("registered", [[], [EntryPoint("demo", "devkit_not_installed.demo:main", GROUP)]])
def test_without_the_dev_kit_the_demo_says_what_to_install(monkeypatch, capsys, registered) -> None:
    monkeypatch.setattr(commands, "entry_points", lambda group: registered if group == GROUP else [])
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "jitbot: `jitbot demo`" in err and "dev kit" in err and "pip install -e '.[demo]'" in err and "Traceback" not in err
