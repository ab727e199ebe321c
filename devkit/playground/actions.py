"""What a person does on the page, sent to the bot's real POST /slack/events as the signed request Slack would send."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from devkit.playground.session import CHANNELS, Session


class BadAction(ValueError):
    """The page asked for something that is not a person's action (unknown kind, message or element)."""


def _text(value: Any, what: str, most: int = 4000) -> str:
    if not isinstance(value, str) or len(value) > most:
        raise BadAction(f"{what} must be text of at most {most} characters")
    return value


def perform(session: Session, user: str, action: Mapping[str, Any]) -> dict[str, Any]:
    """Run one action of `user`; what the page needs to know about the bot's answer."""
    kind = action.get("kind")
    if kind == "slash":
        return _slash(session, user, _text(action.get("channel"), "channel", 20), _text(action.get("text"), "text"))
    if kind == "block_action":
        return _block_action(session, user, action)
    if kind == "submit":
        return _submit(session, user, _text(action.get("view_id"), "view_id", 40), action.get("values"))
    if kind == "close":
        session.closed.add(_text(action.get("view_id"), "view_id", 40))
        session.bump()
        return {"status": 200}
    if kind == "open_home":
        status, _ = session.stage.client.open_home(user)
        return {"status": status}
    raise BadAction(f"unknown action kind {kind!r}")


def _slash(session: Session, user: str, channel: str, text: str) -> dict[str, Any]:
    command, _, rest = text.strip().partition(" ")
    expected = session.command
    if command != expected:
        return {"status": 0, "error": f"Only {expected} is installed in this workspace: type `{expected} help`"}
    status, body = session.stage.client.slash(user, rest.strip(), command, channel_id=channel)
    if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
        with session.lock:  # the HTTP answer of a slash command: Slack shows it to the person only, where they typed
            session.ephemerals.append(
                {
                    "id": session.new_id("eph"),
                    "user": user,
                    "channel": channel,
                    "ts": f"{time.time():.6f}",
                    "text": body.get("text") or "",
                    "blocks": body.get("blocks") or [],
                    "via": "slash",
                }
            )
        session.bump()
    return {"status": status}


def _element(action: Mapping[str, Any]) -> dict[str, Any]:
    element = action.get("element")
    if not isinstance(element, Mapping) or not isinstance(element.get("action_id"), str):
        raise BadAction("an action needs the element pressed, with its action_id")
    kind = element.get("type")
    sent: dict[str, Any] = {
        "action_id": element["action_id"],
        "block_id": _text(action.get("block_id") or "", "block_id", 255),
        "type": kind,
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        sent["text"] = element.get("text")
        if element.get("value") is not None:
            sent["value"] = _text(element["value"], "value", 2000)
        if element.get("style"):
            sent["style"] = element["style"]
    elif kind == "static_select":
        if not isinstance(action.get("selected_option"), Mapping):
            raise BadAction("a select needs its selected_option")
        sent["selected_option"] = dict(action["selected_option"])
    else:
        raise BadAction(f"the page does not press {kind!r} elements")
    return sent


def _block_action(session: Session, user: str, action: Mapping[str, Any]) -> dict[str, Any]:
    stage = session.stage
    where = action.get("where") if isinstance(action.get("where"), Mapping) else {}
    assert isinstance(where, Mapping)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": stage.client._user(user),
        "api_app_id": stage.client.api_app_id,
        "token": "verification-token-unused",
        "trigger_id": stage.standin.trigger_id(user),
        "team": {"id": stage.standin.team_id, "domain": "jitbot-dev"},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [_element(action)],
    }
    if where.get("type") == "message":
        channel, ts = _text(where.get("channel"), "channel", 20), _text(where.get("ts"), "ts", 40)
        message = next((m for m in stage.standin.messages_in(channel) if m["ts"] == ts), None)
        if message is None:
            raise BadAction("that message is gone")
        keep = ("type", "text", "blocks", "ts", "thread_ts", "user", "bot_id", "edited", "files")
        payload["message"] = {k: message[k] for k in keep if message.get(k) not in (None, [])}
        payload["container"] = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        payload["channel"] = {"id": channel, "name": CHANNELS.get(channel, "directmessage" if channel[0] == "D" else "mpdm")}
        payload["response_url"] = _response_url(session, user, channel, ts)
    elif where.get("type") == "ephemeral":
        shown = _text(where.get("id"), "id", 40)
        ephemeral = next((e for e in all_ephemerals(session, user) if e["id"] == shown), None)
        if ephemeral is None:
            raise BadAction("that message is gone")
        channel = str(ephemeral["channel"] or "")
        payload["container"] = {"type": "message", "message_ts": ephemeral["ts"], "channel_id": channel, "is_ephemeral": True}
        payload["channel"] = {"id": channel, "name": CHANNELS.get(channel, "directmessage")}
        # Slack's response_url of an ephemeral replaces or deletes that ephemeral; the stand-in records the answer
        # as a new ephemeral, and the page shows it in place of the one clicked (all_ephemerals).
        payload["response_url"] = _response_url(session, user, channel, None, ephemeral=shown)
    elif where.get("type") == "view":
        view_id = _text(where.get("view_id"), "view_id", 40)
        stored = stage.standin.views.get(view_id)
        if stored is None or stored["user"] != user:
            raise BadAction("that view is not yours")
        payload["container"] = {"type": "view", "view_id": view_id}
        payload["view"] = stored["view"]
    else:
        raise BadAction("an action happens in a message, an ephemeral message or a view")
    body = urlencode({"payload": json.dumps(payload)})
    status, answer = stage.client.raw(body, {"Content-Type": "application/x-www-form-urlencoded", **stage.client.sign(body)})
    return {"status": status, **({"answer": answer} if status != 200 else {})}


