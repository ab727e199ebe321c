"""Logging as one JSON object per line; library loggers that could echo message bodies are kept quiet."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["trace"] = safe_trace(record.exc_info[1]) if record.exc_info[1] is not None else ""
        return json.dumps(entry, default=str)


# Database errors quote what they were given: SQLAlchemy appends the parameters (hidden by the engine's
# hide_parameters), and PostgreSQL's DETAIL says "Failing row contains (…)", reason and all. Their messages
# are withheld from traces; the exception types, the SQLSTATE and the stack are kept, which is what a fix needs.
_WITHHELD_MODULES = ("sqlalchemy", "psycopg", "sqlite3")


def _withheld(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in _WITHHELD_MODULES


def safe_trace(error: BaseException) -> str:
    """A trace like Python's, with the messages of database errors (in the whole chain) replaced."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:\n\n"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another exception occurred:\n\n"
        else:
            current = None
    parts = []
    for exc, _link in reversed(chain):
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if _withheld(exc):
            code = getattr(getattr(exc, "orig", exc), "sqlstate", None)
            message = "(message withheld: database errors can quote user data)" + (f" SQLSTATE {code}" if code else "")
        else:
            message = str(exc)
        stack = "".join(traceback.format_tb(exc.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{stack}{name}: {message}\n")
    links = [link for _, link in chain][1:]
    out = parts[0]
    for part, link in zip(parts[1:], reversed(links), strict=False):
        out += "\n" + link + part
    return out.rstrip("\n")


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG these log whole request and response bodies, which can carry tokens.
    for noisy in ("slack_sdk", "slack_bolt", "hvac", "urllib3", "apscheduler", "waitress", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
