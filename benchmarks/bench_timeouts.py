"""TimeoutMiddleware's per-request cost in-process, against the hand-written wait_for wrapper it replaces.

    python benchmarks/bench_timeouts.py

Peer: the ``asyncio.wait_for(app(...), timeout)`` middleware teams write by hand
(it cuts streaming responses, answers nothing useful and leaves a sync
endpoint's thread holding the request; hardenkit's runs the app in a task of its
own and races it against the deadline, which costs a task and a cancel scope).
Both wrap the same Starlette app; the table gives the median time per request and
each stack's overhead over the bare app.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from asgi_driver import compare, overhead_ratio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import hardenkit as hk


async def endpoint(request: Request) -> Response:
    return JSONResponse({"ok": True})


class WaitForTimeout:
    """What teams write by hand: the whole app call under asyncio.wait_for."""

    def __init__(self, app: Any, *, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await asyncio.wait_for(self.app(scope, receive, send), self.timeout)


def app() -> Starlette:
    return Starlette(routes=[Route("/", endpoint)])


def main() -> None:
    bare = app()
    ours = app()
    ours.add_middleware(hk.TimeoutMiddleware)
    peer = app()
    peer.add_middleware(WaitForTimeout)
    medians = compare(
        {"bare starlette": bare, "hardenkit": ours, "wait_for wrapper": peer}, baseline="bare starlette"
    )
    ratio = overhead_ratio(medians, "hardenkit", "wait_for wrapper", "bare starlette")
    print(f"hardenkit overhead / wait_for wrapper overhead = {ratio:.2f}x")


if __name__ == "__main__":
    main()
