"""RateLimitMiddleware and a check that refused inside the app (issue 14): the app's own 500
for the escaped exception becomes the 429, anything else the app answers is left alone, and
``allow``/``overrides`` match a ``key=`` function's value."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import hardenkit as hk


def framework_like(on_refusal: int, *, started: bool = False) -> Any:
    """A pure ASGI app that, like Litestar or Django, answers exceptions itself."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await hk.rate_limit("1/minute")()
        except hk.RateLimitExceeded:
            if started:
                raise
            await send({"type": "http.response.start", "status": on_refusal, "headers": []})
            await send({"type": "http.response.body", "body": b"the app's own"})
            return
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_the_apps_500_for_a_refusal_becomes_the_429() -> None:
    client = TestClient(hk.RateLimitMiddleware(framework_like(500), default="100/minute"))
    assert client.get("/").text == "ok"
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert "the app's own" not in refused.text
    assert int(refused.headers["retry-after"]) > 0


def test_a_refusal_the_app_answers_itself_below_500_is_left_alone() -> None:
    client = TestClient(hk.RateLimitMiddleware(framework_like(403), default="100/minute"))
    assert client.get("/").text == "ok"
    own = client.get("/")
    assert (own.status_code, own.text) == (403, "the app's own")


def test_a_response_already_started_is_not_replaced() -> None:
    app = hk.RateLimitMiddleware(framework_like(500, started=True), default="100/minute")
    client = TestClient(app, raise_server_exceptions=True)
    assert client.get("/").text == "ok"
    with pytest.raises(hk.RateLimitExceeded):
        client.get("/")


def test_allow_and_overrides_match_the_key_functions_value() -> None:
    from fastapi import Depends, FastAPI, Request

    app = FastAPI()

    def user(request: Request) -> str | None:
        return request.headers.get("x-user")

    @app.get("/", dependencies=[Depends(hk.rate_limit("api", key=user))])
    async def index() -> str:
        return "ok"

    app.add_middleware(
        hk.RateLimitMiddleware,
        default="100/minute",
        policies={"api": "1/minute"},
        allow=["root"],
        overrides={"vip": {"api": "3/minute"}},
    )
    client = TestClient(app)
    assert [client.get("/", headers={"x-user": "root"}).status_code for _ in range(3)] == [200] * 3
    assert [client.get("/", headers={"x-user": "vip"}).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [client.get("/", headers={"x-user": "ann"}).status_code for _ in range(2)] == [200, 429]
