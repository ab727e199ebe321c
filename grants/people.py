"""Who is who: catalog principals (users, groups, Slack user groups through a directory, on-call schedules) resolved to
user IDs."""

from __future__ import annotations

from collections.abc import Callable

from grants.catalog import Catalog, Scope, Step
from grants.ports import Directory


class NoDirectory:
    def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        return frozenset()


class People:
    def __init__(
        self, catalog: Catalog, directory: Directory | None = None, on_call: Callable[[str], frozenset[str]] | None = None
    ):
        self.catalog = catalog
        self.directory = directory or NoDirectory()
        self.on_call = on_call or (lambda _: frozenset())  # `oncall:SCHEDULE` -> who holds it now

    def members(self, principals: list[str]) -> frozenset[str]:
        return self.catalog.members(principals, self.directory.usergroup_members, self.on_call)

    def can_request(self, scope: Scope, user: str) -> bool:
        allowed = self.members(scope.requesters)
        return "*" in allowed or user in allowed

    def requestable_by(self, user: str) -> list[str]:
        return [name for name, scope in self.catalog.scopes.items() if self.can_request(scope, user)]

    def approvers(self, scope: Scope, escalated: bool = False) -> frozenset[str]:
        """Everyone who may approve some step; the escalation list only once a request was escalated."""
        escalation = self.members(scope.escalation) if escalated else frozenset()
        return self.members(scope.all_approvers) | escalation

    def step_approvers(self, step: Step, scope: Scope, escalated: bool) -> frozenset[str]:
        return self.members(step.approvers) | (self.members(scope.escalation) if escalated else frozenset())

    def admins(self) -> frozenset[str]:
        return self.members(self.catalog.settings.admins)

    def auditors(self) -> frozenset[str]:
        return self.members(self.catalog.settings.auditors)

    def in_rule(self, principals: list[str], user: str) -> bool:
        allowed = self.members(principals)
        return "*" in allowed or user in allowed
