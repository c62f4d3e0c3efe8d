"""Graceful shutdown machinery: the process-wide lifecycle, signal hooks, cancelling stragglers.

Standard library and anyio only.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio

from .._core.drain import DRAIN_CANCEL_MESSAGE
from ..errors import ConfigurationError

SignalHandler = Callable[[int, "FrameType | None"], Any]


class _Loop:
    """Schedules callbacks on the running event loop, from the loop or from a signal handler."""

    def __init__(
        self, soon: Callable[[Callable[[], Any]], Any], later: Callable[[float, Callable[[], Any]], Any]
    ):
        self.soon = soon  # safe to call from a signal handler
        self.later = later  # call from the loop only

    @classmethod
    def current(cls) -> _Loop | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return cls(loop.call_soon_threadsafe, loop.call_later)
        if "trio" in sys.modules:
            import trio

            token = trio.lowlevel.current_trio_token()

            def later(delay: float, callback: Callable[[], Any]) -> None:
                async def sleeper() -> None:
                    await trio.sleep(delay)
                    callback()

                trio.lowlevel.spawn_system_task(sleeper)

            return cls(token.run_sync_soon, later)
        return None  # pragma: no cover - anyio runs on asyncio or trio


class _Lifecycle:
    """Process-wide state of one middleware: draining, in-flight requests, hooked signals."""

    def __init__(self) -> None:
        self.draining_since: float | None = None
        self.inflight = 0
        self.scopes: set[anyio.CancelScope] = set()  # in-flight requests on trio
        self.tasks: set[asyncio.Task[Any]] = set()  # in-flight requests on asyncio
        self.cut: set[asyncio.Task[Any]] = set()  # tasks cancelled by drain_timeout
        self.drain_deadline: float | None = None
        self.hooked: dict[int, tuple[SignalHandler, Any]] = {}  # sig -> (our handler, previous handler)
        self.released: set[int] = set()
        self.loop: _Loop | None = None


_CancelledError = asyncio.CancelledError
#: The message of the drain's Task.cancel(); on Python 3.10 it is how a caught CancelledError is told apart.
_DRAIN_CANCEL = DRAIN_CANCEL_MESSAGE  # shared: the access log tells a drain cut by it


def _current_task() -> asyncio.Task[Any]:
    """The running asyncio task; RuntimeError when none (trio, or outside a task)."""
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - ASGI servers call apps from a task
        raise RuntimeError("no current task")
    return task


if sys.version_info >= (3, 11):

    def _uncancel(task: asyncio.Task[Any]) -> int:
        return task.uncancel()

    def _is_drain_cancel(error: BaseException) -> bool:
        return True  # Task.cancelling() tells the rest apart (see _uncancel)

    def _cancel_requested() -> bool:
        """Whether someone cancelled the running asyncio task (False on trio: its cancels are trio's own)."""
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return False
        return task is not None and task.cancelling() > 0

else:  # pragma: no cover - Python 3.10 has no cancellation count (Task.cancelling/uncancel)

    def _uncancel(task: asyncio.Task[Any]) -> int:
        # A caught CancelledError leaves nothing behind on 3.10; nobody else's cancel can be counted
        # either: one that landed in the same loop iteration as ours was folded into ours by asyncio.
        return 0

    def _is_drain_cancel(error: BaseException) -> bool:
        # The server's cancel that came first (even folded with ours) carries its own message.
        return bool(error.args) and error.args[0] == _DRAIN_CANCEL

    def _cancel_requested() -> bool:
        # No cancellation count to tell a stray CancelledError from a real cancel: assume real.
        try:
            asyncio.current_task()
        except RuntimeError:
            return False
        return True


def _signal_number(value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(signal.Signals(value))
    if isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        found = getattr(signal.Signals, name, None)
        if found is not None:
            return int(found)
    raise ConfigurationError(
        f"HealthProbeMiddleware: shutdown_signals: {value!r} is not a signal; write for example ['SIGTERM']"
    )
