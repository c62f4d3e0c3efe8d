"""The moving window on Redis/Valkey: hardenkit's own Lua script, one round trip per request.

limits' moving window takes two calls per request (acquire, then the window
stats), counts a refused request on the limits that still had room when a
request has several, and writes under limits' own key prefix. This script keeps
the log of each limit in one string (the units it holds, 5 bytes, then entries
of 11 bytes: the time in ms, 6 bytes, and the units, 5 bytes, oldest first; a
check reads only the header and the entries that just expired), checks every limit of the request,
counts them only if all pass, and never counts a refused request.

One command inside Redis per limit: the process remembers each log as it last
left it and sends what it expects there. When the request should be admitted it
sends the new log too, and one ``SET ... GET`` writes it and returns the old
value to compare; otherwise one ``MGET`` reads and compares. Only when the log
is not what the process expected (another process wrote it, it expired, or the
process has never seen it) does the script decide from the stored logs and write
again: correctness never depends on the remembered copy, only the cost does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from .engine import Decision, Stat, Window, moving_stamp

ENTRY = 11
#: Logs longer than this are not remembered (their requests cost one more command);
#: a log holds at most MOVING_RESOLUTION + 1 entries (about 5.6 KiB).
MAX_REMEMBERED_BYTES = 6144
#: Bytes of remembered logs per process (beyond it the memory is emptied and refills).
MAX_REMEMBERED_TOTAL = 16 * 1024 * 1024

# KEYS: one key per limit. ARGV: cost, peek (0/1), now (ms), mode ('w': the process
# expects to admit and count, 'r': anything else), then per limit: limit, window (ms),
# the time to record an entry at (engine.moving_stamp), the expected log ('?':
# unknown), and in mode 'w' the log to write. An entry recorded at the same time as
# the last one is merged into it.
# Returns {2} when the expectation held (the process's own decision stands), else
# {allowed, stored log per limit} (the logs as they were before this request).
MOVING_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
local count = ARGV[2] ~= '1' and cost > 0
local now = tonumber(ARGV[3])
local write = ARGV[4] == 'w'
local per = write and 5 or 4
local n = #KEYS
local olds = {}
local matched = true
if write then
  for i = 1, n do
    local b = 4 + per * (i - 1)
    local old = redis.call('set', KEYS[i], ARGV[b + 5], 'GET', 'PX', ARGV[b + 2])
    olds[i] = old or ''
    if olds[i] ~= ARGV[b + 4] then matched = false end
  end
else
  local v = redis.call('mget', unpack(KEYS))
  for i = 1, n do
    olds[i] = v[i] or ''
    if olds[i] ~= ARGV[4 + per * (i - 1) + 4] then matched = false end
  end
end
if matched then return {2} end
local ok = 1
local kept, totals = {}, {}
for i = 1, n do
  local b = 4 + per * (i - 1)
  local limit, horizon = tonumber(ARGV[b + 1]), now - tonumber(ARGV[b + 2])
  local log = olds[i]
  local total, j = 0, 6
  if #log >= 5 then total = struct.unpack('>I5', log) end
  -- Only the expired entries at the front are read: the header holds the total.
  while j <= #log do
    local ts, c = struct.unpack('>I6I5', log, j)
    if ts > horizon then break end
    total = total - c
    j = j + 11
  end
  kept[i], totals[i] = string.sub(log, j), total
  if total + cost > limit then ok = 0 end
end
local out = {ok}
local admitted = ok == 1 and count
for i = 1, n do
  local b = 4 + per * (i - 1)
  local final = ''
  if admitted then
    local k, stamp = kept[i], tonumber(ARGV[b + 3])
    local m = #k
    if m >= 11 and struct.unpack('>I6', k, m - 10) == stamp then
      local _, c = struct.unpack('>I6I5', k, m - 10)
      k = string.sub(k, 1, m - 11) .. struct.pack('>I6I5', stamp, c + cost)
    else
      k = k .. struct.pack('>I6I5', stamp, cost)
    end
    final = struct.pack('>I5', totals[i] + cost) .. k
  elseif kept[i] ~= '' then
    final = struct.pack('>I5', totals[i]) .. kept[i]
  end
  if write or admitted then
    if final == '' then
      redis.call('del', KEYS[i])
    elseif not (write and final == ARGV[b + 5]) then
      redis.call('set', KEYS[i], final, 'PX', ARGV[b + 2])
    end
  end
  out[i + 1] = olds[i]
end
return out
"""

_PACK = struct.Struct(">Q")
HEADER = 5


def entry(now_ms: int, cost: int) -> bytes:
    return _PACK.pack(now_ms)[2:] + _PACK.pack(cost)[3:]


def split(log: bytes, horizon_ms: int) -> tuple[int, int]:
    """(units in the window, offset of its first live entry) of a stored log, as the script reads it."""
    if len(log) < HEADER:
        return 0, HEADER
    total = int.from_bytes(log[:HEADER], "big")
    i = HEADER
    while i < len(log) and int.from_bytes(log[i : i + 6], "big") <= horizon_ms:
        total -= int.from_bytes(log[i + 6 : i + ENTRY], "big")
        i += ENTRY
    return total, i


