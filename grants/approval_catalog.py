"""Catalog keys for vault-enforced approvals and step-up sign-in (`approval`, `step_up`, `web_url`, `[settings.step_up]`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from grants.durations import Duration

if TYPE_CHECKING:
    from grants.catalog import Catalog, ScopeBase, Step


class StepUpSettings(BaseModel):
    """How approvers sign in on jitbot's page: through Vault's OIDC auth method, against the organization's IdP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    oidc_mount: str = Field(default="oidc", pattern=r"^[A-Za-z0-9_.-]+$")  # the OIDC auth method's mount path
    oidc_role: str = Field(default="jitbot-approver", pattern=r"^[A-Za-z0-9_.-]+$")  # written by `jitbot vault sync`
    user_claim: str = "sub"  # the claim Vault names the approver's alias by (on `oidc_mount`)
    oidc_scopes: list[str] = ["openid", "email"]
    max_age: Duration = Duration("5m")  # the IdP sign-in may be at most this old (OIDC max_age; Vault checks auth_time)
    link_ttl: Duration = Duration("10m")  # a link from the Approve button is good for this long, and once
    mfa: str = "totp"  # the second factor the IdP enforces for approvers (recorded as evidence; Vault passes no amr)


class ApprovalFields(BaseModel):
    """Per scope: who enforces the approval (jitbot's database, or Vault's control groups) and whether approvers sign in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "vault": the bot's own token obtains only a pending control-group request; approvers' own Vault identities
    # release the credential. A database insider or a stolen bot token alone cannot mint one.
    approval: Literal["bot", "vault"] = "bot"
    step_up: bool = False

    # Kinds whose credential comes from one Vault path the bot calls (so a control group can guard it) set this.
    vault_enforceable: ClassVar[bool] = False

    @property
    def vault_enforced(self) -> bool:
        return self.approval == "vault"


def needs_step_up(scope: ScopeBase, step: Step | None) -> bool:
    """Whether an approval (of `step`) needs a fresh sign-in: vault-enforced scopes always, else `step_up` on scope or step."""
    return scope.vault_enforced or scope.step_up or bool(step is not None and step.step_up)


def signed_in(scope: ScopeBase, approvals: tuple[str, ...]) -> frozenset[str]:
    """The approvers among `approvals` who signed in to give theirs: those counted on a step needing a sign-in (the
    core refuses any approval there without the page's evidence, so the step says it)."""
    from grants.steps import step_progress

    steps = scope.steps
    found = set()
    for i, approver in enumerate(approvals):
        index, _ = step_progress(scope, approvals[:i])  # type: ignore[arg-type]
        if needs_step_up(scope, steps[index] if index < len(steps) else None):
            found.add(approver)
    return frozenset(found)


def approval_problems(catalog: Catalog) -> list[str]:
    """What `jitbot check` says about vault-enforced and step-up scopes, all at once."""
    problems: list[str] = []
    any_step_up = False
    for name, scope in catalog.scopes.items():
        where = f"scopes.{name}"
        stepped = scope.vault_enforced or scope.step_up or any(step.step_up for step in scope.steps)
        any_step_up |= stepped
        if stepped and scope.max_extensions and scope.extension_requires_approval:
            # An extension's Approve is one click (the page signs in for requests only): refuse it, not bypass it.
            problems.append(
                f"{where}.max_extensions: an extension's approval would not ask for a sign-in; set it to 0 "
                "(or extension_requires_approval = false to let the requester extend alone)"
            )
        if not scope.vault_enforced:
            continue
        if not scope.vault_enforceable:
            problems.append(
                f"{where}.approval: `vault` works for vault_token, database, ssh and pki scopes, not {scope.credential}"
            )
        # Vault only refuses the owner of a control-group request (the bot) as approver, never the requester: the
        # catalog must make sure nobody can both ask and approve.
        requesters = catalog.members(scope.requesters)
        if "*" in requesters:
            problems.append(f'{where}.requesters: `*` with approval = "vault"; name the requesters (none may be an approver)')
        both = sorted(requesters & catalog.approvers(scope))
        if both:
            problems.append(f'{where}: {", ".join(both)} both request and approve; with approval = "vault" keep them apart')
        if any(p.startswith(("usergroup:", "oncall:")) for p in scope.all_approvers):
            problems.append(
                f"{where}.approvers: `vault sync` puts approvers in a Vault group; name users or groups, not usergroups "
                "or on-call schedules"
            )
        if scope.auto_approve or scope.break_glass is not None:
            problems.append(f'{where}: auto_approve and break_glass bypass approvers, which approval = "vault" forbids')
        if scope.max_extensions and not scope.extension_requires_approval:
            problems.append(f"{where}.max_extensions: an extension would need a new control-group approval; set it to 0")
    if any_step_up and not catalog.settings.web_url:
        problems.append("settings.web_url: step-up approvals send approvers to jitbot's page; set its public base URL")
    if catalog.settings.web_url and not catalog.settings.web_url.startswith(("https://", "http://")):
        problems.append("settings.web_url: use the page's base URL, e.g. https://jitbot.example.com")
    return problems


_CONTROL_GROUP = re.compile(r"\bcontrol_group\s*=?\s*\{")


def _block(text: str, start: int) -> str:
    """The text inside the brace that opens at `start`, nested blocks included."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
    return text[start + 1 :]


def policy_problems(policy_dir: Path) -> list[str]:
    """Hand-written control groups OpenBao would silently ignore: without a top-level `ttl` in `control_group`,
    the protected path answers `data: null` and no wrap_info, so nobody is asked and nothing is released."""
    problems = []
    for path in sorted(policy_dir.glob("*.hcl")):
        text = re.sub(r"(?m)#.*$", "", path.read_text(encoding="utf-8"))
        for found in _CONTROL_GROUP.finditer(text):
            body = _block(text, found.end() - 1)
            top = re.sub(r'factor\s*"[^"]*"\s*\{', "", body)
            top = re.sub(r"\{[^{}]*\}", "", re.sub(r"\{[^{}]*\}", "", top))  # drop the factors' own blocks
            if not re.search(r"\bttl\s*=", top):
                problems.append(
                    f'{path.name}: a control_group without a top-level `ttl` (e.g. control_group = {{ ttl = "1h" factor … }}); '
                    "OpenBao then silently answers the protected path with nothing instead of a pending request"
                )
    return problems
