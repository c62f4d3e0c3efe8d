"""Multiprocess metrics under a real gunicorn with two uvicorn workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_metrics_workers import _send, _totals

from support import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.slow
pytest.importorskip("gunicorn")


def test_one_scrape_returns_both_gunicorn_workers_counts(tmp_path: Path) -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "integration.metrics_app:app", "--workers", "2",
         "--worker-class", "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc, timeout=30)
        expected: Counter[tuple[str, str]] = Counter()
        pids: set[int] = set()
        for _ in range(20):  # bounded: until both workers have answered
            sent, seen = _send(port, 25)
            expected += sent
            pids |= seen
            if len(pids) >= 2:
                break
        assert len(pids) == 2, f"only worker(s) {pids} answered"
        assert (tmp_path / f"hardenkit-metrics-{os.getuid()}-{proc.pid}").is_dir()
        assert _totals(port) == dict(expected)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
