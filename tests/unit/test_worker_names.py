"""Worker names fit the 64 characters the lease columns keep, and long pod names running as pid 1 stay apart."""

from __future__ import annotations

import os

import pytest

from grants import claiming


@pytest.mark.parametrize(
    "host",
    ["worker-1", "jitbot-worker-5d8f7c9b6d-x2x4q", "jitbot-worker-5d8f7c9b6d-x2x4r", "a" * 63],
)
def test_a_process_name_with_the_longest_suffix_fits_and_keeps_the_pid(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setattr(claiming.socket, "gethostname", lambda: host)
    name = claiming.process_name()
    assert name.endswith(f"-{os.getpid()}")
    assert len(f"{name}-audit-stream-drain:webhook") <= 64  # the longest worker name built on it
    if len(host) <= 24:
        assert name.startswith(host)


def test_two_long_pod_names_that_share_their_start_never_share_a_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    names = set()
    for pod in ("jitbot-worker-5d8f7c9b6d-x2x4q", "jitbot-worker-5d8f7c9b6d-x2x4r"):
        monkeypatch.setattr(claiming.socket, "gethostname", lambda pod=pod: pod)
        names.add(claiming.process_name())
    assert len(names) == 2
