"""Cost of one access-log line: hardenkit (redacted, JSON) vs a plain python-json-logger line.

    .venv/bin/python benchmarks/bench_accesslog.py

Both write the same nine fields as one JSON line to an in-memory stream:

* ``pjl``: ``logger.info(msg, extra=fields)`` through python-json-logger's
  JsonFormatter, no redaction (what a hand-written access log costs);
* ``hardenkit``: AccessLogMiddleware's logging step (query, path and user agent
  redacted, request id from the context) through configure_logging's handler
  (RedactingFilter + request-id filter + hardenkit's JSON formatter);
* ``hardenkit-secret``: the same with a secret in the query (the slow path).

Rounds are interleaved; medians of per-line cost and the ratio to ``pjl`` are printed.
``--cpu`` times with the process's CPU clock instead of the wall clock: on a shared,
busy machine the wall clock mostly measures the neighbours.
"""

from __future__ import annotations

import io
import logging
import statistics
import sys
import time
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

from hardenkit.headers import REQUEST_ID
from hardenkit.logs import AccessLogMiddleware, configure_logging

LINES = 4000
ROUNDS = 9


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
    pass


def scope(query: bytes) -> dict[str, object]:
    return {
        "type": "http", "method": "GET", "path": "/api/orders/1042", "query_string": query,
        "headers": [(b"host", b"api.example.com"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")],
        "client": ("203.0.113.7", 51234),
    }  # fmt: skip


def make_pjl() -> Callable[[], None]:
    logger = logging.getLogger("bench.pjl")
    logger.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter(timestamp=True))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    fields = {
        "method": "GET", "path": "/api/orders/1042", "query": "page=2&sort=desc", "status": 200,
        "duration_ms": 3.214, "bytes": 512, "client": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
        "request_id": "3f2a9c1d-5b6e-4e5f-9a8b-7c6d5e4f3a2b",
    }  # fmt: skip

    def run() -> None:
        for _ in range(LINES):
            logger.info("%s %s %s", "GET", "/api/orders/1042", 200, extra=fields)
        handler.stream.seek(0)
        handler.stream.truncate()

    return run


def make_hardenkit(query: bytes) -> Callable[[], None]:
    stream = io.StringIO()
    handler = configure_logging(stream=stream, uvicorn=False)
    logging.getLogger().removeHandler(handler)
    logger = logging.getLogger(f"bench.hardenkit.{len(query)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    middleware = AccessLogMiddleware(_app, logger=logger)
    the_scope = scope(query)

    def run() -> None:
        token = REQUEST_ID.set("3f2a9c1d-5b6e-4e5f-9a8b-7c6d5e4f3a2b")
        try:
            for _ in range(LINES):
                middleware._log(the_scope, 200, 512, time.perf_counter(), False, failed=None)
        finally:
            REQUEST_ID.reset(token)
        stream.seek(0)
        stream.truncate()

    return run


def main() -> int:
    contenders = {
        "pjl": make_pjl(),
        "hardenkit": make_hardenkit(b"page=2&sort=desc"),
        "hardenkit-secret": make_hardenkit(b"page=2&api_key=abc123&email=a@example.com"),
    }
    clock = time.process_time if "--cpu" in sys.argv[1:] else time.perf_counter
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():  # warm-up
        run()
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            started = clock()
            run()
            timings[name].append((clock() - started) / LINES * 1e6)
    base = statistics.median(timings["pjl"])
    kind = "CPU" if clock is time.process_time else "wall-clock"
    print(
        f"python {sys.version.split()[0]}, {LINES} lines x {ROUNDS} interleaved rounds, median {kind} per line"
    )
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:<18} {median:7.2f} us/line   {median / base:5.2f}x pjl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
