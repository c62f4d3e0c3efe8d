"""document_security(app): FastAPI's OpenAPI shows the API-key scheme on every route the middleware's
rules protect, not only on the routes that depend on ``require_roles``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .matrix import permission_matrix

__all__ = ["document_security"]

SCHEME = "APIKey"


def document_security(app: Any, *, header: str | None = None) -> Any:
    """Make ``app.openapi()`` declare the ``APIKey`` scheme and require it on each protected operation.

    ``header`` defaults to the one the app's APIKeyMiddleware reads. Returns the app.
    """
    original: Callable[[], dict[str, Any]] = app.openapi
    if header is None:
        header = "X-API-Key"
        for middleware in getattr(app, "user_middleware", ()):
            if getattr(middleware.cls, "hardenkit_slot", None) == "auth":
                header = middleware.kwargs.get("header", header)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            cached: dict[str, Any] = app.openapi_schema
            return cached
        schema = original()
        protected = {
            (row.method.lower(), row.path) for row in permission_matrix(app) if row.access != "public"
        }
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault(
            SCHEME,
            {
                "type": "apiKey",
                "in": "header",
                "name": header,
                "description": f"A hardenkit API key, in the {header} header or as Authorization: Bearer.",
            },
        )
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) in protected and isinstance(operation, dict):
                    security = operation.setdefault("security", [])
                    if {SCHEME: []} not in security:
                        security.append({SCHEME: []})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
    return app
