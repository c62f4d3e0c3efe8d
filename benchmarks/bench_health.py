"""Cost of a cached readiness probe vs a plain Starlette JSON endpoint (in-process ASGI, no sockets).

Run: .venv/bin/python benchmarks/bench_health.py [--rounds 7] [--requests 5000]

Each round runs every case once, in interleaved order; printed are the medians
over rounds (microseconds per request) and the ratio to the plain endpoint.

* plain-json-endpoint:  Starlette route returning JSONResponse({"status": "pass"})
* cached-readyz:        GET /readyz answered by HealthProbeMiddleware from its cache
* cached-healthz:       GET /healthz (with the per-check details) from the cache
* livez:                GET /livez
* app-through-probes:   the same plain endpoint, behind HealthProbeMiddleware
                        (what the probes add to every ordinary request: in-flight
                        tracking for graceful shutdown)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

from hardenkit.health import Check, HealthProbeMiddleware


async def status(request: Request) -> JSONResponse:
    return JSONResponse({"status": "pass"})


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/status", status)])


def scope_for(path: str) -> Scope:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("bench", 80),
    }  # fmt: skip


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def drive(app: ASGIApp, path: str, requests: int) -> float:
    """Microseconds per request."""
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    template = scope_for(path)
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(template), receive, send)
    elapsed = time.perf_counter() - started
    assert statuses and set(statuses) == {200}, (path, set(statuses))
    return elapsed / requests * 1e6


def build() -> dict[str, tuple[ASGIApp, str]]:
    plain = starlette_app()
    probed = HealthProbeMiddleware(
        starlette_app(), checks=[Check("db", lambda: True)], cache_ttl=3600, shutdown_signals=[]
    )
    return {
        "plain-json-endpoint": (plain, "/status"),
        "cached-readyz": (probed, "/readyz"),
        "cached-healthz": (probed, "/healthz"),
        "livez": (probed, "/livez"),
        "app-through-probes": (probed, "/status"),
    }


async def main(rounds: int, requests: int) -> None:
    cases = build()
    for app, path in cases.values():  # warm up: fill the probe cache, build starlette's stacks
        await drive(app, path, 200)
    results: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            app, path = cases[name]
            results[name].append(await drive(app, path, requests))
    base = statistics.median(results["plain-json-endpoint"])
    print(f"{rounds} rounds x {requests} requests, asyncio, in-process ASGI (median us/request)")
    for name in names:
        median = statistics.median(results[name])
        print(f"  {name:<22} {median:8.2f} us   x{median / base:5.2f} of plain-json-endpoint")


def cli(argv: list[str] | None = None, run: Callable[..., object] = anyio.run) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args(argv)
    run(main, args.rounds, args.requests)


if __name__ == "__main__":
    cli()
