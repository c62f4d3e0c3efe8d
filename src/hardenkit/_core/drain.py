"""How a request cut by the health component's drain_timeout is recognised (standard library only).

At ``drain_timeout`` the health component cancels the requests still running
(``Task.cancel(DRAIN_CANCEL_MESSAGE)`` on asyncio) and answers 503 for those
that had not started their response. Components inside it (the access log) see
only the cancellation: this is how they tell that cut from a server that gave up
on a vanished client, and log what the client really got.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["DRAIN_CANCEL_MESSAGE", "cut_by_drain"]

#: The message of the drain's ``Task.cancel()``.
DRAIN_CANCEL_MESSAGE = "hardenkit: drain_timeout passed"


def cut_by_drain(error: BaseException) -> bool:
    """True when ``error`` is the drain's cancellation, and nobody else cancelled the task.

    Called where the cancellation is caught, in the cancelled task. Another
    cancellation on top of the drain's (the server's) means the drain will not
    answer: the health component lets that one through.
    """
    if not isinstance(error, asyncio.CancelledError) or error.args[:1] != (DRAIN_CANCEL_MESSAGE,):
        return False
    if sys.version_info >= (3, 11):
        try:
            task = asyncio.current_task()
        except RuntimeError:  # pragma: no cover - a CancelledError outside an event loop
            return False
        return task is not None and task.cancelling() <= 1
    return True  # pragma: no cover - Python 3.10 counts no cancellations; the message decides
