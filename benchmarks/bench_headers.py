"""Header contract overhead over bare Starlette, against the peer stack, in one run.

    python benchmarks/bench_headers.py

Peer stack: asgi-correlation-id's CorrelationIdMiddleware + secure's
SecureASGIMiddleware (default headers) + a pure-ASGI latency middleware, the
stack hardenkit's HeaderContractMiddleware replaces. Target: hardenkit's
overhead at most 0.5x the peer stack's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from asgi_correlation_id import CorrelationIdMiddleware
from asgi_driver import compare, make_scope, overhead_ratio
from secure import Secure
from secure.middleware import SecureASGIMiddleware
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import hardenkit as hk


async def endpoint(request: Request) -> Response:
    return JSONResponse({"ok": True})


class LatencyMiddleware:
    """What teams write by hand: X-Latency-MS on the response start."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Latency-MS"] = str(round((time.perf_counter() - start) * 1000))
            await send(message)

        await self.app(scope, receive, send_wrapper)


def app() -> Starlette:
    return Starlette(routes=[Route("/", endpoint)])


def main() -> None:
    bare = app()
    ours = app()
    ours.add_middleware(hk.HeaderContractMiddleware)
    peers = app()
    peers.add_middleware(LatencyMiddleware)
    peers.add_middleware(SecureASGIMiddleware, secure=Secure.with_default_headers())
    peers.add_middleware(CorrelationIdMiddleware)

    for label, headers in (
        ("no incoming id", []),
        ("valid incoming id", [(b"x-request-id", b"5b0ef5a4-3c8e-4f1c-9a53-2f4a8d2b1c70")]),
    ):
        print(f"\n== {label} ==")

        def scope(headers: Any = headers) -> dict[str, Any]:
            return make_scope("/", headers=headers)

        medians = compare(
            {"bare starlette": bare, "hardenkit": ours, "peer stack": peers},
            baseline="bare starlette",
            scope_factory=scope,
        )
        ratio = overhead_ratio(medians, "hardenkit", "peer stack", "bare starlette")
        print(f"hardenkit overhead / peer stack overhead = {ratio:.2f}x (target <= 0.50x)")


if __name__ == "__main__":
    main()
