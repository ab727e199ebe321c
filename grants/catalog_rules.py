"""What `jitbot check` finds wrong in a well-formed catalog: names, groups, approver counts, durations, policies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from grants.approval_catalog import approval_problems, policy_problems
from grants.catalog_kinds import kind_problems, shared_database_roles
from grants.context_catalog import context_problems, schedule_problem

if TYPE_CHECKING:
    from grants.catalog import Catalog

# Names whose token role `jitbot-<name>` is taken: `jitbot-database` was the shared database reader role of older
# releases (an upgraded Vault may still hold it, and `vault sync` deletes it), so a scope of that name would collide.
RESERVED_SCOPE_NAMES = frozenset({"database"})
SCOPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def principal_fields(catalog: Catalog) -> list[tuple[str, list[str], bool]]:
    """Every place the catalog names people: (where, the principals, whether `*` may stand there)."""
    fields = [("settings.auditors", catalog.settings.auditors, False), ("settings.admins", catalog.settings.admins, False)]
    for name, scope in catalog.scopes.items():
        where = f"scopes.{name}"
        fields += [(f"{where}.requesters", scope.requesters, True), (f"{where}.approvers", scope.approvers, False)]
        fields.append((f"{where}.escalation", scope.escalation, False))
        if scope.approval_steps:
            fields += [(f"{where}.approval_steps[{i}].approvers", s.approvers, False) for i, s in enumerate(scope.steps)]
        fields += [(f"{where}.auto_approve[{i}].requesters", r.requesters, True) for i, r in enumerate(scope.auto_approve)]
        if scope.break_glass is not None:
            fields.append((f"{where}.break_glass.requesters", scope.break_glass.requesters, False))
    return fields


def semantic_problems(catalog: Catalog, policy_dir: Path | None) -> list[str]:
    problems: list[str] = []
    groups = catalog.groups
    for where, values, star_ok in principal_fields(catalog):
        for value in values:
            if value.startswith("group:") and value.removeprefix("group:") not in groups:
                problems.append(f"{where}: unknown group `{value}`; define it under [groups]")
            elif value.startswith("oncall:"):
                problems.extend(filter(None, [schedule_problem(where, value, catalog)]))
            elif value == "*" and not star_ok:
                problems.append(f"{where}: `*` is not allowed here; name the users or groups")
    for name, scope in catalog.scopes.items():
        where = f"scopes.{name}"
        if name in RESERVED_SCOPE_NAMES:
            problems.append(
                f"{where}: `{name}` is reserved (token role `jitbot-{name}` belongs to jitbot itself); rename the scope"
            )
        elif not SCOPE_NAME.match(name):
            problems.append(f"{where}: scope names use lowercase letters, digits, `-` and `_`")
        # People pick a scope by its description and approvers read it atop every request: it must say something, briefly.
        if not scope.description.strip():
            problems.append(f"{where}.description: empty; say in a few words what the scope gives access to")
        elif len(scope.description) > 300:
            problems.append(f"{where}.description: {len(scope.description)} characters; keep it to 300 (link a runbook for more)")
        if scope.approval_steps and scope.approvers:
            problems.append(f"{where}: use either `approvers` (with approvals_required) or `approval_steps`, not both")
        elif not scope.approval_steps and not scope.approvers:
            problems.append(f"{where}: name the `approvers` (or `approval_steps`)")
        for i, step in enumerate(scope.steps):
            at = f"{where}.approval_steps[{i}]" if scope.approval_steps else f"{where}.approvals_required"
            # Usergroups and on-call schedules are resolved only at run time; they may hold anyone: not counted here.
            named = catalog.members(step.approvers)
            if not any(p.startswith(("usergroup:", "oncall:")) for p in step.approvers) and step.approvals > len(named):
                problems.append(f"{at}: {step.approvals} approvals needed but only {len(named)} approver(s) named")
        if scope.approval_steps and scope.approvals_required != 1:
            problems.append(f"{where}.approvals_required: set `approvals` per step instead when using approval_steps")
        for i, rule in enumerate(scope.auto_approve):
            if rule.max_duration > scope.max_duration:
                problems.append(f"{where}.auto_approve[{i}].max_duration: {rule.max_duration} is above the scope's max_duration")
        if scope.break_glass is not None:
            if scope.break_glass.max_duration > scope.max_duration:
                problems.append(
                    f"{where}.break_glass.max_duration: the break-glass cap {scope.break_glass.max_duration} "
                    f"is above the scope's max_duration {scope.max_duration}"
                )
        if scope.escalate_after and not scope.escalation:
            problems.append(f"{where}.escalation: escalate_after is set but nobody to escalate to")
        if scope.max_total < scope.max_duration:
            problems.append(f"{where}.max_total_duration: below max_duration")
        if not (scope.min_duration <= scope.default_duration <= scope.max_duration):
            problems.append(
                f"{where}: durations must satisfy min_duration <= default_duration <= max_duration "
                f"(got {scope.min_duration}, {scope.default_duration}, {scope.max_duration})"
            )
        problems += kind_problems(where, scope, policy_dir)
        if policy_dir is not None:
            for policy in scope.policies_granted:
                if not (policy_dir / f"{policy}.hcl").is_file():
                    problems.append(f"{where}.policies: no policy file `{policy}.hcl` beside the catalog")
    problems += shared_database_roles(catalog)
    policies = policy_problems(policy_dir) if policy_dir is not None else []
    return problems + approval_problems(catalog) + context_problems(catalog) + policies
