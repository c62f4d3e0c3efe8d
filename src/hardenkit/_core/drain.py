"""How a request cut by the health component's drain_timeout is recognised (standard library only).

At ``drain_timeout`` the health component cancels the requests still running
(``Task.cancel(DRAIN_CANCEL_MESSAGE)`` on asyncio, the request's cancel scope
on trio) and answers 503 for those that had not started their response.
Components inside it (the access log) see only the cancellation: this is how
they tell that cut from a server that gave up on a vanished client, and log
what the client really got.
"""

from __future__ import annotations

import asyncio
import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["DRAIN_CANCEL_MESSAGE", "DRAIN_SCOPE", "cut_by_drain"]

#: The message of the drain's ``Task.cancel()``.
DRAIN_CANCEL_MESSAGE = "hardenkit: drain_timeout passed"

#: Not asyncio (trio): the anyio cancel scope the health component runs the current request in.
DRAIN_SCOPE: ContextVar[Any] = ContextVar("hardenkit.drain_scope", default=None)


def cut_by_drain(error: BaseException) -> bool:
    """True when ``error`` is the drain's cancellation, and nobody else cancelled the task.

    Called where the cancellation is caught, in the cancelled task. Another
    cancellation on top of the drain's (the server's) means the drain will not
    answer: the health component lets that one through.
    """
    if not isinstance(error, asyncio.CancelledError):
        drain_scope = DRAIN_SCOPE.get()
        if drain_scope is None or not drain_scope.cancel_called:
            return False
        import anyio  # only here: on this path a backend is running, and _core stays light

        return isinstance(error, anyio.get_cancelled_exc_class())
    if error.args[:1] != (DRAIN_CANCEL_MESSAGE,):
        return False
    if sys.version_info >= (3, 11):
        try:
            task = asyncio.current_task()
        except RuntimeError:  # pragma: no cover - a CancelledError outside an event loop
            return False
        return task is not None and task.cancelling() <= 1
    return True  # pragma: no cover - Python 3.10 counts no cancellations; the message decides
