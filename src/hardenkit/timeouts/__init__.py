"""Request timeouts: :class:`TimeoutMiddleware` (504 for a response not started in time, 408 for a slow body).

Modules: ``middleware`` (the ASGI middleware and its options). Imports the core,
the errors and anyio (cancellation that works on asyncio and trio); starlette only
through the core's problem+json answers.
"""

from __future__ import annotations

from .middleware import TimeoutMiddleware

__all__ = ["TimeoutMiddleware"]
