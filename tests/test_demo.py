"""`jitbot demo` as a user runs it: a real subprocess on embedded defaults, its transcript checked step by step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
    assert demo.stdout.rstrip().endswith("Demo complete.")


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
    assert "(updated in place)" in step and "approved by @Ari" in step and ":large_green_circle: Active" in step and "- [Approve] [Deny]" in step
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


def test_audit_export_and_verify(demo: Demo) -> None:
    step = section(demo.stdout, "Step 6 ·")
    assert "/elevate audit --format csv" in step and "[DM jitbot → Audrey]" in step and "(uploaded jitbot-audit-" in step
    assert CSV_HEADER in step and ",rejected," in step and ",issued," in step and ",expired," in step
    assert re.search(r"audit trail intact: 1\d events verified", demo.stdout)


def test_no_token_or_secret_is_ever_printed(demo: Demo) -> None:
    everything = demo.stdout + demo.stderr
    assert not FULL_TOKEN.findall(everything), "a Vault token was printed in full"
    assert len(re.findall(r"bao unwrap s\.[A-Za-z0-9]{4}…", everything)) >= 2  # shown masked, both grants
    assert not re.search(r"root-[0-9a-f]{8}", everything) and "xoxb-" not in everything


def test_demo_without_its_catalog_fails_clearly() -> None:
    code = "import sys, pathlib, bot.demo as d; d.POLICY_DIR = pathlib.Path('/nonexistent'); sys.exit(d.run_demo(None))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "jitbot demo: FAILED: the demo runs on the shipped catalog" in done.stderr and "Traceback" not in done.stderr
