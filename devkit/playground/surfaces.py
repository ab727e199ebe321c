"""What one person of the page sees, built only from what the bot sent (the stand-in's records) and Slack's client side."""

from __future__ import annotations

from typing import Any

from devkit.playground.actions import all_ephemerals
from devkit.playground.session import APPROVALS, CHANNELS, GENERAL, Session

# The people of the page: the demo's requester, two approvers of payments-read, its auditor.
PEOPLE = [
    {"id": "U0DEV0001", "name": "Dana", "role": "requester"},
    {"id": "U0APPR001", "name": "Ari", "role": "approver"},
    {"id": "U0APPR002", "name": "Ben", "role": "approver"},
    {"id": "U0AUDIT01", "name": "Audrey", "role": "auditor"},
]
PERSONAS = frozenset(p["id"] for p in PEOPLE)
_MESSAGE_KEYS = ("ts", "text", "blocks", "thread_ts", "edited", "files")


def _message(message: dict[str, Any]) -> dict[str, Any]:
    shown = {k: message[k] for k in _MESSAGE_KEYS if message.get(k) not in (None, [])}
    shown["files"] = [{k: f.get(k) for k in ("id", "name", "title", "size")} for f in message.get("files") or []]
    return shown


def _conversation(session: Session, user: str, channel: str, name: str, kind: str) -> dict[str, Any]:
    messages = session.stage.standin.messages_in(channel)
    top = [_message(m) for m in messages if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    for parent in top:
        parent["replies"] = [_message(m) for m in messages if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]]
    ephemerals = [
        {k: e.get(k) for k in ("id", "ts", "text", "blocks")}
        for e in all_ephemerals(session, user)
        if e.get("channel") == channel
    ]
    return {"id": channel, "name": name, "kind": kind, "messages": top, "ephemerals": ephemerals}


def state_for(session: Session, user: str) -> dict[str, Any]:
    """The page's whole state for `user`: conversations, Home, the open modal, credentials, the audit trail."""
    standin = session.stage.standin
    names = dict(standin.users)
    conversations = [
        _conversation(session, user, APPROVALS, "#" + CHANNELS[APPROVALS], "channel"),
        _conversation(session, user, GENERAL, "#" + CHANNELS[GENERAL], "channel"),
        _conversation(session, user, standin.dm_channel_id(user), "jitbot", "dm"),
    ]
    for channel, members in sorted(standin.conversations_of(user).items()):
        if len(members) > 1:
            others = ", ".join(names.get(m, m) for m in members if m != user)
            conversations.append(_conversation(session, user, channel, f"jitbot, {others}", "group"))
    home = standin.views.get("VHOME" + user)
    with session.lock:
        credentials = [c.shown() for c in session.credentials.values() if c.user == user]
        answers = {k: dict(v) for k, v in session.view_answers.items()}
        closed = set(session.closed)
    modal = None
    for stored in standin.views.values():  # the newest modal of this person still open
        if stored["kind"] == "modal" and stored["user"] == user and stored["id"] not in closed:
            answer = answers.get(stored["id"], {})
            view = answer.get("view") or stored["view"]
            modal = {"id": stored["id"], "view": view, "errors": answer.get("errors") or {}, "replaced": "view" in answer}
    return {
        "generation": session.generation,
        "me": user,
        "people": PEOPLE,
        "names": names,
        "command": session.command,
        "conversations": conversations,
        "home": home["view"] if home else None,
        "modal": modal,
        "credentials": credentials,
        "audit": session.audit(),
    }


def file_for(session: Session, user: str, file_id: str) -> tuple[str, bytes] | None:
    """A file the bot shared where `user` can see it: (name, content)."""
    record = session.stage.standin.files.get(file_id)
    if record is None or record.get("content") is None:
        return None
    visible = {APPROVALS, GENERAL, session.stage.standin.dm_channel_id(user), *session.stage.standin.conversations_of(user)}
    if record.get("channel") not in visible:
        return None
    return str(record["name"]), bytes(record["content"])
