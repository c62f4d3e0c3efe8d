"""The in-process counting store of the rate limiter (``memory://`` and the outage fallback).

It is bounded: at most ``max_keys`` entries (one per client, policy and limit) are
kept. Idle entries leave in O(1) with their generation (see :class:`_Generations`);
when the store is full, a new entry first makes room by dropping an entry that was
not used since the last rotation, else the most recently created one (a client
rotating keys churns through its own fresh entries and never flushes the counts
of established clients). An entry in the store always holds its full count, so a
key still in the store is never admitted beyond its limit; a dropped key starts
from zero when it returns. ``DEFAULT_MAX_KEYS`` entries use roughly 40 MB (see
benchmarks/bench_ratelimit_memory.py for the bytes per key).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .engine import (
    MOVING_RESOLUTION,
    STRATEGY_NAMES,
    Decision,
    Stat,
    Window,
    moving_stamp,
    sliding_refill,
    sliding_wait,
)

#: The default cap on entries of the in-process store.
DEFAULT_MAX_KEYS = 100_000

__all__ = ["DEFAULT_MAX_KEYS", "LocalEngine"]


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

    def __init__(
        self, strategy: str, clock: Callable[[], float] = time.time, *, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if strategy not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {strategy!r}")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be a whole number >= 1, got {max_keys!r}")
        self.strategy = strategy
        self.clock = clock
        self.max_keys = max_keys
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
                    self._make_room()
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

    def __len__(self) -> int:
        """Entries held now (each client, policy and limit is one)."""
        return sum(len(gens.current) + len(gens.old) for gens in self._gens.values())

    def _make_room(self) -> None:
        """Drop one entry if the store is full (the lock is held)."""
        if len(self) < self.max_keys:
            return
        # Unused since the last rotation first: the least recently used ones.
        for gens in self._gens.values():
            if gens.old:
                gens.old.popitem()
                return
        # Then the newest entry: a flood of fresh keys churns through its own entries
        # and leaves the counts of established clients alone.
        for gens in self._gens.values():
            if gens.current:
                gens.current.popitem()
                return

    def seed(self, windows: Sequence[Window], namespace: str, client: str, stats: Sequence[Stat]) -> None:
        """Carry the counts the shared storage last reported, so a fallback starts from them.

        Only raises a count: the fallback never grants a client more than it had left.
        """
        now = self.clock()
        with self._lock:
            for window, stat in zip(windows, stats, strict=False):
                used = window.amount - stat.remaining
                if used <= 0:
                    continue
                gens = self._gens.get(window.seconds)
                if gens is None:
                    gens = self._gens[window.seconds] = _Generations(window.seconds, now)
                key = (window.tag, namespace, client)
                entry = gens.get(key, now)
                if entry is None:
                    entry = self._fresh(now, window)
                    self._make_room()
                    gens.put(key, entry)
                have, _ = self._check(entry, window, now)
                if used > have:
                    self._count(entry, window, now, used - have, 0.0)

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
        # Recorded at the window's resolution, as on Redis (see moving_stamp).
        stamp = (
            now if window.amount <= MOVING_RESOLUTION else moving_stamp(math.ceil(now * 1000), window) / 1000
        )
        if log and log[-1][0] == stamp:
            log[-1] = (stamp, log[-1][1] + cost)
        else:
            log.append((stamp, cost))
        entry[1] += cost
        return reset_in
