"""RateLimitMiddleware vs slowapi with one real Redis under a real uvicorn.

Starts its own redis-server on a free port and one uvicorn process per stack
(bare Starlette, hardenkit, slowapi: same app, same limit, same Redis, fixed
window), then loads them in interleaved rounds with a small keep-alive HTTP/1.1
client (raw asyncio sockets, so the client costs little). Prints requests per
second (medians), the ratio, and Redis commands per request from
``INFO commandstats``, split with MONITOR into round trips (commands sent by the
client) and commands run inside Lua scripts.

    .venv/bin/python benchmarks/bench_ratelimit_redis.py

Target: hardenkit >= 1.5x slowapi's requests per second; <= 2 commands per request.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LIMIT = "100000000/hour"
CONNECTIONS = 16
SECONDS = 2.0
ROUNDS = 5


# -- the apps (imported by uvicorn as bench_ratelimit_redis:app) ---------------------------------


def _make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def index(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", index)])
    variant = os.environ.get("BENCH_RL_VARIANT", "bare")
    url = os.environ.get("BENCH_RL_REDIS", "")
    if variant.startswith("hardenkit"):
        import hardenkit as hk

        strategy = "sliding-window" if variant == "hardenkit-sliding" else "fixed-window"
        app.add_middleware(hk.RateLimitMiddleware, default=LIMIT, storage=url, strategy=strategy)
    elif variant.startswith("slowapi"):
        from slowapi import Limiter, _rate_limit_exceeded_handler
        from slowapi.errors import RateLimitExceeded
        from slowapi.middleware import SlowAPIASGIMiddleware
        from slowapi.util import get_remote_address

        limiter = Limiter(
            key_func=get_remote_address,
            default_limits=[LIMIT],
            storage_uri=url,
            strategy="fixed-window",
            headers_enabled=variant == "slowapi-headers",
        )
        app.state.limiter = limiter
        app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
        app.add_middleware(SlowAPIASGIMiddleware)
    return app


if __name__ != "__main__":
    app = _make_app()


# -- a small keep-alive load generator -------------------------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _worker(port: int, deadline: float, statuses: dict[int, int]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
    finally:
        writer.close()
    return done


async def _load(port: int, seconds: float) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(*[_worker(port, deadline, statuses) for _ in range(CONNECTIONS)])
    return sum(counts) / (time.perf_counter() - start), statuses


def _monitor_split(redis_port: int, http_port: int, requests: int = 200) -> tuple[float, float]:
    """(client commands, Lua-internal commands) per request, read from MONITOR."""
    sock = socket.create_connection(("127.0.0.1", redis_port))
    sock.sendall(b"MONITOR\r\n")
    sock.recv(100)  # +OK

    async def sequential() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        for _ in range(requests):
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(x[15:]) for x in head.split(b"\r\n") if x[:15].lower() == b"content-length:"), 0
            )
            await reader.readexactly(length)
        writer.close()

    asyncio.run(sequential())
    time.sleep(0.3)
    sock.settimeout(0.5)
    data = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    sock.close()
    lines = [line for line in data.split(b"\r\n") if line.startswith(b"+")]
    lua = sum(1 for line in lines if b"[0 lua]" in line or b" lua]" in line)
    return (len(lines) - lua) / requests, lua / requests


def main() -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from support import RedisServer, redis_binary, uvicorn_server

    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server not found")
    variants = ["bare", "hardenkit", "hardenkit-sliding", "slowapi", "slowapi-headers"]
    with tempfile.TemporaryDirectory() as workdir:
        redis_server = RedisServer(binary, Path(workdir))
        redis_server.start()
        try:
            servers: dict[str, Any] = {}
            urls: dict[str, int] = {}
            import contextlib

            with contextlib.ExitStack() as stack:
                for variant in variants:
                    env = {
                        "BENCH_RL_VARIANT": variant,
                        "BENCH_RL_REDIS": redis_server.url,
                        "PYTHONPATH": str(HERE),
                    }
                    base, proc = stack.enter_context(uvicorn_server("bench_ratelimit_redis:app", env=env))
                    servers[variant] = proc
                    urls[variant] = int(base.rsplit(":", 1)[1])
                for variant in variants:  # warm-up (and script loading)
                    asyncio.run(_load(urls[variant], 0.3))
                rps: dict[str, list[float]] = {v: [] for v in variants}
                commands: dict[str, list[float]] = {v: [] for v in variants}
                for index in range(ROUNDS):
                    order = variants if index % 2 == 0 else list(reversed(variants))
                    for variant in order:
                        before = sum(redis_server.command_stats().values())
                        rate, statuses = asyncio.run(_load(urls[variant], SECONDS))
                        after = sum(redis_server.command_stats().values())
                        assert set(statuses) == {200}, statuses
                        rps[variant].append(rate)
                        # minus 1: the INFO call itself
                        commands[variant].append((after - before - 1) / (rate * SECONDS))
                split = {v: _monitor_split(redis_server.port, urls[v]) for v in variants if v != "bare"}
        finally:
            redis_server.stop()

    print(
        f"uvicorn (1 worker each) + redis-server, {CONNECTIONS} keep-alive connections, {ROUNDS} x {SECONDS}s"
    )
    print(
        f"{'stack':<18} {'req/s (median)':>14} {'redis cmds/req':>15} {'client cmds/req':>16} {'in Lua/req':>11}"
    )
    for variant in variants:
        trips, lua = split.get(variant, (0.0, 0.0))
        print(
            f"{variant:<18} {statistics.median(rps[variant]):>14.0f} "
            f"{statistics.median(commands[variant]):>15.2f} {trips:>16.2f} {lua:>11.2f}"
        )
    print()
    for ours, theirs in [
        ("hardenkit", "slowapi"),
        ("hardenkit", "slowapi-headers"),
        ("hardenkit-sliding", "slowapi"),
    ]:
        ratio = statistics.median(rps[ours]) / statistics.median(rps[theirs])
        print(f"req/s ratio {ours} / {theirs}: {ratio:.2f}x  (target >= 1.5x)")
    print(
        "(hardenkit sends its RateLimit and X-RateLimit headers; 'slowapi' is slowapi's default, headers off)"
    )


if __name__ == "__main__":
    main()
