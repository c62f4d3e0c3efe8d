"""The response header contract: :class:`HeaderContractMiddleware` and the request id.

Every response (404, 413, 429 and 500 included) carries a validated or generated
``X-Request-ID``, ``X-Latency-MS`` and the security headers of a preset.
:func:`request_id` gives the current request's id anywhere in its call stack
(:data:`REQUEST_ID` is the context variable behind it, for setting it in scripts).

Modules: ``middleware`` (the ASGI middleware, the presets), ``docs`` (where the
app serves its interactive API docs, the only pages whose CSP is relaxed). May
import the shared core and starlette; no other component.
"""

from __future__ import annotations

from .._core.context import REQUEST_ID, request_id
from .middleware import DEFAULT_PATH_OVERRIDES, SECURITY_PRESETS, HeaderContractMiddleware

__all__ = [
    "DEFAULT_PATH_OVERRIDES",
    "REQUEST_ID",
    "SECURITY_PRESETS",
    "HeaderContractMiddleware",
    "request_id",
]
