"""How Slack shows things: Block Kit and markup as the plain text a person reads; DM channel IDs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
MENTION = re.compile(r"@([UW][A-Z0-9]+)\b")


def plain_text(obj: Any) -> str:
    """The text of a text object (or a bare string); "" for anything else."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        inner = obj.get("text")
        return inner if isinstance(inner, str) else plain_text(inner) if inner else ""
    return ""


def _rich_text(obj: Any) -> str:
    if isinstance(obj, Mapping):
        if obj.get("type") in ("text", "link"):
            return str(obj.get("text") or obj.get("url") or "")
        if obj.get("type") in ("user", "usergroup", "channel"):
            return "@" + str(obj.get("user_id") or obj.get("usergroup_id") or obj.get("channel_id"))
        return "".join(_rich_text(e) for e in obj.get("elements") or [])
    return ""


def _element(element: Mapping[str, Any]) -> str:
    kind = element.get("type", "")
    if kind == "button":
        return f"[{plain_text(element.get('text'))}]"
    if "select" in kind or kind in ("datepicker", "timepicker", "radio_buttons", "checkboxes"):
        initial = element.get("initial_option")
        shown = plain_text(initial.get("text")) if isinstance(initial, Mapping) else plain_text(element.get("placeholder"))
        return f"[{shown or kind} ▾]"
    if kind == "plain_text_input":
        return f"[{element.get('initial_value') or plain_text(element.get('placeholder')) or '…'}]"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    return plain_text(element)


def render_blocks(blocks: Iterable[Mapping[str, Any]] | None) -> str:
    """Block Kit as the plain text a person would read: section/context text, buttons as "[Approve] [Deny]"."""
    lines: list[str] = []
    for block in blocks or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            line = plain_text(block.get("text"))
            fields = [plain_text(f) for f in block.get("fields") or []]
            if fields:
                line = "\n".join([line, *fields]) if line else "\n".join(fields)
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") != "image":
                line = f"{line} {_element(accessory)}".strip()
            lines.append(line)
        elif kind == "context":
            lines.append(" ".join(t for t in (_element(e) for e in block.get("elements") or []) if t))
        elif kind == "actions":
            lines.append(" ".join(_element(e) for e in block.get("elements") or []))
        elif kind == "input":
            element = block.get("element") or {}
            lines.append(f"{plain_text(block.get('label'))}: {_element(element)}")
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "rich_text":
            lines.append(_rich_text(block))
    return "\n".join(line for line in lines if line)


def humanize(text: str) -> str:
    """Slack markup as displayed: <@U1> → @U1, <!here> → @here, <url|label> → label, <!date^…|fallback> → fallback."""

    def shown(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if label is not None and not target.startswith(("@", "#")):
            return label
        if target[:1] in "@#":
            return target[0] + (label or target[1:])
        return "@" + target[1:].split("^")[0] if target.startswith("!") else target

    return MARKUP.sub(shown, text)


def message_text(message: Mapping[str, Any]) -> str:
    """What a message shows: its rendered blocks when it has any, else its text."""
    return render_blocks(message.get("blocks")) or str(message.get("text") or "")


def dm_channel_id(users: str | Iterable[str]) -> str:
    """The deterministic DM ("D…", one user) or group DM ("G…", several) channel ID for a set of users."""
    raw = users.split(",") if isinstance(users, str) else list(users)
    members = sorted({user.strip() for user in raw if user.strip()})
    if len(members) == 1:
        return "D" + members[0][1:].upper()
    return "G" + hashlib.sha256(",".join(members).encode()).hexdigest()[:10].upper()
