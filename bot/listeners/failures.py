"""What a listener catches when a Slack call after the ack fails, and how it names the failure in a log line."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError, SlackClientError

# SlackApiError: Slack answered {"ok": false} (expired_trigger_id, invalid_arguments…); the other
# SlackClientErrors and OSError: the request did not get through at all.
SLACK_FAILURES: tuple[type[Exception], ...] = (SlackClientError, OSError)


def slack_error_code(error: Exception) -> str:
    """Slack's error code (`expired_trigger_id`), or the exception's type: never the response body."""
    if isinstance(error, SlackApiError):
        response = error.response
        code = response.get("error") if hasattr(response, "get") else None
        return str(code or f"HTTP {getattr(response, 'status_code', '?')}")
    return type(error).__name__
