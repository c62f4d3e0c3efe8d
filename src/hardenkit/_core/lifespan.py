"""The ASGI lifespan protocol, served for apps that do not support it.

hardenkit needs the lifespan events: the health probes hook the shutdown signals
at startup and drain at shutdown; other components run their own hooks. Many
ASGI apps reject lifespan: Django's ``ASGIHandler`` and asgiref's ``WsgiToAsgi``
raise on a lifespan scope, minimal apps return at once, some send
``lifespan.startup.failed`` without ever reading the startup event. The ASGI
spec tells the server to carry on without lifespan then, so none of those hooks
would ever run: readiness never fails after SIGTERM and the server stops at
once.

:func:`serve_lifespan` passes the lifespan scope to the app first (an app that
supports it keeps its own startup and shutdown, and a real startup failure still
stops the server), and answers the protocol itself when the app does not.
Standard library only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["serve_lifespan"]

logger = logging.getLogger("hardenkit.kit")

Phase = Callable[[], Awaitable[None]]


class _Progress:
    """How far the app went through the protocol (one lifespan scope, so one instance per call)."""

    __slots__ = ("failed", "finished", "received_shutdown", "received_startup", "rejected", "started")

    def __init__(self) -> None:
        self.received_startup = False  # the app read lifespan.startup
        self.started = False  # the app sent lifespan.startup.complete
        self.failed = False  # the app read lifespan.startup, then sent lifespan.startup.failed
        self.rejected = False  # the app sent lifespan.startup.failed before reading lifespan.startup
        self.received_shutdown = False
        self.finished = False  # the app sent lifespan.shutdown.complete or .failed


async def serve_lifespan(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    startup: Phase,
    shutdown: Phase,
) -> None:
    """Run one lifespan scope through ``app``, with ``startup`` and ``shutdown`` around the app's own.

    ``startup`` runs once the app has started (just before the server hears
    ``lifespan.startup.complete``); ``shutdown`` runs when the server asks for
    shutdown, before the app hears of it. When the app does not support lifespan
    (it raises or returns before completing startup, or sends
    ``lifespan.startup.failed`` before reading ``lifespan.startup``), both still
    run and this function answers the server itself. A failure the app reports
    after reading ``lifespan.startup`` is a real one: it reaches the server,
    which stops.
    """
    progress = _Progress()

    async def receive_wrapper() -> Message:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            progress.received_startup = True
        elif kind == "lifespan.shutdown" and not progress.received_shutdown:
            progress.received_shutdown = True
            await shutdown()
        return message

    async def send_wrapper(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            await startup()
            progress.started = True
        elif kind == "lifespan.startup.failed":
            if not progress.received_startup:
                # It never looked at the startup event: its way of saying it has no lifespan.
                progress.rejected = True
                return
            progress.failed = True
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            progress.finished = True
        await send(message)

    try:
        await app(scope, receive_wrapper, send_wrapper)
    except Exception as exc:
        if progress.failed or progress.finished or progress.received_shutdown:
            raise  # the app took part in the protocol: its error is the server's to report
        if progress.started:
            logger.error("the app's lifespan ended with an error before shutdown", exc_info=exc)
        else:
            logger.info(
                "the app does not support the ASGI lifespan protocol (it raised %s: %s); "
                "hardenkit answers lifespan itself",
                type(exc).__name__,
                exc,
            )
    else:
        if progress.failed or progress.finished:
            return
        if not progress.started:
            how = "refused it" if progress.rejected else "returned"
            logger.info(
                "the app does not support the ASGI lifespan protocol (it %s); hardenkit answers lifespan itself",
                how,
            )
    await _answer(progress, receive, send, startup=startup, shutdown=shutdown)


async def _answer(
    progress: _Progress, receive: Receive, send: Send, *, startup: Phase, shutdown: Phase
) -> None:
    """Finish the protocol the app left: startup if it did not, then wait for shutdown."""
    if not progress.started:
        while not progress.received_startup:
            message = await receive()
            progress.received_startup = message["type"] == "lifespan.startup"
        await startup()
        progress.started = True
        await send({"type": "lifespan.startup.complete"})
    if not progress.received_shutdown:
        while not progress.received_shutdown:
            message = await receive()
            progress.received_shutdown = message["type"] == "lifespan.shutdown"
        await shutdown()
    await send({"type": "lifespan.shutdown.complete"})
