"""Catalog validation: the shipped catalog is valid; a broken one reports every problem at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot import slack_catalog
from grants.catalog import CatalogError, load_catalog, parse_catalog
from grants.people import People
from tests.catalogs import catalog_data
from tests.unit.usecases.worlds import data

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "vault_policies" / "catalog.toml"


def jitbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def test_shipped_catalog_is_realistic_and_valid():
    catalog = load_catalog(SHIPPED)
    assert len(catalog.scopes) >= 3 and len(catalog.groups) >= 2
    assert catalog.approvers(catalog.scopes["payments-read"]) == {"U0APPR001", "U0APPR002", "U0APPR003"}


def test_check_passes_on_the_shipped_catalog():
    result = jitbot("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
    # staging-read's extension settings would let an auto-approved grant grow past its rule: check says so.
    assert "note: scopes.staging-read: grants auto-approved by rule `developers on staging` could self-extend" in result.stdout


BROKEN = """
[settings]
pending_timeout = "soon"
colour = "blue"

[groups]
oncall = ["U0APPR001"]

[scopes.list]
description = "a scope named like a subcommand"
policies = ["payments-read"]
requesters = ["*"]
approvers = ["group:oncall"]

[scopes.payments-read]
description = "disordered durations, unknown group, missing policy, too many approvals"
policies = ["payments-read", "nope"]
min_duration = "2h"
default_duration = "1h"
max_duration = "30m"
requesters = ["group:ghosts"]
approvers = ["group:oncall"]
approvals_required = 3
reason_pattern = "(unclosed"
"""


def test_check_lists_every_problem_of_a_broken_catalog(tmp_path):
    shutil.copy(ROOT / "vault_policies" / "payments-read.hcl", tmp_path)
    (tmp_path / "broken.hcl").write_text('path "secret/*" { capabilities = ["read", "fly"] ')
    (tmp_path / "catalog.toml").write_text(BROKEN)
    import os

    result = jitbot("check", env={**os.environ, "JITBOT_CATALOG": str(tmp_path / "catalog.toml")})
    assert result.returncode == 1
    out = result.stdout
    for expected in (
        "settings.pending_timeout",
        "settings.colour: unknown key",
        "reason_pattern",
        "scopes.list: `list` is a subcommand word",
    ):
        assert expected in out, out
    # The meaning of the well-formed parts is checked too; fix the shape and every other problem shows.
    fixed = BROKEN.replace('pending_timeout = "soon"\ncolour = "blue"', "").replace('reason_pattern = "(unclosed"', "")
    (tmp_path / "catalog.toml").write_text(fixed)
    result = jitbot("check", env={**os.environ, "JITBOT_CATALOG": str(tmp_path / "catalog.toml")})
    out = result.stdout
    assert result.returncode == 1
    for expected in (
        "scopes.list: `list` is a subcommand word",
        "unknown group `group:ghosts`",
        "no policy file `nope.hcl`",
        "min_duration <= default_duration <= max_duration",
        "approvals_required: 3 approvals needed but only 1",
        "broken.hcl: unbalanced braces",
        "unknown capability `fly`",
    ):
        assert expected in out, out
    assert str(tmp_path / "catalog.toml") in out


def test_a_malformed_duration_hides_none_of_its_scopes_other_problems():
    data = catalog_data()
    scope = data["scopes"]["payments-read"]
    scope["default_duration"], scope["max_duration"] = "15x", "zz"
    scope["approvers"] = ["group:nosuch", *scope["approvers"]]
    scope["policies"] = [*scope["policies"], "nope"]
    with pytest.raises(CatalogError) as error:
        parse_catalog(data, SHIPPED.parent)
    problems = error.value.problems
    assert any("default_duration: `15x` is not a duration" in p for p in problems), problems
    assert any("max_duration: `zz` is not a duration" in p for p in problems), problems
    assert any("scopes.payments-read.approvers: unknown group `group:nosuch`" in p for p in problems), problems
    assert any("no policy file `nope.hcl`" in p for p in problems), problems
    # The defaults standing in for the malformed durations are not the file's: no order problem is made up from them.
    assert not any("min_duration <= default_duration" in p for p in problems), problems


def test_missing_catalog_file_says_what_to_set(tmp_path):
    with pytest.raises(CatalogError, match="JITBOT_CATALOG"):
        load_catalog(tmp_path / "absent.toml")


def test_requesters_and_groups_expand():
    people = People(parse_catalog(catalog_data()))
    write = people.catalog.scopes["payments-write"]
    assert people.can_request(write, "U0REQ0001") and not people.can_request(write, "U0OUTSIDE")
    assert people.requestable_by("U0OUTSIDE") == ["payments-read"]


def test_bad_user_ids_and_star_approvers_are_refused():
    data = catalog_data()
    data["groups"] = {"db-oncall": ["alice"]}
    data["scopes"]["payments-read"]["approvers"] = ["*"]
    with pytest.raises(CatalogError) as error:
        slack_catalog.parse_catalog(data)
    text = "\n".join(error.value.problems)
    assert "`alice` is not a Slack user ID" in text and "`*` is not allowed here" in text


@pytest.mark.parametrize(
    "channel", ["#approvals", "approvals", "C0lower1", "D0DMCHAN1", "https://x.slack.com/archives/C0APPROVALS"]
)
def test_a_channel_name_or_anything_but_its_id_is_refused(channel):
    data = catalog_data()
    data["settings"] = {**data["settings"], "approval_channel": channel, "alert_channel": channel}
    with pytest.raises(CatalogError) as error:
        slack_catalog.parse_catalog(data)
    assert error.value.problems == [
        f"settings.{key}: `{channel}` is not a Slack channel ID (C…); open the channel → its name → About → copy the Channel ID"
        for key in ("approval_channel", "alert_channel")
    ]


@pytest.mark.parametrize("channel", ["", "C0APPROVALS", "G0PRIVATE1"])
def test_a_channel_id_or_none_is_accepted(channel):
    data = catalog_data()
    data["settings"] = {**data["settings"], "approval_channel": channel, "alert_channel": channel}
    assert slack_catalog.parse_catalog(data).settings.approval_channel == channel


def test_check_shows_what_each_scope_grants_so_a_read_scope_visibly_reads():
    result = jitbot("check", "--grants")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("staging-read (vault_token)")))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    assert "  staging-read: secret/data/staging/* → read" in block
    assert not any(word in line for line in block for word in ("create", "update", "delete", "sudo"))


def test_a_scope_whose_token_role_jitbot_owns_is_reported_with_the_other_problems():
    """`jitbot-database` was older releases' shared database reader role: a scope `database` would reuse its name."""
    reader = {
        "description": "x",
        "credential": "database",
        "database_role": "jit-x",
        "requesters": ["*"],
        "approvers": ["U0APPR001"],
    }
    with pytest.raises(CatalogError) as caught:
        slack_catalog.parse_catalog({"scopes": {"database": reader, "list": {**reader, "description": ""}}})
    problems = caught.value.problems
    assert (
        "scopes.database: `database` is reserved (token role `jitbot-database` belongs to jitbot itself); rename the scope"
        in problems
    )
    assert any(p.startswith("scopes.list: `list` is a subcommand word") for p in problems)  # all reported together
    assert any("scopes.list.description: empty" in p for p in problems)


