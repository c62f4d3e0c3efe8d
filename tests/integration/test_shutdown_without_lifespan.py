"""SIGTERM under a real uvicorn for apps that reject lifespan, wrapped by ``Kit.wrap``.

The app raises on the lifespan scope (as Django's ASGI handler does); the kit root
answers lifespan itself, so the probes hook SIGTERM: readiness flips to 503 during
``shutdown_delay`` while liveness passes, the in-flight request completes, and
uvicorn ends as it does on SIGTERM.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx2
import pytest

from support import uvicorn_server

pytestmark = pytest.mark.slow

needs_django = pytest.mark.skipif(
    importlib.util.find_spec("django") is None, reason="Django is not installed (pip install django)"
)


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    returncode = proc.wait(timeout=30)
    assert proc.stderr is not None
    return returncode, proc.stderr.read().decode("utf-8", "replace")


def _drains_on_sigterm(app: str, tmp_path: Path, *extra_args: str) -> None:
    marker = tmp_path / "in-flight"
    env = {"NOLIFESPAN_APP_MARKER": str(marker), "NOLIFESPAN_APP_SHUTDOWN_DELAY": "1.0"}
    slow_answer: list[httpx2.Response] = []
    with uvicorn_server(app, env=env, extra_args=extra_args) as (base, proc):
        fast = httpx2.get(f"{base}/", timeout=10)
        assert fast.text == "fast"
        assert "x-request-id" in fast.headers  # the rest of the kit is there too
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
    assert code == -signal.SIGTERM
    assert "Traceback" not in err
    assert "ERROR" not in err


@pytest.mark.parametrize("lifespan", ["auto", "on"])
def test_an_app_that_raises_on_lifespan_drains_on_sigterm(tmp_path: Path, lifespan: str) -> None:
    _drains_on_sigterm("integration.nolifespan_app:app", tmp_path, "--lifespan", lifespan)


@needs_django
def test_djangos_asgi_handler_drains_on_sigterm(tmp_path: Path) -> None:
    _drains_on_sigterm("integration.django_app:app", tmp_path)
