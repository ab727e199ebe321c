"""views.open/push/update/publish: modals opened by trigger_id, and each person's Home tab."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from devkit.standin.rendering import plain_text, render_blocks
from devkit.standin.state import SlackError, StandInState


class ViewMethods(StandInState):
    def trigger_id(self, user_id: str) -> str:
        """A fresh trigger_id belonging to `user_id` (views.open with it opens the modal for that user)."""
        with self._lock:
            n = next(self._ids)
            trigger = f"{n}.{1_000_000 + n}.{hashlib.sha256(f'{user_id}:{n}'.encode()).hexdigest()[:16]}"
            self._triggers[trigger] = user_id
            return trigger

    def _store_view(self, view_id: str, kind: str, user: str | None, view: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._views.get(view_id)
        full = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "root_view_id": view_id,
            **copy.deepcopy(dict(view)),
            "state": {"values": {}},
            "hash": f"{next(self._ids)}.{view_id}",
        }
        if stored is None:
            self._views[view_id] = {"id": view_id, "kind": kind, "user": user, "view": full, "history": []}
            prefix = ""
        else:
            stored["history"].append(stored["view"])
            stored["view"] = full
            prefix = "(updated) "
        title = plain_text(full.get("title"))
        body = render_blocks(full.get("blocks"))
        label = f"{kind} @{user}" if user else kind
        self._say(frozenset({user}) if user else None, label, prefix + "\n".join(t for t in (title, body) if t))
        return full

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_trigger_id")
        if not isinstance(params.get("view"), Mapping):
            raise SlackError("invalid_arguments")
        user = self._triggers.get(trigger)
        return {"view": self._store_view(self._new_id("V"), "modal", user, params["view"])}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next((i for i, v in self._views.items() if v["view"].get("external_id") == params["external_id"]), None)
        stored = self._views.get(view_id or "")
        if stored is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != stored["view"]["hash"]:
            raise SlackError("hash_conflict")
        if not isinstance(params.get("view"), Mapping):
            raise SlackError("invalid_arguments")
        return {"view": self._store_view(stored["id"], stored["kind"], stored["user"], params["view"])}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id")
        if not user:
            raise SlackError("invalid_arguments")
        self._check_user(user)
        if not isinstance(params.get("view"), Mapping):
            raise SlackError("invalid_arguments")
        return {"view": self._store_view("VHOME" + user, "home", user, params["view"])}
