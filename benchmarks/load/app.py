"""The service the harness runs by default: examples/demo_app.py under ``harden()``, plus two faults.

``benchmarks.load.app:app`` is the demo's routes hardened by ``hk.harden()``
(options from ``HARDENKIT_*`` variables, as `hardenkit demo --redis` does), and:

- ``LOADTEST_LOG_FILE``: every log record (the access log included) goes, as
  JSON lines, to this file (the log-disk-full scenario puts it on a full tmpfs);
- ``LOADTEST_HANG_FLAG``: a critical readiness check ``hang`` that blocks (a
  sync call in the probes' worker thread) while this file exists, for the
  hanging-check scenario. Its timeout is ``LOADTEST_HANG_TIMEOUT`` (default 1 s).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import hardenkit as hk
from hardenkit.health import Check


def _hanging_check(flag: Path) -> Any:
    def hang() -> bool:
        # Blocks like a dependency call with no timeout of its own; bounded at
        # 10 minutes so a forgotten flag cannot keep a thread for ever.
        for _ in range(6000):
            if not flag.exists():
                return True
            time.sleep(0.1)
        return False

    return hang


def build() -> Any:
    from demo_app import build_app  # examples/ is on PYTHONPATH (procs.Service sets it)

    log_file = os.environ.get("LOADTEST_LOG_FILE")
    if log_file:
        from hardenkit.logs import configure_logging

        # A line-buffered file: each record is written (and fails) on its own.
        configure_logging("INFO", json=True, stream=open(log_file, "a", buffering=1))
    health: dict[str, Any] = {}
    flag = os.environ.get("LOADTEST_HANG_FLAG")
    if flag:
        timeout = float(os.environ.get("LOADTEST_HANG_TIMEOUT", "1.0"))
        health["checks"] = [Check("hang", _hanging_check(Path(flag)), timeout=timeout)]
    ratelimit: dict[str, Any] = {}
    if "HARDENKIT_RATELIMIT_DEFAULT" in os.environ:
        # harden() registers its own default ("100/minute") as a keyword option, and
        # keyword options beat HARDENKIT_* variables, so the variable alone is
        # silently ignored (reported in docs/operations/load.md); pass it on by hand.
        ratelimit["default"] = os.environ["HARDENKIT_RATELIMIT_DEFAULT"]
    return hk.harden(build_app(), health=health, ratelimit=ratelimit)


app = build()
