"""Checks of a Slack payload against slack_sdk's own models and Slack's documented limits that slack_sdk skips."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block, Option
from slack_sdk.models.views import View

# What a `<` may legitimately open in mrkdwn: a user, channel or user-group mention, a special mention or a link.
_MARKUP = re.compile(
    r"<(@[UW][A-Z0-9]+|#C[A-Z0-9]+(\|[^<>]*)?|!subteam\^S[A-Z0-9]+|!(here|channel|everyone)|https?://[^<>|\s]+(\|[^<>]*)?)>"
)


def raw_angle_brackets(text: str) -> list[str]:
    """The `<` in `text` that do not open valid Slack markup: real Slack would read each as a broken link."""
    rest = _MARKUP.sub("", text)
    return [rest[max(i - 20, 0) : i + 20] for i, c in enumerate(rest) if c == "<"]


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
            yield path, node
        for key, value in node.items():
            yield from _texts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{path}[{i}]")


def _at_most(problems: list[str], where: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        problems.append(f"{where}: {len(value)} characters > {limit}")


def _block_problems(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    kind = block.get("type")
    if kind == "section":
        _at_most(problems, f"{where}.text", (block.get("text") or {}).get("text"), 3000)
        fields = block.get("fields") or []
        if len(fields) > 10:
            problems.append(f"{where}.fields: {len(fields)} > 10")
        for i, item in enumerate(fields):
            _at_most(problems, f"{where}.fields[{i}]", item.get("text"), 2000)
    elif kind == "header":
        _at_most(problems, f"{where}.text", block["text"]["text"], 150)
    elif kind == "context":
        if len(block["elements"]) > 10:
            problems.append(f"{where}.elements: > 10")
        for i, item in enumerate(block["elements"]):
            _at_most(problems, f"{where}.elements[{i}]", item.get("text"), 3000)
    elif kind == "input":
        _at_most(problems, f"{where}.label", block["label"]["text"], 2000)
        _at_most(problems, f"{where}.hint", (block.get("hint") or {}).get("text"), 2000)
    elements = [*(block.get("elements") or []), block.get("accessory") or {}, block.get("element") or {}]
    for i, element in enumerate(elements):
        if element.get("type") == "button":
            _at_most(problems, f"{where}.button[{i}].text", element["text"]["text"], 75)
            _at_most(problems, f"{where}.button[{i}].value", element.get("value"), 2000)
        options = element.get("options") or []
        if len(options) > 100:
            problems.append(f"{where}.options: {len(options)} > 100")
        for j, option in enumerate(options):
            problems += option_problems(option, f"{where}.options[{j}]")
    for text_path, text in _texts(block, where):
        if not text["text"]:
            problems.append(f"{text_path}: empty text (Slack refuses it)")
        if text["type"] == "mrkdwn":
            problems += [f"{text_path}: raw `<` in …{snippet}…" for snippet in raw_angle_brackets(text["text"])]
    return problems


def option_problems(option: dict[str, Any], where: str = "option") -> list[str]:
    problems: list[str] = []
    _at_most(problems, f"{where}.text", option["text"]["text"], 75)
    _at_most(problems, f"{where}.description", (option.get("description") or {}).get("text"), 75)
    _at_most(problems, f"{where}.value", option.get("value"), 150)
    problems += [f"{p}: empty text" for p, t in _texts(option, where) if not t["text"]]
    return problems


def check_options_response(response: dict[str, Any]) -> None:
    """The bot's answer to an external select's block_suggestion: `{"options": [...]}`, at most 100, each option
    parsed and validated by slack_sdk's own `Option` (and unchanged by the round trip: no key it does not know)."""
    assert set(response) == {"options"}, f"an options response holds `options` only: {sorted(response)}"
    options = response["options"]
    assert isinstance(options, list) and len(options) <= 100, f"{len(options)} options; at most 100"
    problems: list[str] = []
    for i, option in enumerate(options):
        parsed = Option(**option)
        parsed.validate_json()
        assert parsed.to_dict() == option, option
        problems += option_problems(option, f"options[{i}]")
    assert not problems, "\n".join(problems)


def check_blocks(blocks: list[dict[str, Any]], most: int = 50) -> None:
    """Message blocks: each parsed and validated by slack_sdk, then Slack's limits that slack_sdk does not check."""
    assert 0 < len(blocks) <= most, f"{len(blocks)} blocks; at most {most}"
    problems: list[str] = []
    for i, block in enumerate(blocks):
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        problems += _block_problems(block, f"blocks[{i}]")
    assert not problems, "\n".join(problems)


def check_view(view: dict[str, Any]) -> None:
    """A modal or Home view: slack_sdk's View model, every block, the title, buttons and private_metadata."""
    View(**view).validate_json()
    check_blocks(view["blocks"], most=100)
    problems: list[str] = []
    for key in ("title", "submit", "close"):
        _at_most(problems, key, (view.get(key) or {}).get("text"), 24)
    _at_most(problems, "private_metadata", view.get("private_metadata"), 3000)
    assert not problems, "\n".join(problems)
