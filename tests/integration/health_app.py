"""The app that tests/integration/test_shutdown.py runs under a real uvicorn.

``HEALTH_APP_PLAIN=1`` serves the same routes without hardenkit (the baseline
of how uvicorn ends on SIGTERM); ``HEALTH_APP_MARKER`` names a file that /slow
creates once it is running, so the test knows the request is in flight.
"""

from __future__ import annotations

import os

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hardenkit.health import HealthProbeMiddleware


async def slow(request: Request) -> PlainTextResponse:
    marker = os.environ.get("HEALTH_APP_MARKER")
    if marker:
        await anyio.Path(marker).write_text("in flight", encoding="utf-8")
    await anyio.sleep(2.0)
    return PlainTextResponse("slow done")


async def fast(request: Request) -> PlainTextResponse:
    return PlainTextResponse("fast")


app = Starlette(routes=[Route("/slow", slow), Route("/", fast)])
if os.environ.get("HEALTH_APP_PLAIN") != "1":
    app.add_middleware(
        HealthProbeMiddleware,
        shutdown_delay=float(os.environ.get("HEALTH_APP_SHUTDOWN_DELAY", "1.0")),
        drain_timeout=10.0,
    )
