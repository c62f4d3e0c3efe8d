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
import collections
import hashlib
import importlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
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


class _Generations:
    """Entries of one window length in two generations, so that idle keys expire in O(1).

    Every ``2 * window`` seconds the old generation is dropped whole and the current
    one becomes old; an entry read from the old generation moves back to the current
    one. An entry dropped this way was idle for at least two windows, which every
    strategy has forgotten by then. No timer thread, no scan over all keys.
    """

    __slots__ = ("current", "old", "period", "rotate_at")

    def __init__(self, seconds: int, now: float) -> None:
        self.period = 2.0 * max(1, seconds)
        self.current: dict[tuple[str, str, str], Any] = {}
        self.old: dict[tuple[str, str, str], Any] = {}
        self.rotate_at = now + self.period

    def get(self, key: tuple[str, str, str], now: float) -> Any:
        if now >= self.rotate_at:
            self.old = self.current if now < self.rotate_at + self.period else {}
            self.current = {}
            self.rotate_at = now + self.period
        entry = self.current.get(key)
        if entry is None:
            entry = self.old.pop(key, None)
            if entry is not None:
                self.current[key] = entry
        return entry

    def put(self, key: tuple[str, str, str], entry: Any) -> None:
        self.current[key] = entry


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


class LocalEngine:
    """In-process counting for ``memory://`` (and the ``memory`` outage fallback).

    The same three algorithms as limits' MemoryStorage strategies (fixed window;
    the sliding window counter weighting the previous clock-aligned window; the
    moving window log), kept on plain dicts. limits' MemoryStorage builds three key
    strings, takes an RLock per key and schedules a timer thread on every hit:
    about 15 us per request, more than this whole middleware may cost. Here a
    check-and-count is one dict lookup under one uncontended lock, so it is exact
    under any concurrency (also from several threads) and never blocks the loop.
    """

    bounded = True

    def __init__(self, strategy: str, clock: Callable[[], float] = time.time) -> None:
        if strategy not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy = strategy
        self.clock = clock
        self._lock = threading.Lock()
        self._gens: dict[int, _Generations] = {}
        self._check = {
            "fixed-window": self._fixed,
            "sliding-window": self._sliding,
            "moving-window": self._moving,
        }[strategy]

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        return self.decide(windows, namespace, client, cost, peek)

    async def aclose(self) -> None:
        return None

    def decide(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        now = self.clock()
        check = self._check
        with self._lock:
            entries = []
            allowed = True
            for window in windows:
                gens = self._gens.get(window.seconds)
                if gens is None:
                    gens = self._gens[window.seconds] = _Generations(window.seconds, now)
                key = (window.tag, namespace, client)
                entry = gens.get(key, now)
                if entry is None:
                    entry = self._fresh(now, window)
                    gens.put(key, entry)
                used, reset_in = check(entry, window, now)
                ok = used + cost <= window.amount
                if not ok:
                    reset_in = self._wait(entry, window, now, cost, used, reset_in)
                allowed = allowed and ok
                entries.append((window, entry, used, reset_in, ok))
            count = allowed and not peek and cost > 0
            stats = []
            for window, entry, used, reset_in, ok in entries:
                if count:
                    used += cost
                    reset_in = self._count(entry, window, now, cost, reset_in)
                stats.append(
                    Stat(window, window.amount - used if used < window.amount else 0, reset_in, not ok)
                )
        return Decision(allowed, tuple(stats))

    def _fresh(self, now: float, window: Window) -> list[Any]:
        if self.strategy == "fixed-window":
            return [0, int(now // window.seconds)]  # count, window index
        if self.strategy == "sliding-window":
            return [int(now // window.seconds), 0, 0]  # window index, current count, previous count
        return [collections.deque(), 0]  # (time, cost) entries, their total

    # Each check returns (units used now, seconds until the limit refills) and rolls
    # the entry forward in time; _count then adds ``cost``.
    @staticmethod
    def _fixed(entry: list[Any], window: Window, now: float) -> tuple[int, float]:
        index = int(now // window.seconds)
        if entry[1] != index:
            entry[0] = 0
            entry[1] = index
        return entry[0], (index + 1) * window.seconds - now

    @staticmethod
    def _sliding(entry: list[Any], window: Window, now: float) -> tuple[int, float]:
        seconds = window.seconds
        index = int(now // seconds)
        if entry[0] != index:
            entry[2] = entry[1] if entry[0] == index - 1 else 0
            entry[1] = 0
            entry[0] = index
        left = seconds - (now - index * seconds)  # until the current window ends
        previous = entry[2]
        return math.floor(previous * left / seconds) + entry[1], sliding_refill(previous, left, seconds)

    @staticmethod
    def _moving(entry: list[Any], window: Window, now: float) -> tuple[int, float]:
        log: collections.deque[tuple[float, int]] = entry[0]
        horizon = now - window.seconds
        while log and log[0][0] <= horizon:
            entry[1] -= log.popleft()[1]
        reset = (log[0][0] - horizon) if log else float(window.seconds)
        return entry[1], reset

    def _wait(
        self, entry: list[Any], window: Window, now: float, cost: int, used: int, reset_in: float
    ) -> float:
        """Seconds until a refused request of ``cost`` would be admitted (its Retry-After)."""
        if self.strategy == "sliding-window":
            seconds = window.seconds
            left = seconds - (now - entry[0] * seconds)
            return sliding_wait(entry[2], entry[1], left, seconds, window.amount, cost)
        if self.strategy == "moving-window":
            if cost > window.amount:
                return float(window.seconds)
            # The oldest entries leave first: wait until enough of them have.
            needed = used + cost - window.amount
            freed = 0
            for stamp, units in entry[0]:
                freed += units
                if freed >= needed:
                    return max(0.0, float(stamp) + window.seconds - now)
        return reset_in  # fixed window: its end

    def _count(self, entry: list[Any], window: Window, now: float, cost: int, reset_in: float) -> float:
        if self.strategy == "fixed-window":
            entry[0] += cost
            return reset_in
        if self.strategy == "sliding-window":
            entry[1] += cost
            return reset_in
        log = entry[0]
        if not log:
            reset_in = float(window.seconds)
        log.append((now, cost))
        entry[1] += cost
        return reset_in


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

        self.storage = storage_from_string("async+" + uri, **client_options(uri, options, timeout))
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
_FIXED_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local n = #KEYS
local used = {}
local ok = 1
if ARGV[2] == '1' or cost == 0 then
  local counts = redis.call('mget', unpack(KEYS))
  for i = 1, n do
    used[i] = tonumber(counts[i]) or 0
    if used[i] + cost > tonumber(ARGV[1 + 2 * i]) then ok = 0 end
  end
else
  for i = 1, n do
    local c = redis.call('incrby', KEYS[i], cost)
    if c == cost then redis.call('pexpire', KEYS[i], ARGV[2 + 2 * i]) end
    used[i] = c - cost
    if c > tonumber(ARGV[1 + 2 * i]) then ok = 0 end
  end
  -- A refused request gives back what it took. (With one limit and a cost of 1 the
  -- excess changes no decision, the window being full until it ends: skip the call.)
  if ok == 0 and (n > 1 or cost > 1) then
    for i = 1, n do redis.call('decrby', KEYS[i], cost) end
  end
end
return ok .. ' ' .. table.concat(used, ' ')
"""

# limits' sliding window counter on clock-aligned windows (as its MemoryStorage does),
# in one BITFIELD per request. Each (policy, client, limit, window index) key holds two
# 40-bit fields: #0 the window's count, #1 the previous window's final count + 1 (0: not
# set), copied from the previous key once, when the key is made (SET ... PX, so no key
# lives without an expiry). The caller remembers that snapshot from an earlier answer
# and sends it: the room it implies makes one BITFIELD a conditional increment
# (OVERFLOW FAIL: "+ (max - room)" fails unless count <= room, and "- (max - room - cost)"
# then restores count + cost), and the same BITFIELD reads the snapshot to confirm it.
# Without a known snapshot (first request of this process for this client and window)
# or when it does not match (the key expired or Redis restarted), one MGET of both keys
# decides and one write counts.
# KEYS: current and previous window key per limit. ARGV: cost, peek (0/1), then limit,
# window (ms), time elapsed in the current window (ms) and the known previous count
# (-1: unknown) per limit. Returns "allowed" then per limit "used previous current"
# (before this request).
_SLIDING_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local count = ARGV[2] ~= '1' and cost > 0
local n = #KEYS / 2
local top = 1099511627775
local ok = 1
local state = {}
for i = 1, n do
  local cur, prev = KEYS[2 * i - 1], KEYS[2 * i]
  local limit = tonumber(ARGV[4 * i - 1])
  local window = tonumber(ARGV[4 * i])
  local left = window - tonumber(ARGV[4 * i + 1])
  local known = tonumber(ARGV[4 * i + 2])
  local s = {cur = cur, window = window}
  local pc, cc, snap
  if count and known >= 0 and ok == 1 then
    local room = limit - math.floor(known * left / window) - cost
    if room > 549755813887 then room = 549755813887 end
    local up = top - room
    local r = redis.call('bitfield', cur, 'OVERFLOW', 'FAIL', 'GET', 'u40', '#1', 'GET', 'u40', '#0',
      'INCRBY', 'u40', '#0', string.format('%d', up), 'INCRBY', 'u40', '#0', string.format('%d', cost - up))
    snap, cc = r[1], r[2]
    if snap == known + 1 then
      pc = known
      s.counted = r[4] ~= false
    elseif r[4] ~= false then
      redis.call('bitfield', cur, 'INCRBY', 'u40', '#0', -cost)
    end
    if snap == 0 then
      local p = redis.call('get', prev)
      pc = p and struct.unpack('>I5', p) or 0
      s.create = true
    elseif pc == nil then
      pc = snap - 1
    end
  else
    local v = redis.call('mget', cur, prev)
    if v[1] then cc, snap = struct.unpack('>I5I5', v[1]) else cc, snap = 0, 0 end
    if snap > 0 then
      pc = snap - 1
    else
      pc = v[2] and struct.unpack('>I5', v[2]) or 0
      s.create = true
    end
  end
  local used = math.floor(pc * left / window) + cc
  if used + cost > limit then ok = 0 end
  s.pc, s.cc, s.used = pc, cc, used
  state[i] = s
end
local out = {}
for i = 1, n do
  local s = state[i]
  if count then
    local add = (ok == 1 and not s.counted) and cost or 0
    if ok == 0 and s.counted then
      redis.call('bitfield', s.cur, 'INCRBY', 'u40', '#0', -cost)
    elseif s.create then
      redis.call('set', s.cur, struct.pack('>I5I5', s.cc + add, s.pc + 1), 'PX', 2 * s.window)
    elseif add > 0 then
      redis.call('bitfield', s.cur, 'INCRBY', 'u40', '#0', add)
    end
  end
  out[3 * i - 2] = s.used
  out[3 * i - 1] = s.pc
  out[3 * i] = s.cc
end
return ok .. ' ' .. table.concat(out, ' ')
"""


class ScriptEngine:
    """Redis/Valkey through a ``limits.aio`` storage's client: one EVALSHA per request.

    Requests that arrive while others wait on Redis are sent together in one
    pipeline (auto-pipelining): still one atomic script call per request, but one
    network round trip and one connection checkout per batch, which is most of the
    cost of a redis-py call. The script answers with one short string ("1 41")
    because parsing a flat RESP array costs more than ``split()``; the caller
    derives the reset times from the clock-aligned windows.
    """

    def __init__(
        self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str, timeout: float = 0.5
    ) -> None:
        from limits.storage import storage_from_string

        # limits builds the client (URI parsing, TLS, cluster, sentinel); we only add a script.
        self.storage = storage_from_string("async+" + uri, **client_options(uri, options, timeout))
        self.client = self.storage.bridge.get_connection()  # type: ignore[union-attr]
        self.sliding = strategy == "sliding-window"
        self.lua = _SLIDING_WINDOW_LUA if self.sliding else _FIXED_WINDOW_LUA
        self.sha = hashlib.sha1(self.lua.encode("utf-8")).hexdigest()
        self.prefix = f"{key_prefix}:{'sw2' if self.sliding else 'fw'}"
        # Cluster pipelines cannot carry scripts across slots: one call per request there.
        self.batching = "cluster" not in scheme_of(uri)
        # Plain Redis/Valkey get a pool with timeouts (client_options); cluster and
        # sentinel clients do not, so those calls get a cancel scope.
        self.bounded = scheme_of(uri) in _POOLED
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Sliding window: current window key -> the previous window's count, as the
        # script last reported it (see _SLIDING_WINDOW_LUA). Emptied when it grows large.
        self._known: dict[str, int] = {}

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        now = time.time()
        cost = max(0, cost)
        # One hash tag per (policy, client): all keys of a request live on one cluster slot.
        tag = f"{self.prefix}:{{{namespace}/{client}}}"
        keys: list[str] = []
        args: list[Any] = [cost, 1 if peek else 0]
        known = self._known
        for window in windows:
            index = int(now // window.seconds)
            if self.sliding:
                this = f"{tag}/{window.tag}/{index}"
                keys += (this, f"{tag}/{window.tag}/{index - 1}")
                elapsed = int((now - index * window.seconds) * 1000)
                args += (window.amount, window.seconds * 1000, elapsed, known.get(this, -1))
            else:
                keys.append(f"{tag}/{window.tag}/{index}")
                args += (window.amount, window.seconds * 1000)
        if len(known) > 50_000:
            known.clear()
        call = [len(keys), *keys, *args]
        reply = await (self._batched(call) if self.batching else self._evalsha(call))
        values = [int(part) for part in reply.split()]
        allowed = values[0] == 1
        counted = allowed and not peek and cost > 0
        stats = []
        for i, window in enumerate(windows):
            seconds = window.seconds
            left = seconds - (now - int(now // seconds) * seconds)
            if self.sliding:
                used, previous, current = values[1 + 3 * i : 4 + 3 * i]
                # The previous window's count is final: the next request sends it back.
                known[keys[2 * i]] = previous
                violated = used + cost > window.amount
                if violated:
                    reset = sliding_wait(previous, current, left, seconds, window.amount, cost)
                else:
                    reset = sliding_refill(previous, left, seconds)
            else:
                used = values[1 + i]
                violated = used + cost > window.amount
                reset = left
            if counted:
                used += cost
            stats.append(Stat(window, max(0, window.amount - used), reset, violated))
        return Decision(allowed, tuple(stats))

    async def _evalsha(self, call: list[Any]) -> Any:
        try:
            return await self.client.evalsha(self.sha, *call)
        except Exception as exc:
            if not _is_noscript(exc):
                raise
            # Redis restarted (or SCRIPT FLUSH): load the script and try once more.
            await self.client.script_load(self.lua)
            return await self.client.evalsha(self.sha, *call)

    def _batched(self, call: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((call, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Flush on the next loop turn: every request that reaches this point in
            # the meantime rides in the same pipeline.
            loop.call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                results: list[Any] = [await self._evalsha(batch[0][0])]
            else:
                results = await self._pipeline([call for call, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the request gave up (timeout or disconnect); it was still counted
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, calls: list[list[Any]]) -> list[Any]:
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                pipe.evalsha(self.sha, *call)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(
                _is_noscript(result) for result in results if isinstance(result, Exception)
            ):
                # Nothing ran (every EVALSHA of this batch failed the same way): load and resend.
                await self.client.script_load(self.lua)
                continue
            return results
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await _close_storage(self.storage)


def _is_noscript(exc: BaseException) -> bool:
    return type(exc).__name__ == "NoScriptError" or str(exc).startswith("NOSCRIPT")


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


def client_options(uri: str, options: dict[str, Any], timeout: float = 0.5) -> dict[str, Any]:
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
    # A hung server must not hold a connection for ever (calls give up at storage_timeout).
    connection.setdefault("socket_timeout", max(1.0, 2 * timeout))
    connection.setdefault("socket_connect_timeout", max(1.0, 2 * timeout))
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

    def __init__(
        self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str, timeout: float = 0.5
    ) -> None:
        self.uri = uri
        self.timeout = timeout
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
            return ScriptEngine(self.uri, self.strategy, self.options, self.key_prefix, self.timeout)
        return AsyncEngine(self.uri, self.strategy, self.options, self.timeout)

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
