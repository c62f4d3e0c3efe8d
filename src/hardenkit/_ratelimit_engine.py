"""Counting engines of the rate limiter, and what happens while the storage is down.

Three ways to count, all on top of ``limits``:

* ``memory://``: limits' synchronous MemoryStorage and strategies, called inline.
  Nothing awaits between the check and the increment, so on one event loop the
  check-and-count is atomic and exact under any concurrency.
* Redis and Valkey (fixed and sliding window) on asyncio: one Lua script per
  request through the client of a ``limits.aio`` storage. It checks every limit
  of the request, counts them only if all pass, and returns what the headers
  need, in one round trip (limits' own hit + window stats take two or three).
* Anything else (memcached, mongodb, the moving window on Redis, and every
  network storage under trio, where the asyncio clients cannot run): limits'
  strategies, async on asyncio, or sync in bounded worker threads on trio.

:class:`StorageGuard` keeps the storage's health: it backs off while the storage
is unreachable and logs once when an outage starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread

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


@dataclass(frozen=True)
class Window:
    """One limit of a policy, with its name in the headers."""

    item: RateLimitItem
    name: str

    @property
    def seconds(self) -> int:
        return int(self.item.get_expiry())


@dataclass(frozen=True)
class Stat:
    """One limit after a request: what is left and when it refills."""

    window: Window
    remaining: int
    reset_in: float
    violated: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    stats: tuple[Stat, ...]

    @property
    def retry_after(self) -> int:
        """Whole seconds until the violated limits allow a request again (at least 1)."""
        waits = [stat.reset_in for stat in self.stats if stat.violated] or [
            stat.reset_in for stat in self.stats
        ]
        return max(1, math.ceil(max(waits, default=1.0)))


ALLOWED_BLIND = Decision(True, ())


class Engine(Protocol):
    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision: ...

    async def aclose(self) -> None: ...


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable storage uri>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scheme_of(uri: str) -> str:
    return uri.partition("://")[0].lower()


# -- limits' strategies ------------------------------------------------------------------


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
            ok = all([strategy.hit(w.item, namespace, client, cost=cost) for w in windows])
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
            ok = all([await strategy.hit(w.item, namespace, client, cost=cost) for w in windows])
    now = time.time()
    stats = []
    for window, window_ok in zip(windows, passed, strict=True):
        reset, remaining = await strategy.get_window_stats(window.item, namespace, client)
        stats.append(Stat(window, max(0, int(remaining)), max(0.0, reset - now), not window_ok))
    return Decision(ok, tuple(stats))


class MemoryEngine:
    """limits' sync MemoryStorage, called inline (it never blocks)."""

    def __init__(self, strategy: str) -> None:
        from limits.storage import MemoryStorage
        from limits.strategies import STRATEGIES

        self.storage = MemoryStorage()
        self.strategy = STRATEGIES[STRATEGY_NAMES[strategy]](self.storage)

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        return _limits_decide(self.strategy, windows, namespace, client, cost, peek)

    async def aclose(self) -> None:
        return None


class ThreadEngine:
    """A sync limits storage used from bounded worker threads (trio, or no async client)."""

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

    def __init__(self, uri: str, strategy: str, options: dict[str, Any]) -> None:
        from limits.aio.strategies import STRATEGIES
        from limits.storage import storage_from_string

        self.storage = storage_from_string("async+" + uri, **client_options(uri, options))
        strategy_class: Any = STRATEGIES[STRATEGY_NAMES[strategy]]
        self.strategy = strategy_class(self.storage)

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        return await _limits_decide_async(self.strategy, windows, namespace, client, cost, peek)

    async def aclose(self) -> None:
        await _close_storage(self.storage)


# -- one Lua script per request on Redis / Valkey ------------------------------------------

# KEYS: one key per limit. ARGV: cost, peek (0/1), then limit and window (ms) per limit.
# Returns {allowed, then per limit: violated, remaining, ms until reset}.
_FIXED_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local peek = ARGV[2] == '1'
local counts = {}
local ok = 1
for i = 1, #KEYS do
  local c = tonumber(redis.call('get', KEYS[i]) or '0')
  counts[i] = c
  if c + cost > tonumber(ARGV[1 + 2 * i]) then ok = 0 end
