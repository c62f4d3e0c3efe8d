"""The app that tests/integration/test_metrics_workers.py runs under ``uvicorn --workers 2``.

Every answer names the worker that gave it (``X-Worker-Pid``), so the test knows
that both workers counted and which one to kill.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk


async def home(request: Request) -> Response:
    return PlainTextResponse("home", headers={"X-Worker-Pid": str(os.getpid())})


async def item(request: Request) -> Response:
    return PlainTextResponse(
        f"item {request.path_params['item_id']}", headers={"X-Worker-Pid": str(os.getpid())}
    )


async def fail(request: Request) -> Response:
    return PlainTextResponse("failed", status_code=503, headers={"X-Worker-Pid": str(os.getpid())})


app = hk.harden(
    Starlette(
        routes=[Route("/", home), Route("/items/{item_id:int}", item), Route("/fail", fail)],
    ),
    ratelimit={"default": "100000/minute"},
)
