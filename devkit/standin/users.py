"""auth.test, users.info and usergroups.users.list: who the bot is, who people are, who is in a user group."""

from __future__ import annotations

from typing import Any

from devkit.standin.state import SlackError, StandInState


class UserMethods(StandInState):
    def make_unreachable(self, user_id: str, error: str = "user_not_found") -> None:
        """From now on Slack answers `error` for `user_id` (user_not_found: an unknown ID; user_disabled: deactivated)
        wherever the person is named: conversations.open, a DM by user ID, an ephemeral message."""
        if error not in ("user_not_found", "user_disabled"):
            raise ValueError("Slack answers an unreachable person with user_not_found or user_disabled")
        with self._lock:
            self.unreachable[user_id] = error

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_name}.slack.com/",
            "team": self.team_name,
            "user": "jitbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user") or ""
        if not user or (self.strict_users and user not in self.users):
            raise SlackError("user_not_found")
        name = self.users.get(user, user.lower())
        return {
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": user == self.bot_user_id,
                "tz": "Etc/UTC",
                "tz_offset": 0,
                "profile": {"display_name": name, "real_name": name},
            }
        }

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup") or ""
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}
