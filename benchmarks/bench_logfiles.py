"""Log files shared by processes: hardenkit's LogFileHandler vs concurrent-log-handler vs the stdlib.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_logfiles.py [--procs 4 --threads 4 --lines 25000 --rotate-mb 1]

Two measures, in one run, the same JSON formatter (configure_logging's) for every contender:

* ``throughput``: PROCS processes x THREADS threads each log LINES lines to one file rotated every
  ROTATE_MB; per process, lines per second from the first emit until ``close()`` returns (so a
  queue is not credited before its lines are on disk), plus how many lines the files really hold
  (the stdlib's RotatingFileHandler is not made for several processes and loses or misplaces some);
* ``access log``: one process, AccessLogMiddleware's logging step writing to a file; microseconds
  per request on the request's thread (``emit``), and per line including the final flush.

Contenders: ``hardenkit`` (LogFileHandler, queue + writer thread, flock per batch),
``concurrent-log-handler`` (ConcurrentRotatingFileHandler: a lock per line), ``stdlib``
(logging.handlers.RotatingFileHandler, one process only is safe).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import logging.handlers
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONTENDERS = ("hardenkit", "concurrent-log-handler", "stdlib")


def _formatter() -> logging.Formatter:
    from hardenkit.logs import configure_logging

    handler = configure_logging(stream=io.StringIO(), uvicorn=False)
    logging.getLogger().removeHandler(handler)
    assert handler.formatter is not None
    return handler.formatter


def make_handler(kind: str, path: str, max_bytes: int) -> logging.Handler:
    handler: logging.Handler
    if kind == "hardenkit":
        from hardenkit.logs import LogFileHandler

        handler = LogFileHandler(path, rotate=max_bytes, keep=None, queue_size=100_000)
    elif kind == "concurrent-log-handler":
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        handler = ConcurrentRotatingFileHandler(path, maxBytes=max_bytes, backupCount=10_000)
    else:
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=10_000)
    handler.setFormatter(_formatter())
    return handler


def child(kind: str, path: str, proc: int, threads: int, lines: int, max_bytes: int) -> None:
    handler = make_handler(kind, path, max_bytes)
    logger = logging.getLogger("bench")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def run(thread: int) -> None:
        for i in range(lines):
            logger.info(
                "GET /api/orders 200", extra={"p": proc, "t": thread, "i": i, "ua": "Mozilla/5.0 bench"}
            )

    started = time.perf_counter()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    emitted = time.perf_counter()
    handler.close()
    done = time.perf_counter()
    print(json.dumps({"emit": emitted - started, "total": done - started}))


def count_lines(directory: Path) -> tuple[int, int]:
    """(lines that parse, distinct (p, t, i) keys) across the log files."""
    keys: set[tuple[int, int, int]] = set()
    total = 0
    for path in directory.iterdir():
        if not path.name.startswith("app.log") or path.name.endswith(".lock"):
            continue
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        for line in raw.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            total += 1
            keys.add((record["p"], record["t"], record["i"]))
    return total, len(keys)


def throughput(args: argparse.Namespace) -> None:
    expected = args.procs * args.threads * args.lines
    print(
        f"throughput: {args.procs} processes x {args.threads} threads x {args.lines} lines, rotate every {args.rotate_mb} MB"
    )
    for kind in CONTENDERS:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "app.log")
            command = [sys.executable, __file__, "--child", kind, path]
            numbers = [str(args.threads), str(args.lines), str(int(args.rotate_mb * 1_000_000))]
            procs = [
                subprocess.Popen([*command, str(p), *numbers], stdout=subprocess.PIPE, text=True)
                for p in range(args.procs)
            ]
            results = []
            for proc in procs:
                out, _ = proc.communicate(timeout=600)
                results.append(json.loads(out.strip().splitlines()[-1]))
            lines, distinct = count_lines(Path(tmp))
            files = len([p for p in os.listdir(tmp) if p.startswith("app.log")])
        per_proc = [args.threads * args.lines / r["total"] for r in results]
        emit = [args.threads * args.lines / r["emit"] for r in results]
        print(
            f"  {kind:<24} {statistics.mean(per_proc):9.0f} lines/s/process (emit side {statistics.mean(emit):9.0f})"
            f"   files {files:4d}   lines kept {distinct}/{expected}{'' if lines == distinct else f' ({lines - distinct} duplicates)'}"
        )


def access_log(args: argparse.Namespace) -> None:
    from hardenkit.headers import REQUEST_ID
    from hardenkit.logs import AccessLogMiddleware

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
        pass

    scope = {
        "type": "http", "method": "GET", "path": "/api/orders/1042", "query_string": b"page=2",
        "headers": [(b"host", b"api.example.com"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")],
        "client": ("203.0.113.7", 51234),
    }  # fmt: skip
    n = args.requests
    print(f"access log to a file: {n} requests, one process, medians of {args.rounds} rounds")
    results: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        handlers = {
            kind: make_handler(kind, os.path.join(tmp, f"{kind}.log"), 50_000_000) for kind in CONTENDERS
        }
        middlewares = {}
        for kind, handler in handlers.items():
            logger = logging.getLogger(f"bench.access.{kind}")
            logger.handlers[:] = [handler]
            logger.propagate = False
            logger.setLevel(logging.INFO)
            middlewares[kind] = AccessLogMiddleware(app, logger=logger)
        token = REQUEST_ID.set("3f2a9c1d-5b6e-4e5f-9a8b-7c6d5e4f3a2b")
        try:
            for _ in range(args.rounds):
                for kind, middleware in middlewares.items():
                    started = time.perf_counter()
                    for _ in range(n):
                        middleware._log(scope, 200, 512, time.perf_counter(), False, failed=None)
                    emitted = time.perf_counter()
                    handlers[kind].flush()
                    done = time.perf_counter()
                    results[kind][0].append((emitted - started) / n * 1e6)
                    results[kind][1].append((done - started) / n * 1e6)
        finally:
            REQUEST_ID.reset(token)
            for handler in handlers.values():
                handler.close()
    for kind, (emit, total) in results.items():
        print(
            f"  {kind:<24} {statistics.median(emit):7.2f} us/request on the request's thread   {statistics.median(total):7.2f} us/line with flush"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, path, proc, threads, lines, max_bytes = sys.argv[2:8]
        child(kind, path, int(proc), int(threads), int(lines), int(max_bytes))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--lines", type=int, default=25_000)
    parser.add_argument("--rotate-mb", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("throughput", "access"), default=None)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.only != "access":
        throughput(args)
    if args.only != "throughput":
        access_log(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
