"""In-process overhead of RateLimitMiddleware vs slowapi's SlowAPIASGIMiddleware.

Same Starlette app, same limit (high enough never to refuse), same storage
(limits' memory://), same strategy (fixed window, slowapi's default), measured
with the in-process ASGI driver (no sockets) in interleaved rounds.

    .venv/bin/python benchmarks/bench_ratelimit.py

Target: hardenkit's overhead over bare Starlette <= 0.25x slowapi's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_driver import compare, overhead_ratio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk

LIMIT = "100000000/hour"


async def index(request: Request) -> Response:
    return PlainTextResponse("ok")


def bare() -> Starlette:
    return Starlette(routes=[Route("/", index)])


def with_hardenkit(**options: Any) -> Starlette:
    app = bare()
    app.add_middleware(hk.RateLimitMiddleware, default=LIMIT, storage="memory://", **options)
    return app


def with_slowapi(*, headers: bool) -> Starlette:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app = bare()
    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[LIMIT],
        storage_uri="memory://",
        strategy="fixed-window",
        headers_enabled=headers,
    )
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    app.add_middleware(SlowAPIASGIMiddleware)
    return app


def main() -> None:
    stacks = {
        "bare starlette": bare(),
        "hardenkit fixed-window, headers=both": with_hardenkit(strategy="fixed-window"),
        "hardenkit sliding-window (default), both": with_hardenkit(),
        "hardenkit fixed-window, headers=None": with_hardenkit(strategy="fixed-window", headers=None),
        "slowapi (headers off, its default)": with_slowapi(headers=False),
        "slowapi headers_enabled=True": with_slowapi(headers=True),
    }
    medians = compare(stacks, baseline="bare starlette", rounds=25, batch=400)
    print()
    pairs = [
        ("hardenkit fixed-window, headers=both", "slowapi (headers off, its default)"),
        ("hardenkit fixed-window, headers=both", "slowapi headers_enabled=True"),
        ("hardenkit sliding-window (default), both", "slowapi (headers off, its default)"),
        ("hardenkit fixed-window, headers=None", "slowapi (headers off, its default)"),
    ]
    for ours, theirs in pairs:
        ratio = overhead_ratio(medians, ours, theirs, "bare starlette")
        print(f"overhead ratio  {ours}  /  {theirs}: {ratio:.3f}x  (target <= 0.25x)")


if __name__ == "__main__":
    main()
