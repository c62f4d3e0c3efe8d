"""The rate-limiter part of issue 14, written down before it lands (strict xfails: they must
start passing, and then lose their marker, when the rate limiter's rewrite is merged)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from starlette.testclient import TestClient

import hardenkit as hk

pending = pytest.mark.xfail(strict=True, reason="needs the rate-limiter part of issue 14")


def limited_app() -> FastAPI:
    app = FastAPI()

    @app.get("/a", dependencies=[Depends(hk.rate_limit("1/minute"))])
    async def route_a() -> dict[str, str]:
        return {"route": "a"}

    @app.get("/b", dependencies=[Depends(hk.rate_limit("1/minute"))])
    async def route_b() -> dict[str, str]:
        return {"route": "b"}

    return app


@pending
def test_each_route_with_a_limit_string_has_its_own_bucket() -> None:
    client = TestClient(hk.harden(limited_app(), env=False))
    assert client.get("/a").status_code == 200
    assert client.get("/b").status_code == 200  # its own bucket, not /a's
    assert client.get("/a").status_code == 429


@pending
def test_the_429_is_in_the_openapi_schema_of_a_limited_route() -> None:
    client = TestClient(hk.harden(limited_app(), env=False))
    schema = client.get("/openapi.json").json()
    assert "429" in schema["paths"]["/a"]["get"]["responses"]


@pending
def test_a_key_function_reads_what_an_auth_dependency_set() -> None:
    app = FastAPI()

    async def authenticate(request: Request) -> None:
        request.state.user = request.headers.get("x-user", "anonymous")

    def user_key(request: Request) -> str:
        user: str = request.state.user
        return user

    limit: Any = hk.rate_limit("1/minute", key=user_key)  # type: ignore[call-arg]

    @app.get("/me", dependencies=[Depends(authenticate), Depends(limit)])
    async def me() -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(hk.harden(app, env=False))
    assert client.get("/me", headers={"x-user": "ann"}).status_code == 200
    assert client.get("/me", headers={"x-user": "bob"}).status_code == 200  # another user, another bucket
    assert client.get("/me", headers={"x-user": "ann"}).status_code == 429
