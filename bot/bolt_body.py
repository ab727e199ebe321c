"""The body Bolt sees: a slash command's form spelled so that Bolt's parser cannot take it for an interaction."""

from __future__ import annotations

from urllib.parse import parse_qsl

from slack_sdk.signature import SignatureVerifier


def for_bolt(body: bytes, content_type: str, timestamp: str, signer: SignatureVerifier) -> tuple[bytes, str] | None:
    """The re-spelled body and its signature, or None when Bolt reads `body` correctly as it is.

    Bolt (slack_bolt.request.internals.parse_body, 1.30) reads any form body containing the substring `payload` as an
    interaction and, without a `payload` field, as an empty body: `/elevate s 5m replay stuck payloads`, or any command
    typed in a channel named payload-team, answers 404. Spelling the letter `a` as `%61` there decodes to the same
    form (in keys and values alike) and hides the substring. The gate verified Slack's signature over the original
    body; the re-spelled one is signed again with the same secret and timestamp so Bolt's own check still holds."""
    if "application/json" in content_type or body.startswith(b"{") or b"payload" not in body:
        return None
    try:
        keys = {key for key, _ in parse_qsl(body.decode("utf-8"), keep_blank_values=True)}
    except UnicodeDecodeError:
        return None  # the gate refuses such a body before Bolt sees it
    if "payload" in keys:
        return None  # a real interaction: Bolt reads it as meant
    spelled = body.replace(b"payload", b"p%61yload")
    signature = signer.generate_signature(timestamp=timestamp, body=spelled)
    assert signature is not None  # a timestamp is given
    return spelled, signature
