"""Network storages: one engine per event loop, client options, and :class:`StorageGuard` (outages).

:class:`StorageGuard` keeps the storage's health: it backs off while the storage
is unreachable and logs once when an outage starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from .clients import scheme_of
from .engine import _SCRIPT_SCHEMES, _VALKEY_SCHEMES, AsyncEngine, Engine, ThreadEngine
from .scripts import ScriptEngine, ThreadScriptEngine

logger = logging.getLogger("hardenkit.ratelimit")

#: The longest wait between two probes of a storage that is down (seconds): once it is
#: back, the fallback (or the 503s of "deny") lasts at most this long.
MAX_BACKOFF = 5.0


def uses_script(uri: str, strategy: str = "") -> bool:
    scheme = scheme_of(uri)
    return scheme in _SCRIPT_SCHEMES or scheme in _VALKEY_SCHEMES


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
        self._thread_engine: Engine | None = None
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
                if uses_script(self.uri):
                    self._thread_engine = ThreadScriptEngine(
                        self.uri, self.strategy, options, self.key_prefix, self.timeout
                    )
                else:
                    self._thread_engine = ThreadEngine(self.uri, self.strategy, options)
            return self._thread_engine
        engine = self._by_loop.get(loop)
        if engine is None:
            engine, self._spare = (self._spare or self._make()), None
            self._by_loop[loop] = engine
        return engine

    async def startup(self) -> None:
        """Connect before serving (lifespan startup): slot table and script loaded."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        prepare = getattr(self.current(), "prepare", None)
        if prepare is not None:
            await prepare()

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
        max_backoff: float = MAX_BACKOFF,
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
        self.recovered_at = float("-inf")

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

    def failed(self, exc: BaseException, *, probe: bool, started: float | None = None) -> None:
        """Record a failed call; ``probe`` is True for the call that ``should_try`` let through.

        ``started`` is the clock when the call began: a call that was already in flight
        when the storage came back (it failed with the outage that just ended) starts
        no new outage.
        """
        now = self.clock()
        if self.healthy and started is not None and started <= self.recovered_at:
            return
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
        self.recovered_at = self.clock()
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
