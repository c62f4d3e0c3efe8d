"""Calls across the sync/async boundary: :func:`to_async`, :func:`run_sync`, :class:`AsyncWrapper`.

anyio and the standard library only.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ..errors import CallTimeout, ConfigurationError
from .limiters import _UNBOUNDED, LimiterSpec, _Pool, _resolve_pool

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigurationError(
            f"timeout must be a number of seconds > 0 (e.g. 5.0) or None; got {timeout!r}"
        )
    return float(timeout)


class _Handoff:
    """Who gives the limiter token back: the caller, or the thread when it finally ends.

    PENDING -> RUNNING -> DONE is the ordinary life of a call. When the caller gives
    up (timeout or cancellation) while the thread is RUNNING, the call becomes
    ABANDONED and the thread returns the token when it ends. When the caller gives
    up before the thread has started (it may never start), the call is SKIPPED: the
    caller returns the token and the function is not run.
    """

    __slots__ = ("lock", "state")

    PENDING, RUNNING, DONE, ABANDONED, SKIPPED = range(5)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = _Handoff.PENDING


def _release_from_thread(
    token: anyio.lowlevel.EventLoopToken, pool: _Pool, limiter: anyio.CapacityLimiter, borrower: object
) -> None:
    """Give an abandoned call's token back, from its thread, in the loop's thread."""
    try:
        anyio.from_thread.run_sync(limiter.release_on_behalf_of, borrower, token=token)
    except anyio.RunFinishedError:
        pass  # the loop has ended, and its limiter with it
    finally:
        pool.note_thread_ended()


async def _call_with_timeout(
    pool: _Pool, call: Callable[..., R], args: tuple[Any, ...], timeout: float, name: str
) -> R:
    limiter = pool.limiter()
    borrower = object()
    handoff = _Handoff()
    token = anyio.lowlevel.current_token()

    def work() -> R:
        with handoff.lock:
            if handoff.state == _Handoff.SKIPPED:
                return cast(R, None)  # the caller gave up before it started: nobody reads this
            handoff.state = _Handoff.RUNNING
        try:
            return call(*args)
        finally:
            with handoff.lock:
                abandoned = handoff.state == _Handoff.ABANDONED
                handoff.state = _Handoff.DONE
            if abandoned:
                # Handed to a daemon thread: if the loop stops without closing (or closes
                # while the call is queued), the wait for it never ends, and that must
                # not keep this worker thread, nor the process at exit, waiting.
                threading.Thread(
                    target=_release_from_thread,
                    args=(token, pool, limiter, borrower),
                    name="hardenkit.aio token release",
                    daemon=True,
                ).start()

    # The deadline covers the wait for a thread too: when every thread is stuck in
    # hung calls, the caller still gets its answer on time.
    with anyio.move_on_after(timeout):
        try:
            # A free token costs no loop turn; run_sync() below checkpoints anyway.
            limiter.acquire_on_behalf_of_nowait(borrower)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(borrower)
        try:
            result = await anyio.to_thread.run_sync(
                work, abandon_on_cancel=True, limiter=_UNBOUNDED.limiter()
            )
        except BaseException:
            with handoff.lock:
                state = handoff.state
                if state == _Handoff.RUNNING:
                    handoff.state = _Handoff.ABANDONED
                elif state == _Handoff.PENDING:
                    handoff.state = _Handoff.SKIPPED
            if state == _Handoff.RUNNING:
                pool.note_abandoned()  # the thread gives the token back when it ends
            else:
                limiter.release_on_behalf_of(borrower)
            raise
        limiter.release_on_behalf_of(borrower)
        return result
    # Only the scope's own deadline ends the block without a return or an exception.
    pool.note_timed_out()
    raise CallTimeout(f"{name} did not finish within {timeout:g} s")


def _make_async(
    fn: Callable[P, R], pool: _Pool, timeout: float | None
) -> Callable[P, Coroutine[Any, Any, R]]:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    run_sync_in_thread = anyio.to_thread.run_sync

    if timeout is None:

        async def call_in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            call = functools.partial(fn, **kwargs) if kwargs else fn
            return await run_sync_in_thread(call, *args, limiter=pool.limiter())

    else:

        async def call_in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            call = functools.partial(fn, **kwargs) if kwargs else fn
            return await _call_with_timeout(pool, call, args, timeout, name)

    try:
        functools.update_wrapper(call_in_thread, fn)
    except AttributeError:  # pragma: no cover - callables without __dict__ (rare builtins)
        pass
    return call_in_thread


_PLAIN_CALLABLES = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


def _is_async_callable(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    if isinstance(fn, _PLAIN_CALLABLES):
        return False  # no __call__ of their own to look at (AsyncWrapper checks a method per access)
    # An instance whose class defines ``async def __call__`` is async too.
    return inspect.iscoroutinefunction(inspect.getattr_static(type(fn), "__call__", None))


@overload
def to_async(
    fn: Callable[P, R], *, limiter: LimiterSpec = None, timeout: float | None = None
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def to_async(
    fn: None = None, *, limiter: LimiterSpec = None, timeout: float | None = None
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def to_async(
    fn: Callable[P, R] | None = None,
    *,
    limiter: LimiterSpec = None,
    timeout: float | None = None,
) -> Callable[P, Coroutine[Any, Any, R]] | Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]:
    """Make the sync callable ``fn`` awaitable: each call runs in a worker thread.

    Use it bare (``@to_async``), with options (``@to_async(limiter="db",
    timeout=5)``) or as a function (``await to_async(fn, limiter="db")(x)``).

    ``limiter`` bounds the threads: a name shares one pool among every function
    using that name (sized by :func:`configure_limiter`), an int gives the
    function a private pool of that many threads, an ``anyio.CapacityLimiter`` is
    used as is; ``None`` is hardenkit's ``"default"`` pool (40 threads).

    ``timeout`` (seconds, covering the wait for a thread) raises
    :class:`~hardenkit.errors.CallTimeout` in the caller; the thread cannot be
    stopped, so it keeps its limiter token until it ends and its result is dropped.
    Without a timeout a cancelled caller waits for the thread, like anyio does.
    """
    pool = _resolve_pool(limiter)
    seconds = _check_timeout(timeout)

    def decorate(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
        if not callable(func):
            raise ConfigurationError(f"to_async() wraps a callable; got {func!r}")
        if _is_async_callable(func):
            raise ConfigurationError(
                f"{getattr(func, '__qualname__', func)!r} is already async: await it directly, "
                "to_async() is for blocking sync callables"
            )
        return _make_async(func, pool, seconds)

    if fn is None:
        return decorate
    return decorate(fn)


def run_sync(
    async_fn: Callable[..., Awaitable[T]],
    *args: Any,
    backend: Literal["asyncio", "trio"] = "asyncio",
    token: anyio.lowlevel.EventLoopToken | None = None,
) -> T:
    """Run ``async_fn(*args)`` from sync code and return its result.

    * In a worker thread started by anyio (for example inside a function run by
      :func:`to_async`), it calls back into that thread's event loop.
    * With ``token=anyio.lowlevel.current_token()`` captured in the loop, it does
      the same from any thread.
    * Elsewhere (a script, a CLI) it starts an event loop of ``backend`` for the call.

    Called from an event loop's own thread it raises ``RuntimeError``: await the
    coroutine there instead of blocking the loop.
    """
    if backend not in ("asyncio", "trio"):
        raise ConfigurationError(f"backend must be 'asyncio' or 'trio'; got {backend!r}")
    started = False

    async def call() -> T:
        nonlocal started
        started = True
        return await async_fn(*args)

    if token is not None:
        return anyio.from_thread.run(call, token=token)
    try:
        anyio.lowlevel.current_token()
    except anyio.NoEventLoopError:
        pass
    else:
        raise RuntimeError(
            "run_sync() was called from the event loop's own thread, where it would block the loop: "
            "await the coroutine instead"
        )
    try:
        return anyio.from_thread.run(call)
    except anyio.NoEventLoopError:
        if started:
            raise
    return anyio.run(call, backend=backend)


_NOT_WRAPPED = object()


class AsyncWrapper(Generic[T]):
    """Awaitable versions of a sync object's public methods.

    ``AsyncWrapper(client, limiter="db").get(key)`` runs ``client.get(key)`` in a
    worker thread of the ``"db"`` limiter; attributes that are not methods (and
    names starting with ``_``) are read and written on the object plainly;
    ``async with AsyncWrapper(conn) as c:`` runs ``__enter__``/``__exit__`` in
    threads too. ``wrapped`` is the object itself.
    """

    __slots__ = ("_pool", "_timeout", "wrapped")

    def __init__(self, obj: T, *, limiter: LimiterSpec = None, timeout: float | None = None) -> None:
        object.__setattr__(self, "wrapped", obj)
        object.__setattr__(self, "_pool", _resolve_pool(limiter))
        object.__setattr__(self, "_timeout", _check_timeout(timeout))

    wrapped: T
    _pool: _Pool
    _timeout: float | None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.wrapped, name)
        if (
            name.startswith("_")
            or not callable(value)
            or isinstance(value, type)
            or _is_async_callable(value)
        ):
            return value
        return _make_async(value, self._pool, self._timeout)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.wrapped, name, value)

    def __dir__(self) -> list[str]:
        return sorted({*dir(self.wrapped), "wrapped"})

    def __repr__(self) -> str:
        return f"AsyncWrapper({self.wrapped!r})"

    async def __aenter__(self) -> Any:
        enter = getattr(type(self.wrapped), "__enter__", None)
        if enter is None or getattr(type(self.wrapped), "__exit__", None) is None:
            raise TypeError(
                f"{type(self.wrapped).__qualname__} is not a context manager: it has no __enter__/__exit__"
            )
        result = await _make_async(enter, self._pool, self._timeout)(self.wrapped)
        return self if result is self.wrapped else result

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        exit_ = type(self.wrapped).__exit__  # type: ignore[attr-defined]
        return bool(await _make_async(exit_, self._pool, self._timeout)(self.wrapped, exc_type, exc, tb))
