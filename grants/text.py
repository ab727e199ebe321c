"""Free text people type (reasons, notes): refuse characters that hide or disguise what a text says."""

from __future__ import annotations

import unicodedata

# Bidi controls reorder what a reader sees (U+202E turns "dm-ti" into "it-md"); zero-width characters
# split or join words invisibly. Either makes a reason read differently from what is stored and audited.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
ALLOWED_WHITESPACE = frozenset(" \n")  # a tab or CR is a control character; spaces and line breaks are text


class UnsafeText(ValueError):
    """A text with a character that is refused; the message names it and says what to do."""


def refused_character(text: str, multiline: bool = True) -> str | None:
    """The first refused character of `text` described for a person (e.g. `U+202E (right-to-left override)`), or None."""
    for char in text:
        if char in ALLOWED_WHITESPACE and (multiline or char == " "):
            continue
        category = unicodedata.category(char)
        # Cc covers C0 (NUL included), DEL and C1; Cf covers the bidi and zero-width formats and the like.
        if category == "Cc" or char in BIDI_CONTROLS or char in ZERO_WIDTH:
            name = unicodedata.name(char, "control character").lower()
            return f"U+{ord(char):04X} ({name})"
    return None


def require_plain(text: str, what: str = "the text", multiline: bool = True) -> str:
    """`text` unchanged, or UnsafeText naming the first refused character."""
    bad = refused_character(text, multiline)
    if bad is not None:
        raise UnsafeText(require_plain_message(bad, what))
    return text


def require_plain_message(bad: str, what: str = "the text") -> str:
    """What a person is told when `what` contains the refused character `bad`."""
    return (
        f"{what[:1].upper() + what[1:]} contains {bad}, an invisible or control character that could make it read "
        "differently from what it is. Retype it in plain characters (copying from a document can bring these along)."
    )
