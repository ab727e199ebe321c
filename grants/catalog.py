"""The catalog: which scopes exist, who may request and approve them, and its validation."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator

from grants.approval_catalog import ApprovalFields, StepUpSettings, approval_problems, policy_problems
from grants.audit_stream import AuditStream
from grants.context_catalog import ContextFields, ContextSettings, OnCallRule, context_problems, schedule_problem
from grants.csr import Csr
from grants.durations import DurationError, parse_duration

# Names whose token role `jitbot-<name>` is taken: `jitbot-database` was the shared database reader role of older
# releases (an upgraded Vault may still hold it, and `vault sync` deletes it), so a scope of that name would collide.
RESERVED_SCOPE_NAMES = frozenset({"database"})
SCOPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# What the chat side checks beyond the core (its own ID formats, its command words), reported with the core's problems.
ExtraCheck = Callable[["Catalog"], list[str]]

Duration = Annotated[str, Field(description="a duration such as 15m or 1h30m")]


class CatalogError(Exception):
    """The catalog has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_duration(value: str) -> str:
    parse_duration(value)  # raises DurationError, reported by pydantic as a value error
    return value


class Settings(_Strict, ContextSettings):
    command: str = "/elevate"
    approval_channel: str = ""
    alert_channel: str = ""
    pending_timeout: Duration = "1h"
    auditors: list[str] = []
    admins: list[str] = []
    # vault_identity: the auth mount whose entity aliases are named by Slack user IDs (an operator links people once).
    identity_alias_mount: str = Field(default="slack", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$")
    # A person's budget of new requests (break-glass included) per window: 40 request-and-cancel cycles a
    # minute would otherwise put 80 posts in front of the approvers.
    request_budget: int = Field(default=10, ge=1)
    request_window: Duration = "10m"
    web_url: str = ""  # public base URL of the web process (the step-up page's links)
    step_up: StepUpSettings = StepUpSettings()
    audit_stream: AuditStream | None = None  # the trail streamed to a SIEM as it is written (grants/audit_stream.py)

    _durations = field_validator("pending_timeout", "request_window")(_check_duration)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("must be a slash command such as /elevate")
        return value

    @property
    def pending_timeout_delta(self) -> timedelta:
        return parse_duration(self.pending_timeout)


class Step(_Strict):
    """One ordered approval step: `approvals` distinct people from `approvers`."""

    name: str = ""
    approvers: list[str] = Field(min_length=1)
    approvals: int = Field(default=1, ge=1)
    step_up: bool = False  # approvers of this step confirm on the web page after a sign-in


class AutoApprove(_Strict):
    """Approve without a human for these requesters (or whoever is on call), up to `max_duration`; recorded as `system`."""

    name: str = ""
    requesters: list[str] = []
    max_duration: Duration
    on_call: OnCallRule | None = None  # only while the requester is on call in this schedule (PagerDuty)
    end_with_shift: bool = False  # the grant never outlives the shift that allowed it

    _durations = field_validator("max_duration")(_check_duration)

    @property
    def max(self) -> timedelta:
        return parse_duration(self.max_duration)


class BreakGlass(_Strict):
    """Issue at once, with a short cap, a loud notice and a post-hoc review by an approver."""

    requesters: list[str] = Field(min_length=1)
    max_duration: Duration = "30m"
    review_within: Duration = "24h"

    _durations = field_validator("max_duration", "review_within")(_check_duration)

    @property
    def max(self) -> timedelta:
        return parse_duration(self.max_duration)

    @property
    def review_delta(self) -> timedelta:
        return parse_duration(self.review_within)


def _optional_duration(value: str | None) -> str | None:
    return None if value is None else _check_duration(value)


class ScopeBase(_Strict, ApprovalFields, ContextFields):
    """What every scope has, whatever its credential kind: durations, people, steps, break-glass, extensions."""

    description: str
    min_duration: Duration = "1m"
    default_duration: Duration = "15m"
    max_duration: Duration = "1h"
    requesters: list[str] = Field(min_length=1)
    approvers: list[str] = []
    approvals_required: int = Field(default=1, ge=1)
    approval_steps: list[Step] = []
    require_reason: bool = True
    reason_pattern: str = ""
    remind_after: Duration | None = None
    escalate_after: Duration | None = None
    escalation: list[str] = []
    auto_approve: list[AutoApprove] = []
    break_glass: BreakGlass | None = None
    warn_before: Duration = "5m"
    max_extensions: int = Field(default=0, ge=0)
    extension_requires_approval: bool = True
    max_total_duration: Duration | None = None

    _durations = field_validator("min_duration", "default_duration", "max_duration", "warn_before")(_check_duration)
    _optional = field_validator("remind_after", "escalate_after", "max_total_duration")(_optional_duration)

    # What the core, the listeners and the messages ask of a kind, never its name: a kind overrides these here.
    needs_public_key: ClassVar[bool] = False  # the credential certifies the requester's registered SSH public key
    ends_by_itself: ClassVar[bool] = True  # False: only the bot or `jitbot vault sweep` ends it (no TTL of its own)
    revoke_caveat: ClassVar[str] = ""  # what an early revoke cannot do, told plainly to the requester
    needs_csr: ClassVar[bool] = False  # the credential certifies the requester's registered CSR (`/elevate csr`)

    def csr_problems(self, csr: Csr, requester: str) -> list[str]:
        """Why `csr` cannot be signed for `requester` in this scope ([] for kinds that sign no CSR)."""
        return []

    @property
    def policies_granted(self) -> list[str]:
        """The Vault policies this scope's credential carries (none for kinds that grant no policy)."""
        return []

    @property
    def services(self) -> list[str]:
        """The service entities (`entity:NAME`) this scope may be requested for; none for kinds that cannot act for one."""
        return []

    @property
    def steps(self) -> list[Step]:
        """The ordered approval steps; a scope without `approval_steps` has one step."""
        if self.approval_steps:
            return list(self.approval_steps)
        return [Step.model_construct(name="approval", approvers=self.approvers, approvals=self.approvals_required)]

    @property
    def approvals_needed(self) -> int:
        return sum(step.approvals for step in self.steps)

    @property
    def all_approvers(self) -> list[str]:
        """Everyone who may approve some step (they also may revoke grants and close reviews)."""
        return [p for step in self.steps for p in step.approvers]

    def delta(self, name: str) -> timedelta | None:
        value = getattr(self, name)
        return parse_duration(value) if value else None

    @property
    def max_total(self) -> timedelta:
        return parse_duration(self.max_total_duration) if self.max_total_duration else self.max * (1 + self.max_extensions)

    @field_validator("reason_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from exc
        return value

    @property
    def min(self) -> timedelta:
        return parse_duration(self.min_duration)

    @property
    def default(self) -> timedelta:
        return parse_duration(self.default_duration)

    @property
    def max(self) -> timedelta:
        return parse_duration(self.max_duration)


class VaultTokenScope(ScopeBase):
    """A response-wrapped Vault token carrying exactly `policies`."""

    vault_enforceable: ClassVar[bool] = True

    credential: Literal["vault_token"] = "vault_token"
    policies: list[str] = Field(min_length=1)
    no_default_policy: bool = False

    @property
    def policies_granted(self) -> list[str]:
        return list(self.policies)


class DatabaseScope(ScopeBase):
    """A dynamic database user from Vault's database secrets engine, dropped (sessions killed) at the end."""

    credential: Literal["database"]
    vault_enforceable: ClassVar[bool] = True  # its reader token's create can be held by a control group
    database_role: str = Field(min_length=1)
    database_mount: str = "database"
    connect_hint: str = ""


class SshScope(ScopeBase):
    """An SSH certificate signed by Vault's SSH CA for exactly `principals`."""

    credential: Literal["ssh"]
    vault_enforceable: ClassVar[bool] = True  # its one signing call can be held by a control group
    ssh_mount: str = "ssh-client-signer"
    ssh_role: str = Field(min_length=1)
    principals: list[str] = Field(min_length=1)

    needs_public_key: ClassVar[bool] = True
    # OpenSSH cannot cut a session when a certificate is revoked: the requester is told so.
    revoke_caveat: ClassVar[str] = (
        "New SSH logins are refused once hosts fetch the revocation list; sessions already open survive: log out of them."
    )

    @field_validator("principals")
    @classmethod
    def _no_wildcards(cls, value: list[str]) -> list[str]:
        # A certificate for root or for any principal is not an exception to a control: it is no control.
        bad = [p for p in value if p in ("root", "*") or not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", p)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: principals are plain login names, never `root` or `*`")
        return value


class VaultIdentityScope(ScopeBase):
    """The requester's own Vault identity (or a listed service's) raised by `policies` for the grant."""

    credential: Literal["vault_identity"]
    policies: list[str] = Field(min_length=1)
    on_behalf_of: list[str] = []

    ends_by_itself: ClassVar[bool] = False  # a group has no TTL: reconcile and the sweeper end it

    @property
    def policies_granted(self) -> list[str]:
        return list(self.policies)

    @property
    def services(self) -> list[str]:
        return list(self.on_behalf_of)

    @field_validator("on_behalf_of")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.fullmatch(r"entity:[A-Za-z0-9_.-]{1,64}", v)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: name services as `entity:NAME`")
        return value


class PkiScope(ScopeBase):
    """A short-lived client certificate signed by Vault's PKI engine for the requester's own CSR, named by a template."""

    credential: Literal["pki"]
    vault_enforceable: ClassVar[bool] = True  # its one signing call can be held by a control group
    pki_mount: str = Field(default="pki", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    pki_role: str = Field(default="", pattern=r"^(jitbot-[a-z0-9_-]{1,60})?$")  # "": jitbot-<scope>
    common_name: str
    key_types: list[Literal["ec", "rsa", "ed25519"]] = Field(default=["ec"], min_length=1)

    needs_csr: ClassVar[bool] = True
    revoke_caveat: ClassVar[str] = (
        "Services that check the CRL or OCSP refuse the certificate at once; one that checks neither accepts it "
        "until it expires, and TLS connections already open survive: close them."
    )

    def role(self, scope_name: str) -> str:
        return self.pki_role or f"jitbot-{scope_name}"

    def name_for(self, requester: str) -> str:
        """The one DNS name a requester's certificate carries (`{user}` = their Slack user ID, lower-cased)."""
        return self.common_name.replace("{user}", requester.lower())

    def csr_problems(self, csr: Csr, requester: str) -> list[str]:
        problems = csr.name_problems(self.name_for(requester))
        if csr.key_type not in self.key_types:
            problems.append(f"its key is {csr.key_type}; this scope takes {' or '.join(self.key_types)} keys")
        return problems

    @field_validator("common_name")
    @classmethod
    def _one_name(cls, value: str) -> str:
        # A wildcard or a name without the requester in it would be one certificate for many people: no control.
        domain = value.removeprefix("{user}.")
        if domain == value or "{" in domain or "*" in domain or not re.fullmatch(r"([a-z0-9-]{1,63}\.)+[a-z]{2,63}", domain):
            raise ValueError("must be `{user}.` followed by a lower-case domain, e.g. `{user}.jit.internal`; never a wildcard")
        return value


def _credential_kind(value: object) -> str:
    """The discriminator: `credential`, which defaults to vault_token as it always has."""
    if isinstance(value, dict):
        return str(value.get("credential", "vault_token"))
    return str(getattr(value, "credential", "vault_token"))


Scope = Annotated[
    Annotated[VaultTokenScope, Tag("vault_token")]
    | Annotated[DatabaseScope, Tag("database")]
    | Annotated[SshScope, Tag("ssh")]
    | Annotated[VaultIdentityScope, Tag("vault_identity")]
    | Annotated[PkiScope, Tag("pki")],
    Discriminator(_credential_kind),
]
SCOPE = TypeAdapter(Scope)


def kind_models() -> dict[str, type[ScopeBase]]:
    """Each credential kind's catalog model, read off the `Scope` union's arms (so a new kind is still one arm)."""
    union = get_args(Scope)[0]
    return {get_args(arm)[1].tag: get_args(arm)[0] for arm in get_args(union)}


def revoke_caveat(kind: str) -> str:
    """What an early revoke of this kind's credential cannot do ("" when it ends everything)."""
    model = kind_models().get(kind)
    return model.revoke_caveat if model is not None else ""


class Catalog(_Strict):
    settings: Settings = Settings()
    groups: dict[str, list[str]] = {}
    scopes: dict[str, Scope] = Field(min_length=1)

    def members(
        self,
        principals: list[str],
        usergroups: Callable[[str], frozenset[str]] = lambda _: frozenset(),
        on_call: Callable[[str], frozenset[str]] = lambda _: frozenset(),
    ) -> frozenset[str]:
        """Expand user IDs, `group:NAME`, (through `usergroups`) `usergroup:ID` and (through `on_call`) `oncall:SCHEDULE`
        into user IDs; `*` stays `*`."""
        users: set[str] = set()
        for principal in principals:
            if principal.startswith("group:"):
                users.update(self.groups.get(principal.removeprefix("group:"), []))
            elif principal.startswith("usergroup:"):
                users.update(usergroups(principal.removeprefix("usergroup:")))
            elif principal.startswith("oncall:"):
                users.update(on_call(principal.removeprefix("oncall:")))
            else:
                users.add(principal)
        return frozenset(users)

    def approvers(self, scope: Scope) -> frozenset[str]:
        """The approvers the catalog names (Slack user groups are resolved by `grants.people.People`)."""
        return self.members(scope.all_approvers)


def _location(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


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


def _semantic_problems(catalog: Catalog, policy_dir: Path | None) -> list[str]:
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
            if rule.max > scope.max:
                problems.append(f"{where}.auto_approve[{i}].max_duration: {rule.max_duration} is above the scope's max_duration")
        if scope.break_glass is not None:
            if scope.break_glass.max > scope.max:
                problems.append(
                    f"{where}.break_glass.max_duration: the break-glass cap {scope.break_glass.max_duration} "
                    f"is above the scope's max_duration {scope.max_duration}"
                )
        if scope.escalate_after and not scope.escalation:
            problems.append(f"{where}.escalation: escalate_after is set but nobody to escalate to")
        if scope.max_total < scope.max:
            problems.append(f"{where}.max_total_duration: below max_duration")
        if not (scope.min <= scope.default <= scope.max):
            problems.append(
                f"{where}: durations must satisfy min_duration <= default_duration <= max_duration "
                f"(got {scope.min_duration}, {scope.default_duration}, {scope.max_duration})"
            )
        problems += _kind_problems(where, scope, policy_dir)
        if policy_dir is not None:
            for policy in scope.policies_granted:
                if not (policy_dir / f"{policy}.hcl").is_file():
                    problems.append(f"{where}.policies: no policy file `{policy}.hcl` beside the catalog")
    problems += _shared_database_roles(catalog)
    policies = policy_problems(policy_dir) if policy_dir is not None else []
    return problems + approval_problems(catalog) + context_problems(catalog) + policies


def _shared_database_roles(catalog: Catalog) -> list[str]:
    """A vault-enforced database scope's role that a bot-approved scope also reads: the bot's token could mint the same
    login through the other scope's reader, unheld, and the control group would guard nothing."""
    readers: dict[tuple[str, str], list[tuple[str, bool]]] = {}
    for name, scope in sorted(catalog.scopes.items()):
        if isinstance(scope, DatabaseScope):
            readers.setdefault((scope.database_mount, scope.database_role), []).append((name, scope.vault_enforced))
    problems = []
    for (mount, role), scopes in sorted(readers.items()):
        held = [name for name, enforced in scopes if enforced]
        loose = [name for name, enforced in scopes if not enforced]
        for name in held if loose else []:
            problems.append(
                f'scopes.{name}.database_role: {mount}/{role} is also read by {", ".join(loose)} (approval = "bot"), '
                'whose readers the bot mints alone; give the approval = "vault" scope a database role of its own'
            )
    return problems


def _kind_problems(where: str, scope: Scope, policy_dir: Path | None) -> list[str]:
    """What a kind needs beyond its fields' shapes, so that the bot can actually issue it."""
    problems = []
    if isinstance(scope, SshScope) and not scope.ssh_role.startswith("jit-"):
        # The bot's policy may sign only with `jit-*` roles: any other role would be refused at the first grant.
        problems.append(f"{where}.ssh_role: `{scope.ssh_role}` must start with `jit-` (the bot signs only with jit-* roles)")
    bot_policy = policy_dir / "jitbot-bot.hcl" if policy_dir is not None else None
    if isinstance(scope, PkiScope) and bot_policy is not None and bot_policy.is_file():
        # The bot signs only where its policy lets it: a mount it may not sign with would fail at the first grant.
        if f'path "{scope.pki_mount}/sign/jitbot-*"' not in bot_policy.read_text(encoding="utf-8"):
            problems.append(f'{where}.pki_mount: jitbot-bot.hcl has no `path "{scope.pki_mount}/sign/jitbot-*"`; add it there')
    if isinstance(scope, VaultIdentityScope) and bot_policy is not None and bot_policy.is_file():
        # The bot's policy pins the exact policy sets identity groups may carry; an unpinned set is refused by Vault.
        joined = ",".join(scope.policies)
        if f'"{joined}"' not in bot_policy.read_text(encoding="utf-8"):
            problems.append(
                f"{where}.policies: jitbot-bot.hcl does not allow identity groups with `{joined}`; add it to the "
                '`policies` list of path "identity/group/name/jit-*" there'
            )
    return problems


def _shape_problems(error: ValidationError, prefix: tuple[object, ...] = ()) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            message = "unknown key; check the spelling against the catalog reference"
        elif item["type"] == "union_tag_invalid":
            loc, message = (*loc, "credential"), f"unknown credential kind; use one of {', '.join(kind_models())}"
        if len(loc) > 2 and loc[0] == "scopes" and loc[2] in kind_models():
            loc = (*loc[:2], *loc[3:])  # the union's tag is our `credential` field, not a level of the file
        problems.append(f"{_location((*prefix, *loc))}: {message}")
    return problems


def _scope_of(problem: str) -> str:
    """`scopes.NAME` of a problem's location (or the location's first part)."""
    return ".".join(problem.split(":", 1)[0].split(".")[:2])


def _salvage_scope(scope: object) -> object | None:
    """A malformed scope without its malformed keys (each falls back to its default), so that one bad duration
    does not hide the scope's other problems; None when the rest is no scope either."""
    if not isinstance(scope, dict):
        return None
    rest = dict(scope)
    for _ in range(len(rest) + 1):
        try:
            return SCOPE.validate_python(rest)
        except ValidationError as exc:
            locs = [tuple(item["loc"]) for item in exc.errors()]
            keys = {loc[1] if len(loc) > 1 and loc[0] in kind_models() else loc[0] for loc in locs if loc}
            bad = {key for key in keys if key in rest and key != "credential"}
            if not bad:
                return None
            rest = {key: value for key, value in rest.items() if key not in bad}
    return None


def _salvage(data: dict[str, object]) -> Catalog | None:
    """The parts of a malformed catalog that are well-formed, so their own problems are reported too."""
    raw = data.get("scopes")
    scopes: dict[str, object] = raw if isinstance(raw, dict) else {}
    good: dict[str, object] = {}
    for name, scope in scopes.items():
        salvaged = _salvage_scope(scope)
        if salvaged is not None:
            good[name] = salvaged
    parts: dict[str, object] = {"scopes": good}
    for key in ("settings", "groups"):
        if key in data:
            try:
                Catalog.model_validate(
                    {key: data[key], "scopes": {"x": {"description": "", "policies": ["x"], "requesters": ["*"]}}}
                )
                parts[key] = data[key]
            except ValidationError:
                continue
    try:
        return Catalog.model_validate(parts) if good else None
    except ValidationError:
        return None


def parse_catalog(data: dict[str, object], policy_dir: Path | None = None, extra: ExtraCheck | None = None) -> Catalog:
    """Validate catalog data; raise CatalogError listing every problem found, shape and meaning together (and what
    `extra`, the chat side's own check, finds)."""

    def meaning(catalog: Catalog) -> list[str]:
        return _semantic_problems(catalog, policy_dir) + (extra(catalog) if extra is not None else [])

    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems = _shape_problems(exc)
        salvaged = _salvage(data)
        if salvaged is not None:
            # A malformed duration fell back to its default: a duration problem of that scope would be the
            # default's, not the file's, so those wait until the durations parse.
            unsure = {_scope_of(p) for p in problems if "duration" in p.split(":", 1)[0]}
            problems += [p for p in meaning(salvaged) if p not in problems and not ("duration" in p and _scope_of(p) in unsure)]
        raise CatalogError(problems) from None
    problems = meaning(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def load_catalog(path: Path, extra: ExtraCheck | None = None) -> Catalog:
    """Load and validate a catalog file; problems are prefixed with the file name."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError([f"{path}: file not found; set JITBOT_CATALOG to the catalog path"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{path}: not valid TOML ({exc})"]) from None
    try:
        return parse_catalog(data, path.parent, extra)
    except CatalogError as exc:
        raise CatalogError([f"{path}: {p}" for p in exc.problems]) from None


__all__ = ["SCOPE", "Catalog", "CatalogError", "DurationError", "Scope", "ScopeBase", "Settings", "load_catalog", "parse_catalog"]
