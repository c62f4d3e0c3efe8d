"""Multiprocess metrics under a real ``uvicorn --workers 2``: one scrape, the whole service's counts."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import uvicorn_server

pytestmark = pytest.mark.slow

ROUTES = {"/": "/", "/items/1": "/items/{item_id}", "/items/22": "/items/{item_id}", "/fail": "/fail"}


def _get(port: int, path: str) -> tuple[int, int, str]:
    """One request on its own connection (so the kernel spreads them over the workers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, int(response.getheader("X-Worker-Pid") or 0), body
    finally:
        conn.close()


def _totals(port: int) -> dict[tuple[str, str], float]:
    status, _, body = _get(port, "/metrics")
    assert status == 200, body
    totals: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(body):
        if family.name == "http_requests":
            for sample in family.samples:
                if sample.name == "http_requests_total":
                    key = (sample.labels["route"], sample.labels["status"])
                    totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _send(port: int, rounds: int) -> tuple[Counter[tuple[str, str]], set[int]]:
    paths = [path for _ in range(rounds) for path in ROUTES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda path: (path, _get(port, path)), paths))
    expected: Counter[tuple[str, str]] = Counter()
    pids: set[int] = set()
    for path, (status, pid, _) in results:
        expected[(ROUTES[path], str(status))] += 1
        pids.add(pid)
    return expected, pids


def _wait(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _restarted(supervisor: int, old: set[int]) -> bool:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    if not children.exists():  # pragma: no cover - Linux exposes it
        return True
    now = {int(pid) for pid in children.read_text().split()}
    # uvicorn's supervisor may also have a resource tracker child; two workers are what counts.
    return len(now - old) >= 1 and len(now & old) == 1


def test_one_scrape_returns_every_workers_counts_and_survives_a_worker_restart(tmp_path: Path) -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # the library must set it up itself
    with uvicorn_server(
        "integration.metrics_app:app", env={"TMPDIR": str(tmp_path)}, extra_args=("--workers", "2")
    ) as (
        base_url,
        proc,
    ):
        port = int(base_url.rsplit(":", 1)[1])
        service = tmp_path / f"hardenkit-metrics-{os.getuid()}-{proc.pid}"
        # Bounded: until both workers have answered (the kernel picks), at most 20 rounds.
        expected: Counter[tuple[str, str]] = Counter()
        pids: set[int] = set()
        for _ in range(20):
            sent, seen = _send(port, 25)
            expected += sent
            pids |= seen
            if len(pids) >= 2:
                break
        assert len(pids) == 2, f"only worker(s) {pids} answered"
        assert service.is_dir(), sorted(p.name for p in tmp_path.iterdir())
        assert oct(service.stat().st_mode & 0o777) == "0o700"

        assert _totals(port) == dict(expected)

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        assert (service / f"gauge_livesum_{victim}.db").exists()
        # uvicorn's supervisor starts a new worker; a scrape cleans the dead one's live files.
        assert _wait(lambda: len(list(service.glob("counter_*.db"))) == 3 or _restarted(proc.pid, pids))

        def cleaned() -> bool:
            _totals(port)
            return not (service / f"gauge_livesum_{victim}.db").exists()

        assert _wait(cleaned), sorted(p.name for p in service.iterdir())
        # Every file of the killed worker is gone; its counts live on in the archives.
        assert not [p.name for p in service.iterdir() if f"_{victim}." in p.name]
        assert (service / "counter_archive.db").exists()
        assert _totals(port) == dict(expected)
        more, _ = _send(port, 5)
        expected += more
        assert _totals(port) == dict(expected)
    assert proc.poll() is not None