def _response_url(session: Session, user: str, channel: str, ts: str | None, *, ephemeral: str | None = None) -> str:
    name = session.new_id("click-")
    if ephemeral is not None:
        with session.lock:
            session.clicked_ephemeral[name] = ephemeral
    return session.stage.standin.response_url(name, user=user, channel=channel, message_ts=ts)


def _submit(session: Session, user: str, view_id: str, values: Any) -> dict[str, Any]:
    stored = session.stage.standin.views.get(view_id)
    if stored is None or stored["user"] != user or stored["kind"] != "modal":
        raise BadAction("that modal is not open for you")
    if not isinstance(values, Mapping) or not all(isinstance(v, Mapping) for v in values.values()):
        raise BadAction("values must be {block_id: {action_id: state}}")
    callback = str(stored["view"].get("callback_id") or "")
    status, answer = session.stage.client.submit_view(user, callback, values, view_id=view_id)
    with session.lock:
        if isinstance(answer, dict) and answer.get("response_action") == "errors":
            session.view_answers[view_id] = {"errors": answer.get("errors") or {}}
        elif isinstance(answer, dict) and answer.get("response_action") == "update":
            session.view_answers[view_id] = {"view": answer.get("view") or {}}
        elif status == 200:
            session.closed.add(view_id)  # an empty answer closes the modal, as in Slack
    session.bump()
    return {"status": status, "answer": answer if isinstance(answer, dict) else None}


def all_ephemerals(session: Session, user: str) -> list[dict[str, Any]]:
    """What only `user` sees: the slash commands' answers and the bot's ephemerals, an answer to a click on one of
    them (replace_original / delete_original) standing in its place."""
    with session.lock:
        mine = [copy.deepcopy(e) for e in session.ephemerals if e["user"] == user]
        clicked = dict(session.clicked_ephemeral)
    for entry in session.stage.standin.ephemerals_for(user):
        mine.append({**entry, "id": f"sb{entry['message_ts']}", "ts": entry["message_ts"]})
    replaced: dict[str, dict[str, Any] | None] = {}  # ephemeral clicked → what stands in its place (None: deleted)
    answers: set[str] = set()
    for entry in mine:
        name = str(entry.get("via") or "").removeprefix("response_url:")
        if name in clicked:
            sent = session.stage.standin.responses_to(name)
            params = sent[0] if sent else {}
            if params.get("delete_original") in (True, "true"):
                replaced[clicked[name]], answers = None, answers | {entry["id"]}
            elif params.get("replace_original") in (True, "true"):
                replaced[clicked[name]], answers = entry, answers | {entry["id"]}
    shown = []
    for entry in mine:
        if entry["id"] in answers:
            continue
        current: dict[str, Any] | None = entry
        while current is not None and current["id"] in replaced:  # replaced, perhaps more than once
            instead = replaced[current["id"]]
            current = {**instead, "ts": current["ts"]} if instead is not None else None
        if current is not None:
            shown.append(current)
    return shown
