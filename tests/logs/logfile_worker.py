"""A writer process for the LogFileHandler tests (run as a script: real processes, not threads).

python logfile_worker.py lines PATH ROTATE KEEP PROC THREADS COUNT [COMPRESS]
    THREADS threads each log COUNT lines {"proc", "t", "i"}, then close the handler.
python logfile_worker.py phases PATH CLOCKFILE PROC COUNT
    daily rotation with a clock read from CLOCKFILE: for each line "go" on stdin, log COUNT lines
    carrying the clock's day, flush, answer "done"; stop at end of input.
python logfile_worker.py flood PATH COUNTERS THREADS QUEUE
    THREADS threads log as fast as they can (bounded) and record, after each emit, how many lines
    they emitted in the mmap'ed COUNTERS file (8 bytes per thread): the parent SIGKILLs it.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import sys
import threading
import time

from hardenkit.logs import LogFileHandler


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("worker")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def lines(path: str, rotate: str, keep: str, proc: int, threads: int, count: int, compress: bool) -> None:
    handler = LogFileHandler(
        path, rotate=rotate, keep=None if keep == "none" else int(keep), compress=compress, queue_size=100_000
    )
    logger = _logger(handler)

    def run(thread: int) -> None:
        for i in range(count):
            logger.info("line", extra={"proc": proc, "t": thread, "i": i, "pad": "x" * 40})

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    handler.close()
    if handler.dropped:
        raise SystemExit(f"dropped {handler.dropped}")


def phases(path: str, clockfile: str, proc: int, count: int) -> None:
    def clock() -> float:
        with open(clockfile) as handle:
            return float(handle.read())

    handler = LogFileHandler(path, rotate="daily", keep=None, clock=clock)
    logger = _logger(handler)
    for phase, command in enumerate(sys.stdin):
        if command.strip() != "go":
            break
        day = time.strftime("%Y-%m-%d", time.gmtime(clock()))
        for i in range(count):
            logger.info("line", extra={"proc": proc, "phase": phase, "i": i, "day": day})
        handler.flush()
        print("done", flush=True)
    handler.close()


def flood(path: str, counters: str, threads: int, queue_size: int) -> None:
    # block=60: a full queue waits instead of dropping, so a missing line can only be the kill's doing.
    handler = LogFileHandler(path, queue_size=queue_size, block=60)
    logger = _logger(handler)
    fd = os.open(counters, os.O_RDWR)
    shared = mmap.mmap(fd, 8 * threads)

    def run(thread: int) -> None:
        for i in range(2_000_000):  # bounded: the parent kills us long before
            logger.info("line", extra={"t": thread, "i": i, "pad": "y" * 200})
            struct.pack_into("<q", shared, 8 * thread, i + 1)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    print("started", flush=True)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "lines":
        compress = len(args) > 6 and args[6] == "gzip"
        lines(args[0], args[1], args[2], int(args[3]), int(args[4]), int(args[5]), compress)
    elif mode == "phases":
        phases(args[0], args[1], int(args[2]), int(args[3]))
    else:
        flood(args[0], args[1], int(args[2]), int(args[3]))
