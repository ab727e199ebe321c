"""Child processes that die with the process that started them, even when it is killed with SIGKILL (Linux)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Looked up once, before any fork: the forked child only calls the function, it does not load or resolve anything.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for subprocess.Popen: the kernel sends the child SIGKILL when its parent ends, however it ends.

    Why: a demo or test stopped by SIGKILL runs no cleanup, and an orphaned `bao server -dev` would hold its ports
    (and a root token) until someone finds it. Linux ties the signal to the thread that forked the child, so start
    long-lived children from a thread that lives as long as they should (the main thread). None elsewhere than Linux."""
    if _prctl is None:
        return None
    prctl = _prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would ever signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return arm
