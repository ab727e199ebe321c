"""The catalog: which scopes exist, who may request and approve them, and its validation."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from grants.durations import DurationError, parse_duration

SUBCOMMANDS = frozenset({"list", "revoke", "audit", "help", "cancel", "break-glass", "extend", "nudge"})
SCOPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CREDENTIAL_KINDS = ("vault_token",)

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


class Settings(_Strict):
    command: str = "/elevate"
    approval_channel: str = ""
    alert_channel: str = ""
    pending_timeout: Duration = "1h"
    auditors: list[str] = []
    admins: list[str] = []

    _durations = field_validator("pending_timeout")(_check_duration)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("must be a slash command such as /elevate")
        return value

    @property
    def pending_timeout_delta(self) -> timedelta:
        return parse_duration(self.pending_timeout)


class Scope(_Strict):
    description: str
    credential: Literal["vault_token"] = "vault_token"
    policies: list[str] = Field(min_length=1)
    no_default_policy: bool = False
    min_duration: Duration = "1m"
    default_duration: Duration = "15m"
    max_duration: Duration = "1h"
    requesters: list[str] = Field(min_length=1)
    approvers: list[str] = Field(min_length=1)
    approvals_required: int = Field(default=1, ge=1)
    require_reason: bool = True
    reason_pattern: str = ""

    _durations = field_validator("min_duration", "default_duration", "max_duration")(_check_duration)

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


class Catalog(_Strict):
    settings: Settings = Settings()
    groups: dict[str, list[str]] = {}
    scopes: dict[str, Scope] = Field(min_length=1)

    def members(self, principals: list[str]) -> frozenset[str]:
        """Expand user IDs and `group:NAME` entries into user IDs (`*` stays `*`)."""
        users: set[str] = set()
        for principal in principals:
            if principal.startswith("group:"):
                users.update(self.groups.get(principal.removeprefix("group:"), []))
            else:
                users.add(principal)
        return frozenset(users)

    def can_request(self, scope: Scope, user: str) -> bool:
        allowed = self.members(scope.requesters)
        return "*" in allowed or user in allowed

    def approvers(self, scope: Scope) -> frozenset[str]:
        return self.members(scope.approvers)

    def requestable_by(self, user: str) -> list[str]:
        return [name for name, scope in self.scopes.items() if self.can_request(scope, user)]


def _location(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _semantic_problems(catalog: Catalog, policy_dir: Path | None) -> list[str]:
    problems: list[str] = []
    groups = catalog.groups
    for group, members in groups.items():
        problems += [f"groups.{group}: `{m}` is not a Slack user ID (U…)" for m in members if not USER_ID.match(m)]

    def principals(where: str, values: list[str], star_ok: bool) -> None:
        for value in values:
            if value.startswith("group:"):
                if value.removeprefix("group:") not in groups:
                    problems.append(f"{where}: unknown group `{value}`; define it under [groups]")
            elif value == "*":
                if not star_ok:
                    problems.append(f"{where}: `*` is not allowed here; name the users or groups")
            elif not USER_ID.match(value):
                problems.append(f"{where}: `{value}` is neither a Slack user ID (U…), `group:NAME` nor `*`")

    principals("settings.auditors", catalog.settings.auditors, star_ok=False)
    principals("settings.admins", catalog.settings.admins, star_ok=False)
    for name, scope in catalog.scopes.items():
        where = f"scopes.{name}"
        if name in SUBCOMMANDS:
            problems.append(f"{where}: `{name}` is a subcommand word; rename the scope")
        elif not SCOPE_NAME.match(name):
            problems.append(f"{where}: scope names use lowercase letters, digits, `-` and `_`")
        principals(f"{where}.requesters", scope.requesters, star_ok=True)
        principals(f"{where}.approvers", scope.approvers, star_ok=False)
        if not (scope.min <= scope.default <= scope.max):
            problems.append(
                f"{where}: durations must satisfy min_duration <= default_duration <= max_duration "
                f"(got {scope.min_duration}, {scope.default_duration}, {scope.max_duration})"
            )
        eligible = len(catalog.approvers(scope))
        if scope.approvals_required > eligible:
            problems.append(
                f"{where}.approvals_required: {scope.approvals_required} approvals needed but only {eligible} approver(s) named"
            )
        if policy_dir is not None:
            for policy in scope.policies:
                if not (policy_dir / f"{policy}.hcl").is_file():
                    problems.append(f"{where}.policies: no policy file `{policy}.hcl` beside the catalog")
    return problems


def parse_catalog(data: dict[str, object], policy_dir: Path | None = None) -> Catalog:
    """Validate catalog data; raise CatalogError listing every problem found."""
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; check the spelling against the catalog reference"
            problems.append(f"{_location(error['loc'])}: {message}")
        raise CatalogError(problems) from None
    problems = _semantic_problems(catalog, policy_dir)
    if problems:
        raise CatalogError(problems)
    return catalog


def load_catalog(path: Path) -> Catalog:
    """Load and validate a catalog file; problems are prefixed with the file name."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError([f"{path}: file not found; set JITBOT_CATALOG to the catalog path"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{path}: not valid TOML ({exc})"]) from None
    try:
        return parse_catalog(data, path.parent)
    except CatalogError as exc:
        raise CatalogError([f"{path}: {p}" for p in exc.problems]) from None


__all__ = ["Catalog", "CatalogError", "DurationError", "Scope", "Settings", "load_catalog", "parse_catalog"]
