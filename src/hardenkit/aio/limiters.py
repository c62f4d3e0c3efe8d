"""Named thread limiters: bounded pools of worker threads, one per dependency, and their stats.

anyio and the standard library only.
"""

from __future__ import annotations

import math
import threading
import weakref

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ..errors import ConfigurationError

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
