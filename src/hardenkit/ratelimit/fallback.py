"""Deciding a request when the storage may fail: retries, outages, fallbacks and their budgets.

:class:`Decider` is the one place a request's check-and-count happens. It tells
three kinds of failure apart:

* a storage outage (connection refused, a hung server, a failover): only after
  one retry on a fresh connection fails, so one stale pooled connection or one
  MOVED storm is not an outage; then :class:`StorageGuard` backs off (capped at
  ``MAX_BACKOFF``) and logs the start and the end, and ``on_storage_error``
  applies;
* a burst that keeps every connection busy: the request waited its turn (that
  is not an outage) and, past the wait bound, is answered alone as
  ``on_storage_error`` says, without switching the process to its fallback;
* an error that belongs to one request (a script error, a wrong type under one
  key): logged (once a minute at most) and answered from the process's own
  counts; the storage stays in use for everyone else.

With ``on_storage_error="memory"`` every answer from the shared storage also
updates the process's own counts (only ever upwards), so a fallback continues
from the last known counts instead of granting each client a fresh budget.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import anyio

from .engine import ALLOWED_BLIND, Decision, Engine, Window
from .memory import LocalEngine
from .scripts import StorageBusy
from .storage import NetworkEngines, StorageGuard

logger = logging.getLogger("hardenkit.ratelimit")

# Replies that mean "the storage is changing under us", not "this request is wrong".
_TRANSIENT_REPLIES = (
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "LOADING",
    "BUSY",
    "NOREPLICAS",
    "NOSCRIPT",
    "OOM",
)


def is_request_error(exc: BaseException) -> bool:
    """True for a failure that one request causes and that retrying cannot fix."""
    if isinstance(exc, (ValueError, TypeError, ArithmeticError, IndexError)):
        return True  # a reply this process could not use: a bug in one request
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "DataError" in names:
        return True  # the client refused to send this request's arguments
    if "ResponseError" not in names or names & {"ConnectionError", "ClusterError"}:
        return False
    return not str(exc).lstrip().upper().startswith(_TRANSIENT_REPLIES)


def clamp_cost(cost: int, windows: Sequence[Window]) -> int:
    """``cost`` bounded to what can change a decision (a larger cost is refused all the same)."""
    if cost <= 0:
        return 0
    most = max((window.amount for window in windows), default=0)
    return cost if cost <= most else most + 1


class Decider:
    """Check-and-count for one middleware: its storage, guard and fallback."""

    def __init__(
        self,
        *,
        guard: StorageGuard,
        mode: str,
        timeout: float,
        memory: LocalEngine | None = None,
        network: NetworkEngines | None = None,
        local: LocalEngine | None = None,
        on_degraded: Callable[[str], None] | None = None,
    ) -> None:
        self.guard = guard
        # Told of every request decided by the fallback (for metrics); must be quick.
        self.on_degraded = on_degraded
        self.mode = mode
        self.timeout = timeout
        self.memory = memory
        self.network = network
        # The process's own counts: the "memory" fallback, and the answer to a request
        # whose own storage call is broken.
        self.local = local
        self.carry = mode == "memory"
        self._last_request_error = float("-inf")

    async def decide(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision | None:
        """Check (and unless ``peek``, count) one request; None means "refuse: storage down"."""
        cost = clamp_cost(cost, windows)
        if self.memory is not None:
            return self.memory.decide(windows, namespace, client, cost, peek)
        assert self.network is not None and self.local is not None
        guard = self.guard
        probe = not guard.healthy
        if guard.should_try():
            started = guard.clock()
            try:
                decision = await self._attempt(windows, namespace, client, cost, peek)
            except StorageBusy:
                return self._degraded(windows, namespace, client, cost, peek)
            except Exception as exc:  # any storage failure degrades as configured, never a 500
                if is_request_error(exc):
                    self._request_error(exc)
                    return self.local.decide(windows, namespace, client, cost, peek)
                guard.failed(exc, probe=probe, started=started)
            else:
                guard.succeeded()
                if self.carry and decision.stats:
                    self.local.seed(windows, namespace, client, decision.stats)
                return decision
        return self._degraded(windows, namespace, client, cost, peek)

    def _degraded(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision | None:
        if self.on_degraded is not None:
            self.on_degraded(self.mode)
        if self.mode == "allow":
            return ALLOWED_BLIND
        if self.mode == "memory":
            assert self.local is not None
            return self.local.decide(windows, namespace, client, cost, peek)
        return None

    async def _attempt(
        self, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        assert self.network is not None
        engine = self.network.current()
        try:
            return await self._once(engine, windows, namespace, client, cost, peek)
        except Exception as exc:
            if isinstance(exc, (TimeoutError, StorageBusy)) or is_request_error(exc):
                raise
            # A stale pooled connection (Redis restarted, a failover) or a MOVED storm:
            # once more, on a fresh connection, before calling it an outage.
            reset = getattr(engine, "reset", None)
            if reset is not None:
                with contextlib.suppress(Exception):
                    await reset()
            return await self._once(engine, windows, namespace, client, cost, peek)

    async def _once(
        self, engine: Engine, windows: Sequence[Window], namespace: str, client: str, cost: int, peek: bool
    ) -> Decision:
        if engine.bounded:
            return await engine.acquire(windows, namespace, client, cost, peek)
        with anyio.fail_after(self.timeout):
            return await engine.acquire(windows, namespace, client, cost, peek)

    def _request_error(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_request_error < 60.0:
            return
        self._last_request_error = now
        logger.error(
            "rate-limit storage %s refused one request (%s: %s); that request is counted in "
            "this process only, the storage stays in use",
            self.guard.storage,
            type(exc).__name__,
            str(exc).replace("\r", " ").replace("\n", " ")[:200],
        )
