"""The dev kit's TOTP (devkit/stepup.py, what `jitbot demo` signs approvers in with) agrees with pyotp's RFC 6238."""

from __future__ import annotations

import base64
import os

import pyotp
import pytest

from devkit.stepup import totp_at


@pytest.mark.parametrize("at", [0, 59, 1_111_111_109, 1_234_567_890, 2_000_000_000.5])
def test_codes_match_pyotp(at: float) -> None:
    secret = pyotp.random_base32(32)
    assert totp_at(secret, at) == pyotp.TOTP(secret).at(at)


def test_a_secret_without_padding_and_in_lower_case_gives_the_same_code() -> None:
    padded = base64.b32encode(os.urandom(18)).decode()  # 18 bytes: base32 pads them with "===", a URL carries none
    assert padded.endswith("===")
    assert totp_at(padded.rstrip("=").lower(), 1_700_000_000) == pyotp.TOTP(padded).at(1_700_000_000)
