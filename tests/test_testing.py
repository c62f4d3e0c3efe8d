from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

import hardenkit as hk
from hardenkit.testing import assert_header_contract, iter_routes


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def item(request: Request) -> Response:
    return PlainTextResponse(str(request.path_params["item_id"]))


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def ws(websocket: WebSocket) -> None:
    await websocket.close()


async def raw_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("raw")(scope, receive, send)


def build(*extra: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/", ok),
            Route("/items/{item_id:int}", item, methods=["GET", "DELETE"]),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
            Mount("/api", routes=[Route("/v1/ping", ok, methods=["POST"])]),
            Mount("/raw", app=raw_asgi),
            *extra,
        ]
    )


def test_passes_on_a_hardened_app_and_reports_what_it_called() -> None:
    app = hk.harden(build(), env=False)
    report = assert_header_contract(app, path_params={"item_id": "7"})
    assert "GET /items/7 -> 200" in report.checked
    assert "DELETE /items/7 -> 200" in report.checked
    assert "POST /api/v1/ping -> 200" in report.checked
    assert "GET /boom -> 500" in report.checked
    assert "GET /raw -> 200" in report.checked
    assert any("__hardenkit_contract_check_404__ -> 404" in line for line in report.checked)
    assert report.violations == [] and report.skipped == []


def test_finds_a_planted_violation_and_lists_all_of_them() -> None:
    class StripOnOnePath:
        """Plants violations: removes the latency header on /api and duplicates the id on /."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def send_wrapper(message: Any) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message["headers"])
                    if scope["path"].startswith("/api"):
                        headers = [(k, v) for k, v in headers if k != b"x-latency-ms"]
                    if scope["path"] == "/":
                        headers.append((b"x-request-id", b"second"))
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_wrapper)

    app = build()
    app.add_middleware(hk.HeaderContractMiddleware)
    app.add_middleware(StripOnOnePath)
    with pytest.raises(AssertionError) as info:
        assert_header_contract(app, path_params={"item_id": "1"})
    message = str(info.value)
    assert "violated on 3 check(s)" in message
    assert "POST /api/v1/ping -> 200: X-Latency-MS is []" in message
    assert "GET / -> 200: 2 X-Request-ID headers" in message


def test_unhardened_app_fails_on_every_route() -> None:
    with pytest.raises(AssertionError) as info:
        assert_header_contract(build(), path_params={"item_id": "1"})
    assert "missing x-content-type-options" in str(info.value)
    assert "GET /boom -> 500" in str(info.value)


def test_routes_without_samples_are_skipped_and_reported() -> None:
    app = hk.harden(build(), env=False)
    report = assert_header_contract(app)
    assert report.skipped == ["/items/{item_id:int} (no sample for its path parameters in path_params)"]

    app = build()
    with pytest.raises(AssertionError, match="routes not called"):
        assert_header_contract(app)


def test_id_not_echoed_is_a_violation() -> None:
    app = build()
    app.add_middleware(hk.HeaderContractMiddleware, request_id_validator=r"never")
    with pytest.raises(AssertionError, match="not the 'hk-contract-1' that was sent"):
        assert_header_contract(app, path_params={"item_id": "1"}, skip_paths=["/boom"])


def test_works_with_fastapi_and_custom_names() -> None:
    api = FastAPI()

    @api.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    hk.harden(api, env=False, headers={"request_id_header": "X-Correlation-ID", "latency_header": None})
    report = assert_header_contract(
        api, path_params={"user_id": "3"}, request_id_header="X-Correlation-ID", latency_header=None
    )
    assert "GET /users/3 -> 200" in report.checked
    assert "GET /docs -> 200" in report.checked


def test_iter_routes_descends_mounts_and_skips_websockets() -> None:
    router = Router(routes=[Route("/a", ok), Mount("/m", routes=[Route("/b", ok)]), WebSocketRoute("/w", ws)])
    found = dict(iter_routes(router.routes))
    assert set(found) == {"/a", "/m/b"}


def test_without_lifespan() -> None:
    app = hk.harden(build(), env=False)
    assert assert_header_contract(app, path_params={"item_id": "1"}, lifespan=False).violations == []


def test_without_an_http_client_the_error_names_the_testing_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['httpx2'] = None\n"
        "sys.modules['httpx'] = None\n"
        "from starlette.applications import Starlette\n"
        "from hardenkit.testing import assert_header_contract\n"
        "try:\n"
        "    assert_header_contract(Starlette())\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "pip install 'hardenkit[testing]'" in result.stdout, result.stderr
