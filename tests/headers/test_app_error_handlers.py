"""The app's own handler for Exception/500 answers, with the contract headers added."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import hardenkit as hk


async def boom(request: Request) -> Response:
    raise RuntimeError("kaput")


async def fine(request: Request) -> Response:
    return PlainTextResponse("ok")


def contract_ok(response: Any) -> None:
    assert response.headers["x-request-id"]
    assert response.headers["x-latency-ms"].isdigit()
    assert response.headers["x-content-type-options"] == "nosniff"


def starlette_app(handlers: dict[Any, Any] | None) -> Starlette:
    return Starlette(routes=[Route("/boom", boom), Route("/", fine)], exception_handlers=handlers)


@pytest.mark.parametrize("key", [Exception, 500])
@pytest.mark.parametrize("how", ["harden", "wrap"])
def test_a_starlette_apps_own_handler_answers_with_the_contract_headers(key: Any, how: str) -> None:
    calls: list[str] = []

    async def handler(request: Request, exc: Exception) -> Response:
        calls.append(str(exc))
        return JSONResponse({"error": "ours", "why": str(exc)}, status_code=500)

    app = starlette_app({key: handler})
    wrapped = (
        hk.harden(app, env=False)
        if how == "harden"
        else hk.Kit().register(hk.HeaderContractMiddleware).wrap(app)
    )
    response = TestClient(wrapped, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "ours", "why": "kaput"}
    assert response.headers["content-type"] == "application/json"
    contract_ok(response)
    assert calls == ["kaput"]  # once, not again by starlette's ServerErrorMiddleware


def test_a_sync_handler_runs_too_and_the_request_id_is_the_one_sent() -> None:
    def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"sorry {request.headers['x-request-id']}", status_code=503)

    client = TestClient(
        hk.harden(starlette_app({Exception: handler}), env=False), raise_server_exceptions=False
    )
    response = client.get("/boom", headers={"X-Request-ID": "abc-123"})
    assert (response.status_code, response.text) == (503, "sorry abc-123")
    assert response.headers["x-request-id"] == "abc-123"
    contract_ok(response)


def test_without_a_handler_the_answer_is_hardenkits_problem_json() -> None:
    client = TestClient(hk.harden(starlette_app(None), env=False), raise_server_exceptions=False)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    contract_ok(response)


def test_a_handler_only_for_other_errors_leaves_the_default() -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("value", status_code=400)

    client = TestClient(
        hk.harden(starlette_app({KeyError: handler}), env=False), raise_server_exceptions=False
    )
    assert client.get("/boom").headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("failure", ["raises", "returns_none"])
def test_a_handler_that_fails_falls_back_to_the_problem_json_500(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request, exc: Exception) -> Any:
        if failure == "raises":
            raise ValueError("handler broke")
        return None

    client = TestClient(
        hk.harden(starlette_app({Exception: handler}), env=False), raise_server_exceptions=False
    )
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    contract_ok(response)
    assert "error handler" in caplog.text


def test_without_a_handler_testclient_still_raises() -> None:
    client = TestClient(hk.harden(starlette_app(None), env=False))
    with pytest.raises(RuntimeError, match="kaput"):
        client.get("/boom")


@pytest.mark.parametrize("when", ["harden_first", "handler_first"])
@pytest.mark.parametrize("is_async", [True, False])
def test_fastapi_exception_handler_decorator_wins(when: str, is_async: bool) -> None:
    app = FastAPI()
    if when == "harden_first":
        hk.harden(app, env=False)  # before the handler is registered: looked up per request

    @app.get("/boom")
    async def boom_route() -> dict[str, str]:
        raise RuntimeError("kaput")

    if is_async:

        @app.exception_handler(Exception)
        async def handler(request: Request, exc: Exception) -> Response:
            return JSONResponse({"detail": "custom", "kind": type(exc).__name__}, status_code=500)

    else:

        @app.exception_handler(Exception)
        def sync_handler(request: Request, exc: Exception) -> Response:
            return JSONResponse({"detail": "custom", "kind": type(exc).__name__}, status_code=500)

    served = app if when == "harden_first" else hk.harden(app, env=False)
    response = TestClient(served, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "custom", "kind": "RuntimeError"}
    contract_ok(response)
    # HTTP errors still get FastAPI's own answers, with the headers.
    missing = TestClient(served).get("/missing")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    contract_ok(missing)
