"""hardenkit demo: a small API hardened by ``harden()``.

Run it with ``hardenkit demo`` (or ``uvicorn demo_app:app`` from this folder).
Every response carries X-Request-ID, X-Latency-MS and the API security headers;
/boom raises, and still answers a problem+json 500 with the request id.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import hardenkit as hk

log = logging.getLogger("demo")

ITEMS = {1: {"id": 1, "name": "hammer"}, 2: {"id": 2, "name": "anvil"}}


async def index(request: Request) -> Response:
    return JSONResponse(
        {
            "service": "hardenkit demo",
            "request_id": hk.request_id(),
            "try": [
                "/items/1",
                "/items/99",
                "/boom",
                "/slow",
                "/stream",
                "POST /echo",
                "/livez",
                "/readyz",
                "/healthz",
            ],
        }
    )


async def get_item(request: Request) -> Response:
    item = ITEMS.get(request.path_params["item_id"])
    if item is None:
        raise HTTPException(404, "no such item")
    return JSONResponse(item)


async def echo(request: Request) -> Response:
    body = await request.body()
    log.info("echo of %d bytes", len(body))
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.2)
    return JSONResponse({"slept_ms": 200})


async def stream(request: Request) -> Response:
    async def chunks():  # type: ignore[no-untyped-def]
        for index in range(5):
            yield f"chunk {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def boom(request: Request) -> Response:
    raise RuntimeError("the demo's deliberate failure")


async def problem(request: Request, exc: Exception) -> Response:
    """Errors as RFC 9457 problem+json carrying the request id, like hardenkit's own answers."""
    assert isinstance(exc, HTTPException)
    document = {
        "type": "about:blank",
        "title": HTTPStatus(exc.status_code).phrase,
        "status": exc.status_code,
        "detail": exc.detail,
        "request_id": hk.request_id(),
    }
    return JSONResponse(
        document, status_code=exc.status_code, headers=exc.headers, media_type="application/problem+json"
    )


def build_app() -> Starlette:
    return Starlette(
        exception_handlers={HTTPException: problem},
        routes=[
            Route("/", index),
            Route("/items/{item_id:int}", get_item),
            Route("/echo", echo, methods=["POST"]),
            Route("/slow", slow),
            Route("/stream", stream),
            Route("/boom", boom),
        ],
    )


# harden() reads HARDENKIT_<COMPONENT>_<OPTION> variables, so `hardenkit demo
# --redis URL` only has to set one to share rate limits through Redis.
app = hk.harden(build_app())
