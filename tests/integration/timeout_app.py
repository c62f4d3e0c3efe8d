"""The app tests/integration/test_timeouts_uvicorn.py serves: harden() with short timeouts.

``TIMEOUT_APP_MARKER`` names a file the sync endpoint creates when its thread ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk


def blocking(request: Request) -> Response:
    time.sleep(3)  # a sync endpoint stuck in a slow call: only its thread waits
    Path(os.environ["TIMEOUT_APP_MARKER"]).write_text("thread done", encoding="utf-8")
    return PlainTextResponse("late")


async def fast(request: Request) -> Response:
    return PlainTextResponse("fast")


async def upload(request: Request) -> Response:
    return PlainTextResponse(f"{len(await request.body())} bytes")


app = hk.harden(
    Starlette(
        routes=[
            Route("/blocking", blocking),
            Route("/fast", fast),
            Route("/upload", upload, methods=["POST"]),
        ]
    ),
    env=False,
    timeout={"request_timeout": 0.5, "body_timeout": 0.5},
)
