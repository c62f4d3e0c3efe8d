"""admin_app(): the key management of ``hardenkit keys`` over HTTP, as a mountable Starlette app.

Every route needs the ``admin`` role (``role=`` to change it), checked against the principal that
APIKeyMiddleware set, so mount it inside an app that the middleware protects::

    app.mount("/admin/keys", admin_app(store))  # the same store object: the middleware closes it

``GET /`` lists keys (never secrets); ``POST /`` with ``{"name", "roles", "expires"?}`` creates one and
answers the key once (201); ``POST /{name}/rotate`` with ``{"grace"?, "expires"?}`` rotates;
``POST /{name}/revoke`` revokes. Refusals are problem+json: 400 for bad input, 404 for an unknown
name, 409 for a name that already exists.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .context import require_roles
from .manage import KeyManager
from .records import KeyHasher
from .stores import KeyStore, open_store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Router

__all__ = ["admin_app"]

MAX_BODY = 16 * 1024


def _problem(status: int, detail: str) -> Response:
    from .._core.problem import problem_response

    titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 413: "Content Too Large"}
    return problem_response(status, titles[status], detail=detail)


async def _json_body(request: Request) -> dict[str, Any] | Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _problem(413, f"The request body is over {MAX_BODY} bytes.")
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "The request body is not JSON.")
    if not isinstance(data, dict):
        return _problem(400, "The request body must be a JSON object.")
    return data


def _status_of(exc: ConfigurationError) -> int:
    text = str(exc)
    if "already exists" in text:
        return 409
    if text.startswith(("no active key", "no unrevoked key")):
        return 404
    return 400


def admin_app(
    store: KeyStore | str, *, hasher: KeyHasher | None = None, role: str = "admin", header: str = "X-API-Key"
) -> Router:
    """A Starlette router managing the keys of ``store``; every route needs ``role``."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route, Router

    manager = KeyManager(open_store(store), hasher)
    guard = require_roles(role, header=header)

    async def list_keys(request: Request) -> Response:
        return JSONResponse([record.public_dict() for record in await manager.list()])

    async def create(request: Request) -> Response:
        data = await _json_body(request)
        if not isinstance(data, dict):
            return data
        try:
            key, record = await manager.create(
                data.get("name"),  # type: ignore[arg-type]  # checked by create
                data.get("roles") or [],
                expires=data.get("expires"),
            )
        except (ConfigurationError, TypeError) as exc:
            return _problem(_status_of(exc) if isinstance(exc, ConfigurationError) else 400, str(exc))
        return JSONResponse(
            {"key": key, **record.public_dict()}, status_code=201, headers={"Cache-Control": "no-store"}
        )

    async def rotate(request: Request) -> Response:
        data = await _json_body(request)
        if not isinstance(data, dict):
            return data
        try:
            key, record = await manager.rotate(
                request.path_params["name"], grace=data.get("grace", "24h"), expires=data.get("expires")
            )
        except ConfigurationError as exc:
            return _problem(_status_of(exc), str(exc))
        return JSONResponse({"key": key, **record.public_dict()}, headers={"Cache-Control": "no-store"})

    async def revoke(request: Request) -> Response:
        try:
            revoked = await manager.revoke(request.path_params["name"])
        except ConfigurationError as exc:
            return _problem(_status_of(exc), str(exc))
        return JSONResponse({"revoked": [record.key_id for record in revoked]})

    routes = [
        Route("/", guard.wrap(list_keys), methods=["GET"]),
        Route("/", guard.wrap(create), methods=["POST"]),
        Route("/{name}/rotate", guard.wrap(rotate), methods=["POST"]),
        Route("/{name}/revoke", guard.wrap(revoke), methods=["POST"]),
    ]
    # A Router, not a Starlette app: no second error middleware inside the host app's.
    return Router(routes=routes)
