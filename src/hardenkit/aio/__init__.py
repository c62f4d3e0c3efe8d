"""Call sync code from async code (and back) without starving or blocking the loop.

::

    from hardenkit.aio import to_async

    @to_async(limiter="db", timeout=5)
    def load_user(user_id: int) -> dict[str, object]:
        return db.fetch(user_id)          # a blocking driver call, run in a worker thread

    user = await load_user(42)            # same signature, now awaitable

* Each named limiter (``limiter="db"``) is its own bounded pool of worker
  threads, so one slow dependency cannot take the threads every other one needs;
  :func:`limiter_stats` reports them (usable as a health check value).
* ``timeout=`` answers the caller with :class:`~hardenkit.errors.CallTimeout` (a
  ``TimeoutError``) on time, while the thread keeps its limiter token until it
  really ends: hung calls can never run more threads than the limiter allows.
* contextvars (the request id, logging context) are copied into the thread.

Everything works under asyncio and trio. This module imports anyio and the
standard library only (no starlette, no limits), so scripts can use it cheaply.

Modules: ``limiters`` (named thread pools, configure_limiter, limiter_stats),
``calls`` (to_async, run_sync, AsyncWrapper), ``gather`` (gather_limited).
"""

from __future__ import annotations

from .calls import AsyncWrapper, run_sync, to_async
from .gather import gather_limited
from .limiters import DEFAULT_LIMITER, configure_limiter, limiter_stats

__all__ = [
    "DEFAULT_LIMITER",
    "AsyncWrapper",
    "configure_limiter",
    "gather_limited",
    "limiter_stats",
    "run_sync",
    "to_async",
]
