"""The engine types of the rate limiter and limits' strategies for the storages without a script.

Three ways to count:

* ``memory://`` (and the outage fallback): :class:`~.memory.LocalEngine`, the
  same algorithms as limits' MemoryStorage on plain dictionaries, bounded by
  ``max_keys``; nothing awaits between the check and the count, so it is exact
  under any concurrency.
* Redis and Valkey, every strategy: one Lua script per request
  (:mod:`.scripts`, :mod:`.moving`) that checks every limit of the request,
  counts them only if all pass, and returns what the headers need, in one round
  trip; on trio the same scripts run through the sync client in worker threads.
* Anything else (memcached, mongodb): limits' strategies, async on asyncio
  (:class:`AsyncEngine`), or sync in bounded worker threads on trio
  (:class:`ThreadEngine`).

Outages are handled around the engines, in :mod:`.fallback` and :mod:`.storage`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread

from .clients import _close_storage, client_options

if TYPE_CHECKING:
    from limits import RateLimitItem

logger = logging.getLogger("hardenkit.ratelimit")

#: limits' names for the strategies hardenkit accepts.
STRATEGY_NAMES = {
    "sliding-window": "sliding-window-counter",
    "fixed-window": "fixed-window",
    "moving-window": "moving-window",
}

_SCRIPT_SCHEMES = ("redis", "rediss", "redis+cluster", "redis+sentinel", "redis+unix")
_VALKEY_SCHEMES = ("valkey", "valkeys", "valkey+cluster", "valkey+sentinel", "valkey+unix")


class Window:
    """One limit of a policy, with its name in the headers (static parts precomputed)."""

    __slots__ = ("amount", "ietf_prefix", "item", "name", "seconds", "tag", "x_limit")

    def __init__(self, item: RateLimitItem, name: str) -> None:
        self.item = item
        self.name = name
        self.amount: int = item.amount
        self.seconds: int = int(item.get_expiry())
        self.tag = f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
        self.ietf_prefix = f'"{name}";r='
        self.x_limit = str(item.amount).encode("latin-1")

    def __repr__(self) -> str:
        return f"Window({self.name!r}, {self.amount}/{self.seconds}s)"


class Stat:
    """One limit after a request: what is left and when it refills."""

    __slots__ = ("remaining", "reset_in", "violated", "window")

    def __init__(self, window: Window, remaining: int, reset_in: float, violated: bool) -> None:
        self.window = window
        self.remaining = remaining
        self.reset_in = reset_in
        self.violated = violated

    def __repr__(self) -> str:
        return f"Stat({self.window.name!r}, remaining={self.remaining}, reset_in={self.reset_in:.3f})"


class Decision:
    __slots__ = ("allowed", "stats")

    def __init__(self, allowed: bool, stats: tuple[Stat, ...]) -> None:
        self.allowed = allowed
        self.stats = stats

    @property
    def retry_after(self) -> int:
        """Whole seconds until the violated limits allow a request again (at least 1)."""
        waits = [stat.reset_in for stat in self.stats if stat.violated] or [
            stat.reset_in for stat in self.stats
        ]
        return max(1, math.ceil(max(waits, default=1.0)))


ALLOWED_BLIND = Decision(True, ())


class Engine(Protocol):
    #: True when the engine bounds its own waits by the storage timeout.
    bounded: bool

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision: ...

    async def aclose(self) -> None: ...


def _limits_decide(
    strategy: Any, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
) -> Decision:
    """Check and count with a sync limits strategy (runs inline for memory, in a thread else)."""
    if cost <= 0:
        ok = True
        passed = [True] * len(windows)
    elif len(windows) == 1 and not peek:
        ok = strategy.hit(windows[0].item, namespace, client, cost=cost)
        passed = [ok]
    else:
        passed = [strategy.test(w.item, namespace, client, cost=cost) for w in windows]
        ok = all(passed)
        if ok and not peek:
            # Count all only when all pass: a refused request uses none of its limits.
            # Stop at the first limit that is full (a concurrent request took the room):
            # the limits after it are not counted. (limits cannot give back what the
            # ones before it took; the Redis scripts can, see scripts.py.)
            ok = all(strategy.hit(w.item, namespace, client, cost=cost) for w in windows)
    now = time.time()
    stats = []
    for window, window_ok in zip(windows, passed, strict=True):
        reset, remaining = strategy.get_window_stats(window.item, namespace, client)
        stats.append(Stat(window, max(0, int(remaining)), max(0.0, reset - now), not window_ok))
    return Decision(ok, tuple(stats))


async def _limits_decide_async(
    strategy: Any, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
) -> Decision:
    if cost <= 0:
        ok = True
        passed = [True] * len(windows)
    elif len(windows) == 1 and not peek:
        ok = await strategy.hit(windows[0].item, namespace, client, cost=cost)
        passed = [ok]
    else:
        passed = [await strategy.test(w.item, namespace, client, cost=cost) for w in windows]
        ok = all(passed)
        if ok and not peek:
            for w in windows:
                if not await strategy.hit(w.item, namespace, client, cost=cost):
                    ok = False
                    break
    now = time.time()
    stats = []
    for window, window_ok in zip(windows, passed, strict=True):
        reset, remaining = await strategy.get_window_stats(window.item, namespace, client)
        stats.append(Stat(window, max(0, int(remaining)), max(0.0, reset - now), not window_ok))
    return Decision(ok, tuple(stats))


#: A moving-window log holds at most this many entries, whatever the limit: up to this
#: limit every admission is its own entry (at its exact time, to the ms); above it,
#: entries are recorded at 1/MOVING_RESOLUTION of the window, rounded up, so a unit
#: leaves the window at most that much later than its exact time, never earlier (a
#: burst of 10,000 requests against 100,000/hour is a few entries, not 10,000).
MOVING_RESOLUTION = 512


def moving_stamp(now_ms: int, window: Window) -> int:
    """The time (ms) a moving-window entry made at ``now_ms`` (rounded up) is recorded at."""
    if window.amount <= MOVING_RESOLUTION:
        return now_ms
    bucket = max(1, window.seconds * 1000 // MOVING_RESOLUTION)
    return -(-now_ms // bucket) * bucket


def sliding_refill(previous: int, left: float, seconds: float) -> float:
    """Seconds until the sliding window counter frees its next unit (the headers' ``t``)."""
    return left % (seconds / previous) if previous else left


def sliding_wait(previous: int, current: int, left: float, seconds: float, limit: int, cost: int) -> float:
    """Seconds until the sliding window counter admits ``cost`` more units.

    The count is ``floor(previous * w) + current`` where the previous window's weight
    ``w`` falls from ``left / seconds`` to 0 as the current window runs out, after
    which the current count becomes the previous one. (limits' own "reset" for this
    strategy is the end of the current window, which can be too early: a client
    retrying then would be refused again.)
    """
    room = limit - cost
    if room < 0:
        return left + seconds  # never admitted; say so for as long as anything is known
    if current <= room and previous > 0:
        # floor(previous * (left - t) / seconds) <= room - current
        return max(0.0, left - (room - current + 1) * seconds / previous) + 0.001
    if current <= room:
        return 0.0
    # After this window: floor(current * (seconds - u) / seconds) <= room
    return left + max(0.0, seconds - (room + 1) * seconds / current) + 0.001


class ThreadEngine:
    """A sync limits storage used from bounded worker threads (trio, or no async client)."""

    bounded = False

    def __init__(self, uri: str, strategy: str, options: dict[str, Any]) -> None:
        from limits.storage import storage_from_string
        from limits.strategies import STRATEGIES

        self.storage = storage_from_string(uri, **options)
        self.strategy = STRATEGIES[STRATEGY_NAMES[strategy]](self.storage)
        self.limiter = anyio.CapacityLimiter(16)

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        return await anyio.to_thread.run_sync(
            _limits_decide, self.strategy, windows, namespace, client, cost, peek, limiter=self.limiter
        )

    async def aclose(self) -> None:
        return None


class AsyncEngine:
    """A ``limits.aio`` storage with limits' async strategies."""

    bounded = False

    def __init__(self, uri: str, strategy: str, options: dict[str, Any], timeout: float = 0.5) -> None:
        from limits.aio.strategies import STRATEGIES
        from limits.storage import storage_from_string

        built, _ = client_options(uri, options, timeout)
        self.storage = storage_from_string("async+" + uri, **built)
        strategy_class: Any = STRATEGIES[STRATEGY_NAMES[strategy]]
        self.strategy = strategy_class(self.storage)

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        return await _limits_decide_async(self.strategy, windows, namespace, client, cost, peek)

    async def aclose(self) -> None:
        await _close_storage(self.storage)


# -- one Lua script per request on Redis / Valkey ------------------------------------------

# Both scripts use clock-aligned windows, like LocalEngine: the caller puts the window
# index in the key names, so a script needs no TTL read, and the common case is one
# command inside the script (INCRBY or BITFIELD; INFO commandstats counts it and the
# EVALSHA: 2 per request), plus a few once per key and window.

# KEYS: one key per limit. ARGV: cost, peek (0/1), then limit and window (ms) per limit.
# Returns "allowed used1 used2 ..." (units used before this request).
