"""The catalog (its settings and scopes) loaded from TOML and validated, every problem reported at once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from grants.approval_catalog import StepUpSettings
from grants.audit_stream import AuditStream
from grants.catalog_kinds import SCOPE, Scope, kind_models, revoke_caveat
from grants.catalog_rules import RESERVED_SCOPE_NAMES, SCOPE_NAME, principal_fields, semantic_problems
from grants.catalog_scopes import AutoApprove, BreakGlass, ScopeBase, Step, Strict
from grants.context_catalog import ContextSettings
from grants.durations import Duration, DurationError

# What the chat side checks beyond the core (its own ID formats, its command words), reported with the core's problems.
ExtraCheck = Callable[["Catalog"], list[str]]


class CatalogError(Exception):
    """The catalog has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(Strict, ContextSettings):
    command: str = "/elevate"
    approval_channel: str = ""
    alert_channel: str = ""
    pending_timeout: Duration = Duration("1h")
    auditors: list[str] = []
    admins: list[str] = []
    # vault_identity: the auth mount whose entity aliases are named by Slack user IDs (an operator links people once).
    identity_alias_mount: str = Field(default="slack", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$")
    # A person's budget of new requests (break-glass included) per window: 40 request-and-cancel cycles a
    # minute would otherwise put 80 posts in front of the approvers.
    request_budget: int = Field(default=10, ge=1)
    request_window: Duration = Duration("10m")
    web_url: str = ""  # public base URL of the web process (the step-up page's links)
    step_up: StepUpSettings = StepUpSettings()
    audit_stream: AuditStream | None = None  # the trail streamed to a SIEM as it is written (grants/audit_stream.py)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("must be a slash command such as /elevate")
        return value


class Catalog(Strict):
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
        return semantic_problems(catalog, policy_dir) + (extra(catalog) if extra is not None else [])

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


__all__ = [
    "RESERVED_SCOPE_NAMES",
    "SCOPE",
    "SCOPE_NAME",
    "AutoApprove",
    "BreakGlass",
    "Catalog",
    "CatalogError",
    "Duration",
    "DurationError",
    "ExtraCheck",
    "Scope",
    "ScopeBase",
    "Settings",
    "Step",
    "kind_models",
    "load_catalog",
    "parse_catalog",
    "principal_fields",
    "revoke_caveat",
]
