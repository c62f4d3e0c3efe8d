"""The probe paths match the path the app routes on: ``path`` minus ``root_path``.

Under ``uvicorn --root-path /api`` or a Starlette ``Mount``, the server keeps the
prefix in ``scope["path"]`` (as the ASGI spec says) and routers strip it; a probe
compared against the raw path was a 404. (tests/integration/test_probes_root_path.py
runs the same under a real ``uvicorn --root-path``.)
"""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

import hardenkit as hk
from hardenkit.health import HEALTH_JSON, HealthProbeMiddleware
from support import asgi_request

pytestmark = pytest.mark.anyio


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def inner_app() -> Starlette:
    app = Starlette(routes=[Route("/", hello)])
    app.add_middleware(HealthProbeMiddleware)
    return app


def behind(prefix: str, app: ASGIApp) -> ASGIApp:
    """What ``uvicorn --root-path <prefix>`` does: the prefix in root_path and in front of path."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "root_path": prefix, "path": prefix + scope["path"]}, receive, send)

    return server


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
async def test_probes_answer_under_the_server_root_path(path: str) -> None:
    response = await asgi_request(behind("/api", inner_app()), path)
    assert response.status == 200
    assert response.headers["content-type"] == HEALTH_JSON


async def test_the_app_still_routes_under_the_root_path() -> None:
    app = behind("/api", inner_app())
    assert (await asgi_request(app, "/")).body == b"hello"
    # The app routes /api/livez (path /api/api/livez) to its own 404, and so do the probes.
    assert (await asgi_request(app, "/api/livez")).status == 404


async def test_kit_wrapped_probes_answer_under_the_root_path() -> None:
    wrapped = hk.Kit().register(HealthProbeMiddleware).wrap(Starlette(routes=[Route("/", hello)]))
    assert (await asgi_request(behind("/api", wrapped), "/livez")).status == 200
    assert (await asgi_request(behind("/api", wrapped), "/")).body == b"hello"


def test_probes_answer_inside_a_mount() -> None:
    outer = Starlette(routes=[Mount("/svc", app=inner_app())])
    client = TestClient(outer)
    assert client.get("/svc/livez").status_code == 200
    assert client.get("/svc/readyz").headers["content-type"] == HEALTH_JSON
    assert client.get("/livez").status_code == 404  # the outer app has no probes of its own
    assert client.get("/svc/").text == "hello"
