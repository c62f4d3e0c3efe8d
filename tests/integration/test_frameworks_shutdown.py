"""Graceful shutdown of a non-Starlette framework (Litestar) hardened by ``harden()`` under a real uvicorn.

SIGTERM: readiness turns 503 during ``shutdown_delay`` while liveness passes, the
request in flight completes, Litestar's own lifespan ran (its startup hook), and
uvicorn ends as it does on SIGTERM. Django's ASGI handler (no lifespan at all) has
the same test in test_shutdown_without_lifespan.py.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
import time
from pathlib import Path

import httpx2
import pytest

from support import uvicorn_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("litestar") is None, reason="Litestar is not installed"),
]


def test_a_hardened_litestar_app_drains_on_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "in-flight"
    started = tmp_path / "started"
    env = {"FRAMEWORK_APP_MARKER": str(marker), "FRAMEWORK_APP_STARTED": str(started)}
    slow_answer: list[httpx2.Response] = []
    with uvicorn_server("integration.litestar_app:app", env=env) as (base, proc):
        fast = httpx2.get(f"{base}/", timeout=10)
        assert fast.text == "fast"
        assert "x-request-id" in fast.headers and "x-latency-ms" in fast.headers
        assert started.read_text(encoding="utf-8") == "started"  # Litestar's own startup ran
        ready = httpx2.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200 and "x-request-id" in ready.headers
        worker = threading.Thread(target=lambda: slow_answer.append(httpx2.get(f"{base}/slow", timeout=20)))
        worker.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the slow request never started"

        proc.send_signal(signal.SIGTERM)
        ready = httpx2.get(f"{base}/readyz", timeout=10)
        live = httpx2.get(f"{base}/livez", timeout=10)
        assert (ready.status_code, ready.json()["status"]) == (503, "fail")
        assert (live.status_code, live.json()["status"]) == (200, "pass")
        assert proc.poll() is None

        worker.join(timeout=20)
        assert not worker.is_alive()
        assert (slow_answer[0].status_code, slow_answer[0].text) == (200, "slow done")
        code = proc.wait(timeout=30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
    assert code == -signal.SIGTERM
    assert "Traceback" not in err
    assert "ERROR" not in err
