"""``hardenkit status URL`` against a real uvicorn serving traffic."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time

import pytest

from support import uvicorn_server

pytestmark = pytest.mark.slow


def test_status_summarises_a_live_service() -> None:
    with uvicorn_server("integration.metrics_app:app") as (base_url, _proc):
        port = int(base_url.rsplit(":", 1)[1])
        stop = threading.Event()

        def traffic() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                for n in range(2000):  # bounded; stopped as soon as the command is done
                    if stop.is_set():
                        return
                    conn.request("GET", "/fail" if n % 10 == 0 else f"/items/{n}")
                    conn.getresponse().read()
                    time.sleep(0.002)
            finally:
                conn.close()

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "hardenkit", "status", f"127.0.0.1:{port}", "--interval", "1",
                 "--slo", "api:objective=0.999,latency_ms=100"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            stop.set()
            worker.join(timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/items/{item_id}" in out and "/fail" in out
    assert "p95 ms" in out and "requests/s" in out
    assert "api availability (objective 99.9%)" in out
    # /fail answers 503: its line shows 100% 5xx.
    fail_line = next(line for line in out.splitlines() if line.startswith("/fail"))
    assert "100.00%" in fail_line


def test_status_explains_a_refusal() -> None:
    with uvicorn_server("integration.metrics_app:app", env={"HARDENKIT_METRICS_ALLOW": "192.0.2.0/24"}) as (
        base_url,
        _proc,
    ):
        result = subprocess.run(
            [sys.executable, "-m", "hardenkit", "status", f"{base_url}/metrics", "--interval", "0.1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert "403" in result.stderr and "--token" in result.stderr