def advance(log: bytes, horizon_ms: int, stamp: int | None, cost: int) -> bytes:
    """The log the script stores: expired entries gone, ``cost`` units at ``stamp`` added."""
    total, start = split(log, horizon_ms)
    kept = log[start:]
    if stamp is None:
        return total.to_bytes(HEADER, "big") + kept if kept else b""
    if len(kept) >= ENTRY and int.from_bytes(kept[-ENTRY : -ENTRY + 6], "big") == stamp:
        merged = int.from_bytes(kept[-ENTRY + 6 :], "big") + cost
        kept = kept[:-ENTRY] + entry(stamp, merged)
    else:
        kept += entry(stamp, cost)
    return (total + cost).to_bytes(HEADER, "big") + kept


class MovingPlan:
    """One request on the moving window: the script call, then the decision from its reply."""

    __slots__ = ("cost", "count", "expected", "keys", "new", "now_ms", "stamp_ms", "windows")

    def __init__(
        self,
        windows: Sequence[Window],
        keys: list[str],
        expected: list[bytes | None],
        now: float,
        cost: int,
        peek: bool,
    ) -> None:
        self.windows = windows
        self.keys = keys
        self.expected = expected
        # Entries expire against the time rounded down and are recorded at the time
        # rounded up: to the ms, never early.
        self.now_ms = math.floor(now * 1000)
        self.stamp_ms = math.ceil(now * 1000)
        self.cost = cost
        self.count = not peek and cost > 0
        self.new: list[bytes] | None = None

    def call(self) -> list[Any]:
        """Arguments of EVALSHA after the script's digest."""
        predicted = None
        if all(log is not None for log in self.expected):
            predicted = self.decide([log or b"" for log in self.expected])
        write = predicted is not None and predicted.allowed and self.count
        args: list[Any] = [self.cost, 0 if self.count else 1, self.now_ms, "w" if write else "r"]
        stamps = [moving_stamp(self.stamp_ms, w) for w in self.windows]
        if write:
            self.new = [
                advance(log or b"", self.now_ms - w.seconds * 1000, stamp, self.cost)
                for log, w, stamp in zip(self.expected, self.windows, stamps, strict=True)
            ]
        for i, window in enumerate(self.windows):
            log = self.expected[i]
            args += (window.amount, window.seconds * 1000, stamps[i], b"?" if log is None else log)
            if self.new is not None:
                args.append(self.new[i])
        return [len(self.keys), *self.keys, *args]

    def result(self, reply: Sequence[Any]) -> tuple[Decision, list[bytes]]:
        """The decision, and each log as the script left it (for the next request)."""
        if int(reply[0]) == 2:
            logs = [log or b"" for log in self.expected]
            decision = self.decide(logs)
            if self.new is not None:
                return decision, self.new
            return decision, logs
        logs = [bytes(value or b"") for value in reply[1:]]
        decision = self.decide(logs)
        counted = decision.allowed and self.count
        after = [
            advance(
                log,
                self.now_ms - window.seconds * 1000,
                moving_stamp(self.stamp_ms, window) if counted else None,
                self.cost,
            )
            for log, window in zip(logs, self.windows, strict=True)
        ]
        return decision, after

    def decide(self, logs: Sequence[bytes]) -> Decision:
        """What the script decides for these logs, with the headers' numbers."""
        now = self.now_ms
        cost = self.cost
        checks = []
        allowed = True
        for log, window in zip(logs, self.windows, strict=True):
            horizon = now - window.seconds * 1000
            used, start = split(log, horizon)
            ok = used + cost <= window.amount
            allowed = allowed and ok
            checks.append((window, log, start, used, ok, horizon))
        counted = allowed and self.count
        stats = []
        # Waits count from the time this request's entry is recorded at (rounded up to
        # the ms), so the entry just made leaves in exactly one window, as in memory.
        shift = self.stamp_ms - self.now_ms
        for window, log, start, used, ok, horizon in checks:
            if not ok:
                reset = _wait(log, start, used, cost, window, horizon + shift)
            elif start < len(log):
                reset = max(0.0, (int.from_bytes(log[start : start + 6], "big") - horizon - shift) / 1000)
            else:
                reset = float(window.seconds)
            if counted:
                used += cost
            stats.append(Stat(window, max(0, window.amount - used), reset, not ok))
        return Decision(allowed, tuple(stats))


def _wait(log: bytes, start: int, used: int, cost: int, window: Window, horizon: int) -> float:
    """Seconds until enough of the oldest entries leave for ``cost`` more units."""
    if cost > window.amount:
        return float(window.seconds)
    needed = used + cost - window.amount
    freed = 0
    for i in range(start, len(log) - ENTRY + 1, ENTRY):
        freed += int.from_bytes(log[i + 6 : i + ENTRY], "big")
        if freed >= needed:
            return max(0.0, (int.from_bytes(log[i : i + 6], "big") - horizon) / 1000)
    return float(window.seconds)  # pragma: no cover - the entries always add up to used
