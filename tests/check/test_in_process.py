"""The checker in-process (httpx's ASGI transport): the runner's logic without a server."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hardenkit.check import CheckOptions, run
from hardenkit.cli.demo import load_demo_app


def statuses(report: Any) -> dict[str, str]:
    return {result.id: result.status for result in report.results}


def test_a_hardened_app_in_process() -> None:
    app = load_demo_app()  # examples/demo_app.py: harden() over a small API
    report = run(CheckOptions(url="http://testserver", paths=["/", "/items/1", "/items/99"]), app=app)
    found = statuses(report)
    for check_id in ("request-id-echo", "request-id-invalid", "request-id-unique", "security-headers",
                     "problem-json", "probes", "ratelimit-headers", "cors", "server-leak"):  # fmt: skip
        assert found[check_id] == "pass", (
            check_id,
            [r.violations for r in report.results if r.id == check_id],
        )
    assert report.endpoints == ["GET /", "GET /items/1", "GET /items/99"]
    assert found["hsts"] == found["tls-version"] == "skip"


def test_endpoint_calls_are_bounded_by_the_concurrency_option() -> None:
    in_flight = 0
    most = 0

    async def endpoint(request: Request) -> Response:
        nonlocal in_flight, most
        import anyio

        in_flight += 1
        most = max(most, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return JSONResponse({})

    app = Starlette(routes=[Route("/{name}", endpoint)])
    paths = [f"/p{index}" for index in range(12)]
    report = run(CheckOptions(url="http://testserver", paths=paths, concurrency=3, probes=()), app=app)
    assert len(report.endpoints) == 12
    assert 1 <= most <= 3
