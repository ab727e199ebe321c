"""Vault's RFC 3339 times (as in KV metadata) are read whatever their number of fraction digits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from grants.adapters.vault_anchor import vault_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-07T20:43:10.20649Z", datetime(2026, 12, 7, 20, 43, 10, 206490, tzinfo=UTC)),  # a trailing zero dropped
        ("2026-12-07T20:43:10.206490123Z", datetime(2026, 12, 7, 20, 43, 10, 206490, tzinfo=UTC)),
        ("2026-12-07T20:43:10Z", datetime(2026, 12, 7, 20, 43, 10, tzinfo=UTC)),
        ("2026-12-07T21:43:10.5+01:00", datetime(2026, 12, 7, 20, 43, 10, 500000, tzinfo=UTC)),
    ],
)
def test_vault_times_of_every_precision(text: str, expected: datetime) -> None:
    parsed = vault_time(text)
    assert parsed == expected and parsed.tzinfo is UTC
