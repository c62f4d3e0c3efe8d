"""SIGTERM under a real uvicorn: readiness flips at once, in-flight requests finish, clean exit."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx2
import pytest

from support import uvicorn_server

pytestmark = pytest.mark.slow

APP = "integration.health_app:app"


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait (bounded) for the server to end; its return code and stderr."""
    returncode = proc.wait(timeout=30)
    assert proc.stderr is not None
    return returncode, proc.stderr.read().decode("utf-8", "replace")


def _plain_uvicorn_exit() -> tuple[int, str]:
    """How uvicorn ends on SIGTERM when hardenkit is not there."""
    with uvicorn_server(APP, env={"HEALTH_APP_PLAIN": "1"}) as (base, proc):
        assert httpx2.get(f"{base}/", timeout=10).text == "fast"
        proc.send_signal(signal.SIGTERM)
        return _finish(proc)


def test_sigterm_fails_readiness_keeps_liveness_and_lets_inflight_requests_finish(tmp_path: Path) -> None:
    plain_code, plain_err = _plain_uvicorn_exit()
    marker = tmp_path / "in-flight"
    env = {"HEALTH_APP_MARKER": str(marker), "HEALTH_APP_SHUTDOWN_DELAY": "1.0"}
    slow_answer: list[httpx2.Response] = []
    with uvicorn_server(APP, env=env) as (base, proc):
        assert httpx2.get(f"{base}/readyz", timeout=10).status_code == 200
        worker = threading.Thread(target=lambda: slow_answer.append(httpx2.get(f"{base}/slow", timeout=20)))
        worker.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the slow request never started"

        proc.send_signal(signal.SIGTERM)
        # During shutdown_delay the socket is still open: readiness fails, liveness passes.
        ready = httpx2.get(f"{base}/readyz", timeout=10)
        live = httpx2.get(f"{base}/livez", timeout=10)
        assert (ready.status_code, ready.json()["status"]) == (503, "fail")
        assert ready.headers["content-type"] == "application/health+json"
        assert (live.status_code, live.json()["status"]) == (200, "pass")
        assert proc.poll() is None

        worker.join(timeout=20)
        assert not worker.is_alive()
        assert (slow_answer[0].status_code, slow_answer[0].text) == (200, "slow done")
        code, err = _finish(proc)
    assert code == plain_code == -signal.SIGTERM
    assert "Traceback" not in err and "Traceback" not in plain_err
    assert "ERROR" not in err
