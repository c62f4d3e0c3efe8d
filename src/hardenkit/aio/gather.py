"""Run many calls with bounded concurrency: :func:`gather_limited`.

anyio and the standard library only.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ..errors import ConfigurationError
from .calls import _NOT_WRAPPED, _is_async_callable
from .limiters import DEFAULT_LIMITER, _check_total, _named_pool

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

Call = Awaitable[T] | Callable[[], Awaitable[T]] | Callable[[], T]
# Async calls only: one union with Callable[[], T] would let T be both the
# coroutine and its result, and mypy would infer Never for ``partial(fetch, 1)``.
AsyncCall = Awaitable[T] | Callable[[], Awaitable[T]]


def _close_unstarted(calls: Iterator[object]) -> None:
    for call in calls:
        if inspect.iscoroutine(call):
            call.close()  # never awaited: close it, or Python warns "never awaited"


# Overloads for type checkers, most precise first: all async calls, then sync
# callables (with or without async ones of the same result type), then any mix.
@overload
async def gather_limited(
    *calls: AsyncCall[T], limit: int, return_exceptions: Literal[False] = False
) -> list[T]: ...


@overload
async def gather_limited(
    *calls: AsyncCall[T], limit: int, return_exceptions: Literal[True]
) -> list[T | BaseException]: ...


@overload
async def gather_limited(
    *calls: Call[T], limit: int, return_exceptions: Literal[False] = False
) -> list[T]: ...


@overload
async def gather_limited(
    *calls: Call[T], limit: int, return_exceptions: Literal[True]
) -> list[T | BaseException]: ...


@overload
async def gather_limited(
    *calls: Awaitable[Any] | Callable[[], Any], limit: int, return_exceptions: bool = False
) -> list[Any]: ...


async def gather_limited(
    *calls: Call[T], limit: int, return_exceptions: bool = False
) -> list[T] | list[T | BaseException]:
    """Run ``calls`` with at most ``limit`` of them at a time; return their results in order.

    A call is an awaitable (a coroutine object, started only when its turn comes),
    an async callable (called when its turn comes), or a sync callable (run in a
    worker thread of hardenkit's default limiter; if it returns an awaitable, that
    is awaited). On the first error the running calls are cancelled, the
    unstarted ones never start, and the error is raised as is (no exception
    group); with ``return_exceptions=True`` errors take their place in the results.
    """
    try:
        limit = _check_total(limit, "gather_limited(limit=...)")
    except ConfigurationError:
        _close_unstarted(iter(calls))
        raise
    results: list[Any] = [_NOT_WRAPPED] * len(calls)
    queue = iter(enumerate(calls))
    failure: list[BaseException] = []
    default_pool = _named_pool(DEFAULT_LIMITER)

    async def run_one(call: Call[T]) -> T:
        if inspect.isawaitable(call):
            return await call
        if not callable(call):
            raise TypeError(f"gather_limited() takes awaitables or callables; got {call!r}")
        if _is_async_callable(call):
            return await cast(Callable[[], Awaitable[T]], call)()
        # Boxed: trio refuses a thread function that returns a coroutine (lambda: fetch(i)).
        (value,) = await anyio.to_thread.run_sync(lambda: (call(),), limiter=default_pool.limiter())
        if inspect.isawaitable(value):
            return await cast(Awaitable[T], value)
        return value

    async def settle(index: int, call: Call[T]) -> bool:
        """Store one call's result; False when the whole gather must stop."""
        try:
            results[index] = await run_one(call)
        except Exception as error:
            if not return_exceptions:
                failure.append(error)
                return False
            results[index] = error
        return True

    async def worker(group: anyio.abc.TaskGroup) -> None:
        for index, call in queue:
            if not await settle(index, call):
                group.cancel_scope.cancel()
                return

    try:
        async with anyio.create_task_group() as group:
            for _ in range(min(limit, len(calls))):
                group.start_soon(worker, group)
    finally:
        _close_unstarted(call for _, call in queue)
    if failure:
        raise failure[0]  # the first error; later ones come from the cancellation it caused
    return results