def test_the_core_knows_no_slack_ids_and_the_slack_side_checks_them_with_the_core_problems():
    """The core takes any principal name; Slack's ID formats and subcommand words are the Slack side's check, and
    `jitbot check` (the Slack side's loader) reports both halves together."""
    data = catalog_data()
    data["groups"] = {"db-oncall": ["alice@example.com"]}
    data["settings"] = {**data["settings"], "approval_channel": "#approvals"}
    data["scopes"]["help"] = {**data["scopes"]["payments-read"], "requesters": ["group:ghosts"]}
    with pytest.raises(CatalogError) as core_only:
        parse_catalog(data)
    assert core_only.value.problems == ["scopes.help.requesters: unknown group `group:ghosts`; define it under [groups]"]
    with pytest.raises(CatalogError) as both:
        slack_catalog.parse_catalog(data)
    assert set(both.value.problems) == {
        "scopes.help.requesters: unknown group `group:ghosts`; define it under [groups]",
        "groups.db-oncall: `alice@example.com` is not a Slack user ID (U…)",
        "settings.approval_channel: `#approvals` is not a Slack channel ID (C…); open the channel → its name → About → copy "
        "the Channel ID",
        "scopes.help: `help` is a subcommand word; rename the scope",
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["scopes"]["db"]["break_glass"].update(max_duration="2h"), "break-glass cap 2h is above"),
        (lambda d: d["scopes"]["prod-write"]["approval_steps"][0].update(approvals=3), "3 approvals needed but only 2"),
        (lambda d: d["scopes"]["prod-write"].update(escalation=["group:nobody"]), "unknown group `group:nobody`"),
        (lambda d: d["scopes"]["staging"]["auto_approve"][0].update(max_duration="9h"), "above the scope's max_duration"),
        (lambda d: d["scopes"]["prod-write"]["approval_steps"][1].update(approvers=["usergroup:bad"]), "not a Slack user group"),
        (lambda d: d["scopes"]["db"].update(approvers=[]), "name the `approvers`"),
    ],
)
def test_catalog_misuse_of_new_keys_is_reported(change, problem):
    broken = data()
    change(broken)
    with pytest.raises(CatalogError) as error:
        slack_catalog.parse_catalog(broken)  # the core's checks and the Slack side's (a user group's ID)
    assert any(problem in p for p in error.value.problems), error.value.problems


