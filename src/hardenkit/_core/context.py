"""The per-request context shared by every component (standard library only)."""

from __future__ import annotations

from contextvars import ContextVar

#: The current request's id; set by HeaderContractMiddleware for the duration of
#: one HTTP request or websocket session, copied into worker threads by anyio.
REQUEST_ID: ContextVar[str | None] = ContextVar("hardenkit.request_id", default=None)


def request_id() -> str | None:
    """Return the current request's id, or ``None`` outside a request."""
    return REQUEST_ID.get()
