"""Failed-attempt limiting per client address, in memory, before any key is checked.

Written here rather than on the rate limiter's storages because it must cost nothing for good
requests (no storage call: a dict lookup per request, a write only on failure) and work when the
rate limiter is not installed. Memory is bounded: at most ``max_clients`` addresses are tracked, the
least recently failed forgotten first. IPv6 clients are counted per /64, the block one customer holds.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigurationError

__all__ = ["FailedAttempts", "client_address"]


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer address of the connection (``scope["client"]``), IPv6 reduced to its /64."""
    client = scope.get("client")
    host = client[0] if client else None
    if not isinstance(host, str) or not host:
        return "unknown"
    if ":" in host:
        try:
            network = ipaddress.IPv6Network(f"{host}/64", strict=False)
        except ValueError:
            return host[:64]
        return str(network)
    return host[:64]


class FailedAttempts:
    """At most ``max_failures`` failed attempts per address per ``window`` seconds (fixed window)."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, *, max_clients: int = 100_000) -> None:
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
            raise ConfigurationError(
                f"max_failures: expected a whole number >= 1 (e.g. 10), got {max_failures!r}"
            )
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window <= 86400:
            raise ConfigurationError(f"failure_window: expected seconds in (0, 86400], got {window!r}")
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ConfigurationError(f"max_clients: expected a whole number >= 1, got {max_clients!r}")
        self.max_failures = max_failures
        self.window = float(window)
        self.max_clients = max_clients
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._clock: Callable[[], float] = time.monotonic

    def __len__(self) -> int:
        return len(self._counts)

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again, or 0 when it may try now."""
        entry = self._counts.get(client)
        if entry is None:
            return 0
        started, count = entry
        elapsed = self._clock() - started
        if elapsed >= self.window:
            del self._counts[client]
            return 0
        if count < self.max_failures:
            return 0
        return max(1, math.ceil(self.window - elapsed))

    def failed(self, client: str) -> None:
        now = self._clock()
        entry = self._counts.pop(client, None)
        if entry is None or now - entry[0] >= self.window:
            entry = (now, 0)
        self._counts[client] = (entry[0], entry[1] + 1)
        while len(self._counts) > self.max_clients:
            self._counts.popitem(last=False)
