"""Human durations such as `90s`, `15m`, `1h30m`, `2d`: parsing, formatting, and the catalog's `Duration` type."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

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


class Duration(timedelta):
    """A catalog duration: parsed once, when the catalog is validated, into a `timedelta`, whose `str()` is the text
    as written (`24h` stays `24h` in messages and in the trail, where a `timedelta` would print `1 day, 0:00:00`)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Duration:
        parsed = parse_duration(text)  # DurationError: pydantic reports it as the field's value error
        made = super().__new__(cls, seconds=parsed.total_seconds())
        made.text = text
        return made

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __reduce__(self) -> tuple[type[Duration], tuple[str]]:
        return Duration, (self.text,)  # timedelta's own would call Duration(days, seconds, microseconds)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json")
        )

    @classmethod
    def _validate(cls, value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        if not isinstance(value, str):  # as a string field refused it: `30` is not `30s` (or 30 of what?)
            raise PydanticCustomError("string_type", "Input should be a valid string")
        return cls(value)
