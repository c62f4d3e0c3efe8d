"""Events between the components of one kit: one emits, another (metrics) listens.

A component that has something to report (a rate-limit decision, a storage
fallback, a probe result) emits an event through the kit's :class:`Events`; a
component that counts them listens. Neither knows the other: both find the same
channel with :func:`events_of` on the kit's ``Wiring``, whatever order they are
built in (Starlette builds the innermost middleware first, so an emitter may
exist before its listener). With no listener an emit costs one dict lookup, and
a standalone component (``kit=None``) gets a channel nobody listens to.

Standard library only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kit import Wiring

__all__ = [
    "HEALTH_CHECK",
    "HEALTH_PROBE",
    "RATELIMIT_DECISION",
    "RATELIMIT_FALLBACK",
    "Events",
    "events_of",
]

logger = logging.getLogger("hardenkit.events")

#: ``policy`` (the policy's name), ``result``: "allowed", "limited" or "unavailable" (refused: storage down).
RATELIMIT_DECISION = "ratelimit.decision"
#: ``mode``: the ``on_storage_error`` that decided ("allow", "deny" or "memory") while the storage was down.
RATELIMIT_FALLBACK = "ratelimit.fallback"
#: ``probe`` ("live", "ready", "health", "startup"), ``status`` ("pass", "warn" or "fail").
HEALTH_PROBE = "health.probe"
#: ``check`` (the check's name), ``status`` ("pass", "warn" or "fail").
HEALTH_CHECK = "health.check"

Listener = Callable[[dict[str, str]], None]

_WIRING_KEY = "hardenkit.events"


class Events:
    """Named event channels. Listeners are called in the emitter's task, so they must be quick."""

    __slots__ = ("_failed", "_listeners")

    def __init__(self) -> None:
        self._listeners: dict[str, tuple[Listener, ...]] = {}
        self._failed: set[int] = set()

    def listen(self, name: str, listener: Listener) -> None:
        """Call ``listener(fields)`` for every ``emit(name, **fields)``."""
        self._listeners[name] = (*self._listeners.get(name, ()), listener)

    def listening(self, name: str) -> bool:
        """True when someone listens to ``name`` (lets an emitter skip building its fields)."""
        return name in self._listeners

    def emit(self, name: str, /, **fields: str) -> None:
        listeners = self._listeners.get(name)
        if not listeners:
            return
        for listener in listeners:
            try:
                listener(fields)
            except Exception:  # noqa: PERF203
                # A broken listener must never break the request that emitted; say it once.
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    logger.exception("hardenkit event listener %r failed on %s", listener, name)


def events_of(wiring: Wiring | None) -> Events:
    """The kit's event channel (created on first use), or a private one for a standalone component."""
    if wiring is None:
        return Events()
    found = wiring.get(_WIRING_KEY)
    if isinstance(found, Events):
        return found
    events = Events()
    wiring.provide(_WIRING_KEY, events)
    return events
