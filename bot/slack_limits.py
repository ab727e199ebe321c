"""Slack's documented payload limits, and the clipping that keeps every payload the bot builds inside them."""

from __future__ import annotations

from typing import Any

# https://docs.slack.dev/reference/block-kit (blocks, composition objects, views): Slack rejects the whole
# payload when one of these is exceeded, so the message is never posted or the modal never opens.
SECTION_TEXT = 3000
SECTION_FIELD = 2000
SECTION_FIELDS = 10
CONTEXT_TEXT = 3000
HEADER_TEXT = 150
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS = 100
MODAL_TITLE = 24  # also the submit and close labels
PRIVATE_METADATA = 3000
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
INPUT_LABEL = 2000
INPUT_HINT = 2000
VIEW_ERROR = 2000  # our own cap on a view_submission field error, so it stays readable
MESSAGE_TEXT = 40000  # longer `text` is cut by Slack; we cut it ourselves, at a safe place

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when cut.

    Called on text that is already escaped for mrkdwn, so the cut never splits markup: it backs off to
    before an unclosed `<…>` (a mention or link) or an unfinished `&…;` entity rather than leave a
    stray `<` that Slack would read as the start of a link."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 6:  # the longest entity we write is `&amp;`
        cut = cut[:amp]
    return cut + ELLIPSIS


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object; Slack refuses an empty one, so an empty text becomes a dash."""
    return {"type": "plain_text", "text": clip(text, limit) or "—"}
