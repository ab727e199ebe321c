"""Free text refuses every invisible or control character, yet keeps emoji (their selectors and joiners) usable."""

from __future__ import annotations

import unicodedata

import pytest

from grants.text import refused_character

# Characters that passed the old two-list rule and must not (the security review's list, and their relatives).
INVISIBLE = ["\U000e0041", "\U000e007f", "\u2061", "\u2062", "\u2063", "\u2064", "\u00ad", "\u180e", "\u2028", "\u2029",
             "\u3164", "\u115f", "\u1160", "\uffa0", "\u180b", "\u034f", "\u17b4", "\ufe00", "\U000e0100", "\u206a",
             "\U0001bca0", "\U0001d173", "\ud800"]  # fmt: skip


@pytest.mark.parametrize("char", INVISIBLE)
def test_invisible_characters_are_refused_and_named(char: str) -> None:
    found = refused_character(f"INC-1 fix{char}it")
    assert found is not None and found.startswith(f"U+{ord(char):04X}")


def test_every_format_control_and_separator_character_is_refused() -> None:
    for point in range(0x110000):
        char = chr(point)
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in " \n":
            assert refused_character(f"a{char}b") is not None, f"U+{point:04X}"


@pytest.mark.parametrize(
    "text",
    [
        "INC-1 👩\u200d💻 on it",  # a ZWJ sequence
        "👨\u200d👩\u200d👧 family",
        "🏳\ufe0f\u200d🌈 flag",  # a selector inside a ZWJ sequence
        "❤\ufe0f thanks",  # emoji presentation
        "step 1\ufe0f\u20e3",  # a keycap
        "👍🏽 approved",  # a skin tone
        "café, 日本語, 한국어, emoji 🚀, a\u00a0non-breaking space",
        "line one\nline two",
    ],
)
def test_real_text_with_emoji_passes(text: str) -> None:
    assert refused_character(text) is None


@pytest.mark.parametrize("text", ["fix\u200dit", "🚀\u200d", "\u200d🚀", "a\ufe0f", "\ufe0f🚀", "🚀\ufe01"])
def test_joiners_and_selectors_outside_an_emoji_are_refused(text: str) -> None:
    assert refused_character(text) is not None


def test_a_single_line_field_refuses_a_line_break() -> None:
    assert refused_character("a\nb", multiline=False) is not None and refused_character("a b", multiline=False) is None
