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
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from .errors import CallTimeout, ConfigurationError

__all__ = [
    "DEFAULT_LIMITER",
    "AsyncWrapper",
    "configure_limiter",
    "gather_limited",
    "limiter_stats",
    "run_sync",
    "to_async",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The limiter used by :func:`to_async` when none is given. It is hardenkit's own
#: pool, separate from anyio's default one (which starlette uses for sync
#: endpoints), so wrapped calls cannot starve the app's sync endpoints.
DEFAULT_LIMITER = "default"

#: Threads per named limiter unless :func:`configure_limiter` says otherwise.
DEFAULT_TOTAL = 10
_DEFAULT_POOL_TOTAL = 40

LimiterSpec = anyio.CapacityLimiter | int | str | None


class _Pool:
    """A bounded pool of worker threads: one ``CapacityLimiter`` per running event loop.

    A ``CapacityLimiter`` belongs to the event loop (and backend) it was first used
    in, while a name like ``"db"`` lives as long as the process (scripts call
    ``anyio.run`` many times; test suites mix asyncio and trio). So the pool keeps
    one limiter per live loop, dropped with the loop.
    """

    __slots__ = ("_limiters", "_lock", "abandoned", "name", "timed_out", "total")

    def __init__(self, name: str, total: float) -> None:
        self.name = name
        self.total = total
        self.abandoned = 0  # calls given up on (timeout or cancel) whose thread is still running
        self.timed_out = 0  # calls whose caller got CallTimeout, ever (waiting for a thread or running)
        self._lock = threading.Lock()
        self._limiters: weakref.WeakKeyDictionary[object, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()

    def limiter(self) -> anyio.CapacityLimiter:
        loop = anyio.lowlevel.current_token().native_token
        limiter = self._limiters.get(loop)
        if limiter is None:
            with self._lock:
                limiter = self._limiters[loop] = anyio.CapacityLimiter(self.total)
        elif limiter.total_tokens != self.total:
            # configure_limiter() changed the size; apply it here, in the loop's own thread.
            limiter.total_tokens = self.total
        return limiter

    def note_abandoned(self) -> None:
        with self._lock:
            self.abandoned += 1

    def note_timed_out(self) -> None:
        with self._lock:
            self.timed_out += 1

    def note_thread_ended(self) -> None:
        with self._lock:
            self.abandoned -= 1

    def stats(self) -> dict[str, int]:
        borrowed = waiting = 0
        with self._lock:
            limiters = list(self._limiters.values())
            abandoned, timed_out = self.abandoned, self.timed_out
        for limiter in limiters:
            statistics = limiter.statistics()
            borrowed += statistics.borrowed_tokens
            waiting += statistics.tasks_waiting
        return {
            "borrowed": borrowed,
            "total": int(self.total),
            "waiting": waiting,
            "abandoned": abandoned,
            "timed_out": timed_out,
        }


class _FixedPool(_Pool):
    """A caller's own ``CapacityLimiter``: used as is, in whatever loop it belongs to."""

    __slots__ = ("_fixed",)

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        super().__init__("", limiter.total_tokens)
        self._fixed = limiter

    def limiter(self) -> anyio.CapacityLimiter:
        return self._fixed


_POOLS: dict[str, _Pool] = {}
_POOLS_LOCK = threading.Lock()
# Runs the thread of a call that has a timeout: the call's real limiter token is
# taken by hand (see _call_with_timeout), so this one must never make it wait.
_UNBOUNDED = _Pool("", math.inf)


def _named_pool(name: str) -> _Pool:
    pool = _POOLS.get(name)
    if pool is None:
        total = _DEFAULT_POOL_TOTAL if name == DEFAULT_LIMITER else DEFAULT_TOTAL
        with _POOLS_LOCK:
            pool = _POOLS.setdefault(name, _Pool(name, total))
    return pool


def _check_total(total: object, what: str) -> int:
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ConfigurationError(f"{what} must be a whole number of threads >= 1, e.g. 5; got {total!r}")
    return total


def configure_limiter(name: str, total: int) -> None:
    """Set the number of worker threads of the named limiter ``name``.

    Call it at start-up (it also works later: running loops pick the new size up
    on their next call). Unconfigured names get ``DEFAULT_TOTAL`` (10) threads,
    ``"default"`` gets 40.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a limiter name must be a non-empty string such as 'db'; got {name!r}")
    total = _check_total(total, f"configure_limiter({name!r}, total)")
    _named_pool(name).total = total


def limiter_stats() -> dict[str, dict[str, int]]:
    """Report every named limiter: ``{"db": {"borrowed": 2, "total": 5, "waiting": 0, ...}}``.

    ``borrowed`` counts threads running now (abandoned ones included, they hold
    their token until they end), ``waiting`` the calls queued for a thread,
    ``abandoned`` the calls whose caller gave up (a timeout or a cancellation)
    while their thread still runs, ``timed_out`` every call that raised
    :class:`~hardenkit.errors.CallTimeout` since start (waiting for a thread or
    running). Safe to call from
    any thread, inside or outside an event loop.
    """
    with _POOLS_LOCK:
        pools = sorted(_POOLS.items())
    return {name: pool.stats() for name, pool in pools}


def _resolve_pool(limiter: object) -> _Pool:
    if limiter is None:
        return _named_pool(DEFAULT_LIMITER)
    if isinstance(limiter, str):
        if not limiter:
            raise ConfigurationError("limiter='' is not a name: write limiter='db' (any non-empty name)")
        return _named_pool(limiter)
    if isinstance(limiter, anyio.CapacityLimiter):
        return _FixedPool(limiter)
    if isinstance(limiter, int) and not isinstance(limiter, bool):
        # A private pool of its own: not shared, not reported (name it to see it in limiter_stats()).
        return _Pool("", _check_total(limiter, "limiter"))
    raise ConfigurationError(
        f"limiter must be a name ('db'), a number of threads (5) or an anyio.CapacityLimiter; got {limiter!r}"
    )


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