end
local out = {ok}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local c = counts[i]
  local ttl
  if ok == 1 and not peek and cost > 0 then
    c = redis.call('incrby', KEYS[i], cost)
    if c == cost then
      redis.call('pexpire', KEYS[i], window)
      ttl = window
    else
      ttl = redis.call('pttl', KEYS[i])
    end
  else
    ttl = redis.call('pttl', KEYS[i])
  end
  if ttl == -1 then
    redis.call('pexpire', KEYS[i], window)
    ttl = window
  elseif ttl < 0 then
    ttl = window
  end
  local violated = 0
  if counts[i] + cost > limit then violated = 1 end
  out[#out + 1] = violated
  out[#out + 1] = math.max(0, limit - c)
  out[#out + 1] = ttl
end
return out
"""

# The sliding window counter of limits' acquire_sliding_window.lua (same keys: the
# current window, and "/-1" for the previous one), for several limits at once.
# KEYS: previous and current key per limit.
_SLIDING_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local peek = ARGV[2] == '1'
local n = #KEYS / 2
local state = {}
local ok = 1
for i = 1, n do
  local prev, cur = KEYS[2 * i - 1], KEYS[2 * i]
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local cur_ttl = tonumber(redis.call('pttl', cur))
  if cur_ttl > 0 and cur_ttl < window then
    -- the current window is over: it becomes the previous one
    redis.call('rename', cur, prev)
    redis.call('set', cur, 0, 'PX', cur_ttl + window)
    cur_ttl = cur_ttl + window
  end
  local pc = tonumber(redis.call('get', prev) or '0')
  local pttl = 0
  if pc > 0 then
    pttl = tonumber(redis.call('pttl', prev))
    if pttl < 0 then pttl = 0 end
  end
  local cc = tonumber(redis.call('get', cur) or '0')
  local weighted = math.floor(pc * pttl / window) + cc
  local violated = 0
  if weighted + cost > limit then
    violated = 1
    ok = 0
  end
  state[i] = {weighted, violated, pc, pttl, cc, cur_ttl}
end
local out = {ok}
for i = 1, n do
  local cur = KEYS[2 * i]
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local s = state[i]
  local used = s[1]
  local pc, pttl, cc, cur_ttl = s[3], s[4], s[5], s[6]
  if ok == 1 and not peek and cost > 0 then
    if cur_ttl > 0 then
      redis.call('incrby', cur, cost)
    else
      redis.call('set', cur, cost, 'PX', window * 2)
      cur_ttl = window * 2
    end
    used = used + cost
    cc = cc + cost
  end
  local reset = 0
  if pc > 0 then
    reset = math.fmod(pttl, window / pc)
  elseif cc > 0 then
    reset = math.fmod(cur_ttl, window)
    if reset <= 0 then reset = window end
  end
  out[#out + 1] = s[2]
  out[#out + 1] = math.max(0, limit - used)
  out[#out + 1] = math.ceil(reset)
end
return out
"""


class ScriptEngine:
    """Redis/Valkey through a ``limits.aio`` storage's client: one EVALSHA per request."""

    def __init__(self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str) -> None:
        from limits.storage import storage_from_string

        # limits builds the client (URI parsing, TLS, cluster, sentinel); we only add a script.
        self.storage = storage_from_string("async+" + uri, **client_options(uri, options))
        client = self.storage.bridge.get_connection()  # type: ignore[union-attr]
        self.sliding = strategy == "sliding-window"
        self.script = client.register_script(_SLIDING_WINDOW_LUA if self.sliding else _FIXED_WINDOW_LUA)
        self.prefix = f"{key_prefix}:{'sw' if self.sliding else 'fw'}"

    def keys(self, windows: Sequence[Window], namespace: str, client: str) -> list[str]:
        # One hash tag per (policy, client): all keys of a request live on one cluster slot.
        tag = f"{self.prefix}:{{{namespace}/{client}}}"
        keys: list[str] = []
        for window in windows:
            item = window.item
            base = f"{tag}/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
            if self.sliding:
                keys.append(f"{base}/-1")
            keys.append(base)
        return keys

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        args: list[int] = [max(0, cost), 1 if peek else 0]
        for window in windows:
            args += (window.item.amount, window.seconds * 1000)
        result = await self.script(keys=self.keys(windows, namespace, client), args=args)
        stats = tuple(
            Stat(
                window,
                int(result[1 + 3 * i + 1]),
                int(result[1 + 3 * i + 2]) / 1000.0,
                bool(result[1 + 3 * i]),
            )
            for i, window in enumerate(windows)
        )
        return Decision(bool(result[0]), stats)

    async def aclose(self) -> None:
        await _close_storage(self.storage)


async def _close_storage(storage: Any) -> None:
    """Close the client and pool behind a limits.aio Redis storage (other storages: nothing)."""
    bridge = getattr(storage, "bridge", None)
    if bridge is None:
        return
    client = bridge.get_connection()
    pool = getattr(client, "connection_pool", None)
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()
    if pool is not None:
        await pool.disconnect()


_POOLED = {
    "redis": "redis",
    "rediss": "redis",
    "redis+unix": "redis",
    "valkey": "valkey",
    "valkeys": "valkey",
}


def client_options(uri: str, options: dict[str, Any]) -> dict[str, Any]:
    """limits.aio options for ``uri``: a *blocking* connection pool for plain Redis/Valkey.

    redis-py's default asyncio pool raises "Too many connections" under a burst, which
    would look like an outage; a blocking pool makes the burst wait for a connection
    instead (bounded by storage_timeout).
    """
    scheme = scheme_of(uri)
    family = _POOLED.get(scheme)
    if family is None or "connection_pool" in options:
        return options
    module = importlib.import_module(f"{family}.asyncio")
    connection = {k: v for k, v in options.items() if k != "implementation"}
    max_connections = int(connection.pop("max_connections", 64))
    pool = module.BlockingConnectionPool.from_url(
        uri.replace(f"{family}+unix://", "unix://", 1),
        max_connections=max_connections,
        timeout=None,
        **connection,
    )
    kept = {"implementation": options["implementation"]} if "implementation" in options else {}
    return {**kept, "connection_pool": pool}


def uses_script(uri: str, strategy: str) -> bool:
    scheme = scheme_of(uri)
    return strategy != "moving-window" and (scheme in _SCRIPT_SCHEMES or scheme in _VALKEY_SCHEMES)


class NetworkEngines:
    """One engine per event loop (asyncio clients are bound to their loop); threads on trio."""

    def __init__(self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str) -> None:
        self.uri = uri
        self.strategy = strategy
        self.options = options
        self.key_prefix = key_prefix
        if scheme_of(uri) in _SCRIPT_SCHEMES:
            # limits defaults to coredis; redis-py is what hardenkit[redis] installs.
            self.options = {"implementation": "redispy", **options}
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = (
            weakref.WeakKeyDictionary()
        )
        self._thread_engine: ThreadEngine | None = None
        # Built now so that a bad URI or a missing client library fails at start-up.
        self._spare: Engine | None = self._make()

    def _make(self) -> Engine:
        if uses_script(self.uri, self.strategy):
            return ScriptEngine(self.uri, self.strategy, self.options, self.key_prefix)
        return AsyncEngine(self.uri, self.strategy, self.options)

    def current(self) -> Engine:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # trio (or another non-asyncio loop): limits' sync storages in worker threads.
            if self._thread_engine is None:
                options = {k: v for k, v in self.options.items() if k != "implementation"}
                self._thread_engine = ThreadEngine(self.uri, self.strategy, options)
            return self._thread_engine
        engine = self._by_loop.get(loop)
        if engine is None:
            engine, self._spare = (self._spare or self._make()), None
            self._by_loop[loop] = engine
        return engine

    async def aclose(self) -> None:
        """Close the current event loop's connections (on lifespan shutdown)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the threads' sync clients are closed with the process
        engine = self._by_loop.pop(loop, None)
        if engine is not None:
            await engine.aclose()


# -- storage outages -------------------------------------------------------------------


class StorageGuard:
    """Health of the storage: back-off while down, one log line per outage start and end."""

    def __init__(
        self,
        *,
        storage: str,
        mode: str,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.mode = mode
        self.base_backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.healthy = True
        self.since: float | None = None
        self.backoff = backoff
        self.retry_at = 0.0

    def should_try(self) -> bool:
        """True when the storage may be used now; claims the probe slot while it is down."""
        if self.healthy:
            return True
        now = self.clock()
        if now < self.retry_at:
            return False
        # Only one request probes; the others keep the fallback until it reports.
        self.retry_at = now + self.backoff
        return True

    def retry_in(self) -> float:
        return max(0.0, self.retry_at - self.clock())

    def failed(self, exc: BaseException, *, probe: bool) -> None:
        """Record a failed call; ``probe`` is True for the call that ``should_try`` let through."""
        now = self.clock()
        if self.healthy:
            self.healthy = False
            self.since = time.time()
            self.backoff = self.base_backoff
            self.retry_at = now + self.backoff
            logger.warning(
                "rate-limit storage %s is unreachable (%s: %s); on_storage_error=%r until it returns",
                self.storage,
                type(exc).__name__,
                _short_error(exc),
                self.mode,
            )
            return
        if probe:
            # A failed probe: wait longer before the next one. (Calls that were already in
            # flight when the outage began also fail, but say nothing new.)
            self.backoff = min(self.backoff * 2, self.max_backoff)
            self.retry_at = now + self.backoff

    def succeeded(self) -> None:
        if self.healthy:
            return
        down_for = time.time() - (self.since or time.time())
        self.healthy = True
        self.since = None
        self.backoff = self.base_backoff
        self.retry_at = 0.0
        logger.warning("rate-limit storage %s is reachable again after %.1fs", self.storage, down_for)

    def state(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "mode": "primary" if self.healthy else "fallback",
            "on_storage_error": self.mode,
            "since": self.since,
            "storage": self.storage,
        }


def _short_error(exc: BaseException) -> str:
    text = str(exc).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."
