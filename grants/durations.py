"""Parsing and formatting of human durations such as `90s`, `15m`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)  # ASCII: no other scripts' digits
MAX_TEXT = 24  # "365d" needs 4; a longer text is refused before int() (which refuses > 4,300 digits with a ValueError)
DURATION_EXAMPLES = "90s, 15m, 1h, 1h30m or 2d"
MAX_SECONDS = 365 * 86400


class DurationError(ValueError):
    """A text that is not a duration."""


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text into a positive timedelta; raise DurationError otherwise."""
    if text.strip().startswith("-"):
        raise DurationError(f"`{text[:MAX_TEXT]}` is negative; a duration must be positive, e.g. {DURATION_EXAMPLES}")
    if len(text.strip()) > MAX_TEXT:
        raise DurationError(
            f"`{text[:MAX_TEXT]}…` is too long to be a duration; durations go up to 365d, e.g. {DURATION_EXAMPLES}"
        )
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise DurationError(f"`{text}` is not a duration; use a number with a unit, e.g. {DURATION_EXAMPLES}")
    seconds = sum(int(v) * s for v, s in zip(match.groups(), _UNITS.values(), strict=False) if v)
    if seconds > MAX_SECONDS:
        raise DurationError(f"`{text}` is too long; durations go up to 365d")
    if seconds <= 0:
        raise DurationError(f"`{text}` is zero; a duration must be positive, e.g. {DURATION_EXAMPLES}")
    return timedelta(seconds=seconds)


def looks_like_duration(token: str) -> bool:
    """True when a token was meant as a duration (starts with a digit, or a sign and a digit), valid or not:
    `-5m` is then refused as a duration instead of silently becoming part of the reason."""
    unsigned = token[1:] if token[:1] in ("-", "+") else token
    return bool(unsigned) and unsigned[0].isdigit()


def format_duration(value: timedelta) -> str:
    """Render a timedelta compactly, e.g. `1h30m`; sub-second parts are dropped."""
    remaining = int(value.total_seconds())
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
