"""The 429 in FastAPI's OpenAPI schema for routes limited by :func:`rate_limit`/:func:`limited`.

A dependency cannot add responses to its route, so :func:`document_rate_limits` walks
the app's routes and adds the 429 (problem+json body, ``Retry-After`` and ``RateLimit``
headers) to those whose dependencies or endpoint carry a check. RateLimitMiddleware
runs it once for the FastAPI app it serves; call it yourself for an app it does not see.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["RESPONSE_429", "document_rate_limits"]

RESPONSE_429: dict[str, Any] = {
    "description": "Too Many Requests: a rate limit is exhausted; retry after Retry-After seconds.",
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer", "example": 429},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "request_id": {"type": "string"},
                },
            }
        }
    },
    "headers": {
        "Retry-After": {"description": "Seconds until a retry can succeed.", "schema": {"type": "integer"}},
        "RateLimit": {
            "description": "Remaining quota (IETF RateLimit header fields).",
            "schema": {"type": "string"},
        },
        "RateLimit-Policy": {"description": "The limits that apply.", "schema": {"type": "string"}},
    },
}

_MAX_DEPTH = 32

logger = logging.getLogger("hardenkit.ratelimit")


def _is_check(call: Any) -> bool:
    return getattr(call, "__hardenkit_rate_limit__", False) is True


def _limited(dependant: Any, depth: int = 0) -> bool:
    if dependant is None or depth > _MAX_DEPTH:
        return False
    if _is_check(getattr(dependant, "call", None)):
        return True
    return any(_limited(sub, depth + 1) for sub in getattr(dependant, "dependencies", ()))


def _routes(routes: Any, depth: int = 0) -> Any:
    for route in routes or ():
        yield route
        if depth < _MAX_DEPTH:
            yield from _routes(getattr(route, "routes", None), depth + 1)


def document_rate_limits(app: Any) -> int:
    """Declare the 429 on every route of ``app`` limited by a check; returns how many.

    Idempotent; a 429 the route already declares is kept. Apps without FastAPI-style
    routes (``dependant`` and ``responses``) are left alone.
    """
    count = 0
    for route in _routes(getattr(app, "routes", None)):
        responses = getattr(route, "responses", None)
        if not isinstance(responses, dict):
            continue
        if not (_limited(getattr(route, "dependant", None)) or _is_check(getattr(route, "endpoint", None))):
            continue
        count += 1
        if 429 not in responses and "429" not in responses:
            responses[429] = RESPONSE_429
    if count and getattr(app, "openapi_schema", None) is not None:
        app.openapi_schema = None  # generated before the 429 was declared: regenerate
    return count


def _is_fastapi_like(app: Any) -> bool:
    # An instance attribute, as FastAPI sets it: a property (Litestar's builds its own
    # schema when read) is never touched.
    return "openapi_schema" in getattr(app, "__dict__", {})


def find_app(scope_app: Any, inner: Any) -> Any:
    """The FastAPI-style app a middleware serves: the scope's, else the first down ``.app``."""
    if _is_fastapi_like(scope_app):
        return scope_app
    for _ in range(_MAX_DEPTH):
        if inner is None or _is_fastapi_like(inner):
            return inner
        inner = getattr(inner, "__dict__", {}).get("app")
    return None


def document_served(scope_app: Any, inner: Any) -> None:
    """:func:`document_rate_limits` for the app a middleware serves; never raises."""
    try:
        document_rate_limits(find_app(scope_app, inner))
    except Exception:
        logger.exception("could not add the 429 to the OpenAPI schema; the limits still apply")
