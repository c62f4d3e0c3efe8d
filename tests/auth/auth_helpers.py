"""Shared builders for the auth tests: a store with three keys (one per role) and an app."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hardenkit.auth import APIKeyMiddleware, KeyManager, KeyStore, MemoryKeyStore, principal


def make_keys(store: KeyStore | None = None) -> tuple[KeyStore, dict[str, str]]:
    """(store, {role: key}) with one identity per role: admin, operator, readonly."""
    store = store if store is not None else MemoryKeyStore()
    manager = KeyManager(store)
    keys: dict[str, str] = {}

    async def create() -> None:
        for role in ("admin", "operator", "readonly"):
            keys[role], _ = await manager.create(f"{role}-client", [role])

    anyio.run(create)
    return store, keys


async def whoami(request: Request) -> JSONResponse:
    found = principal()
    state = getattr(request.state, "principal", None)
    return JSONResponse(
        {
            "key_id": found.key_id if found else None,
            "name": found.name if found else None,
            "roles": sorted(found.roles) if found else None,
            "state_matches": state is found,
            "scope_key_id": request.scope.get("hardenkit.key_id"),
        }
    )


def plain_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items", whoami, methods=["GET", "POST"]),
            Route("/captures", whoami, methods=["GET", "POST"]),
            Route("/admin/users", whoami),
            Route("/docs", whoami),
        ]
    )


def protected(store: KeyStore, **options: Any) -> Starlette:
    app = plain_app()
    options.setdefault("rules", [("POST /captures", "operator"), ("/admin/*", "admin")])
    app.add_middleware(APIKeyMiddleware, store=store, public_paths=["/docs"], **options)
    return app
