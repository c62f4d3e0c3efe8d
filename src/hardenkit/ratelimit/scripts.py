"""The Redis/Valkey Lua scripts: every limit of a request checked and counted in one round trip.

The fixed and sliding window scripts live here, the moving window's in ``moving``;
:class:`ScriptEngine` runs all three. Imports limits' async storages lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import anyio
import anyio.to_thread

from .clients import DEFAULT_MAX_CONNECTIONS, _close_storage, client_options, scheme_of
from .engine import Decision, Stat, Window, sliding_refill, sliding_wait
from .moving import MAX_REMEMBERED_BYTES, MAX_REMEMBERED_TOTAL, MOVING_WINDOW_LUA, MovingPlan

logger = logging.getLogger("hardenkit.ratelimit")

_FIXED_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local n = #KEYS
local used = {}
local ok = 1
if ARGV[2] == '1' or cost == 0 then
  local counts = redis.call('mget', unpack(KEYS))
  for i = 1, n do
    -- A full window's counter can exceed its limit (refused requests of cost 1 on one
    -- limit are not given back): it means "full", the same as in memory.
    used[i] = math.min(tonumber(counts[i]) or 0, tonumber(ARGV[1 + 2 * i]))
    if used[i] + cost > tonumber(ARGV[1 + 2 * i]) then ok = 0 end
  end
else
  for i = 1, n do
    local c = redis.call('incrby', KEYS[i], cost)
    if c == cost then redis.call('pexpire', KEYS[i], ARGV[2 + 2 * i]) end
    used[i] = math.min(c - cost, tonumber(ARGV[1 + 2 * i]))
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


#: Most script calls sent in one pipeline.
MAX_BATCH = 64
#: Loop turns a timed-out call gives the event loop to read replies that already arrived.
CATCH_UP_TURNS = 16


class StorageBusy(Exception):
    """Every connection stayed busy for longer than the wait bound (a burst, not an outage)."""


class ScriptEngine:
    """Redis/Valkey through a ``limits.aio`` storage's client: one EVALSHA per request.

    Requests that arrive while others wait on Redis are sent together in one
    pipeline (auto-pipelining): still one atomic script call per request, but one
    network round trip and one connection checkout per batch, which is most of the
    cost of a redis-py call. The fixed and sliding window scripts answer with one
    short string ("1 41") because parsing a flat RESP array costs more than
    ``split()``; the caller derives the reset times from the clock-aligned windows.

    Calls take a slot first (one per pooled connection, so the client's own pool
    never runs dry, whatever the scheme): waiting for a slot is a burst, not an
    outage, and only the call itself is bounded by ``storage_timeout``.
    """

    bounded = True

    def __init__(
        self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str, timeout: float = 0.5
    ) -> None:
        from limits.storage import storage_from_string

        # limits builds the client (URI parsing, TLS, cluster, sentinel); we only add a script.
        built, self.max_connections = client_options(uri, options, timeout)
        self.storage = storage_from_string("async+" + uri, **built)
        self.client = self.storage.bridge.get_connection()  # type: ignore[union-attr]
        self._setup(uri, strategy, key_prefix, timeout)

    def _setup(self, uri: str, strategy: str, key_prefix: str, timeout: float) -> None:
        self.strategy = strategy
        self.sliding = strategy == "sliding-window"
        self.moving = strategy == "moving-window"
        self.lua = (
            MOVING_WINDOW_LUA if self.moving else _SLIDING_WINDOW_LUA if self.sliding else _FIXED_WINDOW_LUA
        )
        # EVALSHA names scripts by SHA-1 (Redis protocol); not a security use.
        self.sha = hashlib.sha1(self.lua.encode("utf-8"), usedforsecurity=False).hexdigest()
        self.prefix = f"{key_prefix}:{'mw' if self.moving else 'sw2' if self.sliding else 'fw'}"
        self.timeout = timeout
        # A burst waits this long for a connection before the request is refused alone.
        self.wait_bound = max(5.0, 10 * timeout)
        self.cluster = "cluster" in scheme_of(uri)
        # Cluster pipelines cannot carry scripts across slots: one call per request there.
        self.batching = not self.cluster
        self._slots = asyncio.Semaphore(self.max_connections)
        self._ready = False
        self._last_reply = float("-inf")
        self._preparing: asyncio.Future[None] | None = None
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Sliding window: current window key -> the previous window's count, as the
        # script last reported it (see _SLIDING_WINDOW_LUA). Moving window: key -> the
        # log as the script left it (see moving.py). Emptied when they grow large.
        self._known: dict[str, int] = {}
        self._logs: dict[str, bytes] = {}
        self._logs_bytes = 0

    async def prepare(self) -> None:
        """Load the cluster's slot table and the script, once, before the first request.

        A cluster client used before its slot table is loaded sends commands to the
        wrong nodes; MOVED replies then close its connections. Concurrent callers
        share one attempt; a failed attempt is retried by a later request.
        """
        if self._ready:
            return
        task = self._preparing
        if task is None:
            task = self._preparing = asyncio.ensure_future(self._prepare())
        try:
            await asyncio.shield(task)
        except BaseException:
            if task.done() and self._preparing is task:
                self._preparing = None
            raise

    async def _prepare(self) -> None:
        async with self._slot():
            with anyio.fail_after(self.timeout * 4):
                if self.cluster:
                    await self.client.initialize()
                await self.client.script_load(self.lua)
        self._ready = True

    async def reset(self) -> None:
        """Drop idle pooled connections: after a restart or a failover every one is stale."""
        pool = getattr(self.client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect(inuse_connections=False)

    async def acquire(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        if not self._ready:
            await self.prepare()
        now = time.time()
        cost = max(0, cost)
        # One hash tag per (policy, client): all keys of a request live on one cluster slot.
        tag = f"{self.prefix}:{{{namespace}/{client}}}"
        if self.moving:
            return await self._moving(windows, tag, now, cost, peek)
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
        reply = await self._send([len(keys), *keys, *args])
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

    async def _moving(
        self, windows: Sequence[Window], tag: str, now: float, cost: int, peek: bool
    ) -> Decision:
        logs = self._logs
        keys = [f"{tag}/{window.tag}" for window in windows]
        plan = MovingPlan(windows, keys, [logs.get(key) for key in keys], now, cost, peek)
        reply = await self._send(plan.call())
        decision, after = plan.result(reply)
        if self._logs_bytes > MAX_REMEMBERED_TOTAL:
            logs.clear()
            self._logs_bytes = 0
        for key, log in zip(keys, after, strict=True):
            old = logs.pop(key, None)
            self._logs_bytes -= len(old) if old is not None else 0
            if len(log) <= MAX_REMEMBERED_BYTES:
                logs[key] = log
                self._logs_bytes += len(log)
        return decision

    async def _send(self, call: list[Any]) -> Any:
        if self.batching:
            return await self._batched(call)
        async with self._slot():
            return await self._bounded(self._evalsha(call))

    async def _bounded(self, call: Coroutine[Any, Any, Any]) -> Any:
        """``call``'s result, or TimeoutError once the storage stopped answering.

        storage_timeout detects a storage that does not answer, not a busy process:
        under a burst the replies sit in the sockets while this process's event loop
        works through its backlog. When the time is up, the loop first gets a few
        turns to read what arrived; if this call or any other got its reply in the
        last ``storage_timeout`` (the storage is alive), or the loop is too busy to
        tell, the call keeps waiting, up to the wait bound, and its request still gets
        the storage's exact answer. A hung storage seen from an idle loop fails at
        storage_timeout.
        """
        loop = asyncio.get_running_loop()
        task = loop.create_task(call)
        task.add_done_callback(self._replied)
        started = window = loop.time()
        try:
            while True:
                waited_from = loop.time()
                await asyncio.wait({task}, timeout=self.timeout)
                late = loop.time() - waited_from - self.timeout
                longest_turn = 0.0
                for _ in range(CATCH_UP_TURNS):
                    if task.done():
                        break
                    turn = loop.time()
                    await asyncio.sleep(0)
                    longest_turn = max(longest_turn, loop.time() - turn)
                if task.done():
                    return task.result()
                now = loop.time()
                alive = self._last_reply > window
                # A loop that woke late or needs a fifth of the timeout for one turn (a
                # backlog, or a process without a CPU) may not have read the reply yet:
                # that says nothing about the storage.
                busy = max(late, longest_turn) > self.timeout / 5
                if not (alive or busy) or now - started >= self.wait_bound:
                    raise TimeoutError(f"no reply from the storage within {now - window:.1f}s")
                window = now
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def _replied(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._last_reply = task.get_loop().time()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        try:
            with anyio.fail_after(self.wait_bound):
                await self._slots.acquire()
        except TimeoutError:
            raise StorageBusy(f"no connection free within {self.wait_bound:.1f}s") from None
        try:
            yield
        finally:
            self._slots.release()

    async def _evalsha(self, call: list[Any]) -> Any:
        try:
            return await self.client.evalsha(self.sha, *call)
        except Exception as exc:
            if not _is_noscript(exc):
                raise
            # Redis restarted, failed over or was flushed: EVAL runs (and caches) the
            # script on whichever node owns the keys, in the same single call.
            return await self.client.eval(self.lua, *call)

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
        # Bounded batches: a pipeline's time grows with its size, and each one must
        # finish within storage_timeout; the rest wait for the next connection.
        while len(self._pending) > MAX_BATCH:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._spawn(batch)
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        self._spawn(batch)

    def _spawn(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with self._slot():
                if len(batch) == 1:
                    results: list[Any] = [await self._bounded(self._evalsha(batch[0][0]))]
                else:
                    results = await self._bounded(self._pipeline([call for call, _ in batch]))
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the request gave up (disconnect); it was still counted
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


class ThreadScriptEngine(ScriptEngine):
    """The same scripts through limits' *sync* client, in bounded worker threads (trio).

    The asyncio clients cannot run under trio; the scripts, keys and key prefix are
    the same as on asyncio, so processes on either loop share exact counters.
    """

    bounded = False

    def __init__(
        self, uri: str, strategy: str, options: dict[str, Any], key_prefix: str, timeout: float = 0.5
    ) -> None:
        from limits.storage import storage_from_string

        connection = {k: v for k, v in options.items() if k not in ("implementation", "connection_pool")}
        self.max_connections = int(connection.get("max_connections", DEFAULT_MAX_CONNECTIONS))
        connection.setdefault("socket_timeout", max(1.0, 2 * timeout))
        connection.setdefault("socket_connect_timeout", max(1.0, 2 * timeout))
        self.storage = storage_from_string(uri, **connection)
        self.sync_client: Any = self.storage.get_connection()  # type: ignore[union-attr]
        self._setup(uri, strategy, key_prefix, timeout)
        self.batching = False
        self.limiter = anyio.CapacityLimiter(min(16, self.max_connections))

    async def prepare(self) -> None:
        self._ready = True  # a NOSCRIPT reply loads the script (EVAL) on first use

    async def reset(self) -> None:
        pool = getattr(self.sync_client, "connection_pool", None)
        if pool is not None:
            await anyio.to_thread.run_sync(pool.disconnect, False, limiter=self.limiter)

    async def _send(self, call: list[Any]) -> Any:
        return await anyio.to_thread.run_sync(self._call, call, limiter=self.limiter, abandon_on_cancel=True)

    def _call(self, call: list[Any]) -> Any:
        try:
            return self.sync_client.evalsha(self.sha, *call)
        except Exception as exc:
            if not _is_noscript(exc):
                raise
            return self.sync_client.eval(self.lua, *call)

    async def aclose(self) -> None:
        return None
