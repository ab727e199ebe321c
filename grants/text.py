"""Free text people type (reasons, notes): refuse characters that hide or disguise what a text says."""

from __future__ import annotations

import unicodedata

# What is refused, by Unicode category: Cc (C0 with NUL, DEL, C1), Cf (format characters: bidi overrides such as
# U+202E that turn "dm-ti" into "it-md", zero-width spaces and joiners, the soft hyphen, invisible math operators
# U+2061-2064, the tag characters U+E0000-E007F that smuggle ASCII invisibly), Zl and Zp (U+2028/U+2029 break lines
# where no line break is shown to be) and Cs (a lone surrogate is not text and cannot even be stored as UTF-8).
# Each makes a reason read differently from what is stored, audited and shown to approvers.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Unicode's Default_Ignorable_Code_Point characters outside those categories: letters and marks that render as
# nothing (Hangul fillers U+115F, U+1160, U+3164, U+FFA0; the combining grapheme joiner; Khmer inherent vowels;
# Mongolian variation selectors; the variation selectors U+FE00-FE0F and U+E0100-E01EF) and reserved ranges.
DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)
# Emoji are real text and people paste them: the emoji presentation selectors U+FE0F/U+FE0E right after a symbol
# (or a keycap's digit, # or *), and U+200D ZERO WIDTH JOINER between two symbols (the ZWJ sequences of emoji such
# as the family or the technologist) are allowed there and only there, where they change how one emoji is drawn
# and cannot hide or split a word. Every other variation selector, and a joiner anywhere else, is refused.
EMOJI_SELECTORS = frozenset("\ufe0e\ufe0f")
ZWJ = "\u200d"
KEYCAP_BASES = frozenset("0123456789#*")
SKIN_TONES = range(0x1F3FB, 0x1F400)  # emoji modifiers (category Sk) that may sit between an emoji and a joiner
ALLOWED_WHITESPACE = frozenset(" \n")  # a tab or CR is a control character; spaces and line breaks are text


class UnsafeText(ValueError):
    """A text with a character that is refused; the message names it and says what to do."""


def refused_character(text: str, multiline: bool = True) -> str | None:
    """The first refused character of `text` described for a person (e.g. `U+202E (right-to-left override)`), or None."""
    for i, char in enumerate(text):
        if char in ALLOWED_WHITESPACE and (multiline or char == " "):
            continue
        if _invisible(char) and not _part_of_emoji(text, i):
            name = unicodedata.name(char, "") or ("control character" if unicodedata.category(char) == "Cc" else "unnamed")
            return f"U+{ord(char):04X} ({name.lower()})"
    return None


def _invisible(char: str) -> bool:
    if unicodedata.category(char) in REFUSED_CATEGORIES:
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in DEFAULT_IGNORABLE)


def _emoji(char: str) -> bool:
    return unicodedata.category(char) == "So" or ord(char) in SKIN_TONES


def _part_of_emoji(text: str, i: int) -> bool:
    """Is text[i] a presentation selector or joiner inside an emoji, where it is drawn as part of that emoji?"""
    char, before = text[i], text[i - 1] if i > 0 else ""
    if char in EMOJI_SELECTORS:
        return bool(before) and (_emoji(before) or before in KEYCAP_BASES)
    if char == ZWJ:
        after = text[i + 1] if i + 1 < len(text) else ""
        if before in EMOJI_SELECTORS and i > 1:
            before = text[i - 2]
        return bool(before) and bool(after) and _emoji(before) and _emoji(after)
    return False


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
