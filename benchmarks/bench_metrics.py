"""MetricsMiddleware overhead over bare Starlette, against the peer libraries, in one run.

    python benchmarks/bench_metrics.py

Peers: prometheus-fastapi-instrumentator (``Instrumentator().instrument(app)``, its
default metrics) and starlette-exporter (``PrometheusMiddleware``, grouped paths).
Same Starlette app, same routes, requests spread over a plain route, a route with a
path parameter and one with two. Target: hardenkit's overhead at most 0.5x each peer's.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from asgi_driver import compare, make_scope, overhead_ratio
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette_exporter import PrometheusMiddleware

import hardenkit as hk


async def endpoint(request: Request) -> Response:
    return JSONResponse({"ok": True})


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", endpoint),
            Route("/items/{item_id:int}", endpoint),
            Route("/users/{user_id}/orders/{order_id}", endpoint),
        ]
    )


PATHS = itertools.cycle(["/", "/items/42", "/users/alice/orders/7", "/items/43", "/users/bob/orders/8"])


def scope() -> dict[str, Any]:
    return make_scope(next(PATHS))


def main() -> None:
    bare = app()
    ours = app()
    ours.add_middleware(hk.MetricsMiddleware, multiprocess=False)
    instrumentator = app()
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator)
    exporter = app()
    exporter.add_middleware(PrometheusMiddleware, group_paths=True)

    medians = compare(
        {
            "bare starlette": bare,
            "hardenkit": ours,
            "prometheus-fastapi-instrumentator": instrumentator,
            "starlette-exporter": exporter,
        },
        baseline="bare starlette",
        scope_factory=scope,
    )
    for peer in ("prometheus-fastapi-instrumentator", "starlette-exporter"):
        ratio = overhead_ratio(medians, "hardenkit", peer, "bare starlette")
        print(f"hardenkit overhead / {peer} overhead = {ratio:.2f}x (target <= 0.50x)")


if __name__ == "__main__":
    main()
