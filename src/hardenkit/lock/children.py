"""What a command started under a lock keeps of it when the process that took the lock dies.

Standard library only; ``subprocess`` and ``ctypes`` are imported when a command is started, not before.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(then: Callable[[], object] | None = None) -> Callable[[], object] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when the thread that started it dies (Linux).

    For locks that the child cannot inherit (a soft marker names the process that made it, and is broken
    once that process is gone): the command must not outlive the lock. Elsewhere, or when libc cannot be
    loaded, ``then`` is returned unchanged.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover - PR_SET_PDEATHSIG is Linux only
        return then
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return then
    parent = os.getpid()

    def preexec() -> None:  # pragma: no cover - runs in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return preexec