def test_all_new_key_problems_are_reported_together():
    broken = data()
    broken["scopes"]["db"]["break_glass"]["max_duration"] = "2h"
    broken["scopes"]["prod-write"]["approval_steps"][0]["approvals"] = 3
    broken["scopes"]["prod-write"]["escalation"] = ["group:nobody"]
    with pytest.raises(CatalogError) as error:
        parse_catalog(broken)
    assert len(error.value.problems) >= 3


# Durations are parsed once, when the catalog is validated -------------------------------------------------------

CATALOG_MODULES = (
    "grants/catalog.py",
    "grants/catalog_scopes.py",
    "grants/catalog_kinds.py",
    "grants/catalog_rules.py",
    "grants/approval_catalog.py",
    "grants/context_catalog.py",
    "grants/audit_stream.py",
)


def reparsed_durations(source: str) -> list[str]:
    """Lines of a catalog module that parse a duration text again (the `Duration` type parses each once)."""
    return [line.strip() for line in source.splitlines() if "parse_duration(" in line or "DurationError(" in line]


def test_the_finder_sees_a_duration_parsed_again():
    assert reparsed_durations("    return parse_duration(self.max_duration)\n") == ["return parse_duration(self.max_duration)"]
    assert reparsed_durations("max_duration: Duration = Duration('1h')\n") == []


def test_no_catalog_module_parses_a_duration_again():
    found = {path: lines for path in CATALOG_MODULES if (lines := reparsed_durations((ROOT / path).read_text(encoding="utf-8")))}
    assert found == {}


def test_every_catalog_duration_is_a_timedelta_that_prints_as_written():
    raw = catalog_data()
    raw["settings"] |= {  # type: ignore[operator]
        "pending_timeout": "90m",
        "request_window": "600s",
        "step_up": {"max_age": "2m", "link_ttl": "1h"},
        "oncall": {"cache": "45s"},
        "audit_stream": {"webhook": "https://siem.example.com/in", "alert_after": "20m"},
    }
    scope = raw["scopes"]["payments-read"]  # type: ignore[index]
    scope |= {"remind_after": "10m", "escalate_after": "30m", "escalation": ["U0APPR003"], "warn_before": "2m"}
    scope |= {"max_extensions": 1, "max_total_duration": "2h"}
    scope["break_glass"] = {"requesters": ["U0APPR001"], "max_duration": "20m", "review_within": "24h"}
    scope["auto_approve"] = [{"requesters": ["U0REQ0001"], "max_duration": "30m"}]
    catalog = parse_catalog(raw)
    settings, parsed = catalog.settings, catalog.scopes["payments-read"]
    assert parsed.break_glass is not None and settings.oncall is not None and settings.audit_stream is not None
    durations = [  # (value, as written, seconds): a list, since equal durations are equal keys
        (settings.pending_timeout, "90m", 5400),
        (settings.request_window, "600s", 600),
        (settings.step_up.max_age, "2m", 120),
        (settings.step_up.link_ttl, "1h", 3600),
        (settings.oncall.cache, "45s", 45),
        (settings.audit_stream.alert_after, "20m", 1200),
        (parsed.remind_after, "10m", 600),
        (parsed.warn_before, "2m", 120),
        (parsed.max_total_duration, "2h", 7200),
        (parsed.break_glass.review_within, "24h", 86400),
        (parsed.auto_approve[0].max_duration, "30m", 1800),
    ]
    for value, text, seconds in durations:
        assert isinstance(value, timedelta) and value.total_seconds() == seconds and str(value) == text
    # Defaults are durations too, and a computed total is a plain timedelta.
    assert str(catalog.scopes["payments-write"].warn_before) == "5m" and parsed.max_total == timedelta(hours=2)
    # What the trail and the DM say is the text as written (`24h`, not `1d` or `1 day, 0:00:00`).
    assert f"{parsed.break_glass.review_within}" == "24h"


def test_a_duration_that_is_not_text_is_refused_as_before():
    raw = catalog_data()
    raw["scopes"]["payments-read"]["max_duration"] = 30  # type: ignore[index]
    with pytest.raises(CatalogError) as caught:
        parse_catalog(raw)
    assert "scopes.payments-read.max_duration: Input should be a valid string" in caught.value.problems
