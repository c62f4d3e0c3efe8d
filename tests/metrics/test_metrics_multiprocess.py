"""Multiprocess setup: the directory, its safety, dead workers' files (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardenkit.errors import ConfigurationError
from hardenkit.metrics import multiprocess as mp


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_the_test_process_is_not_a_worker() -> None:
    assert not mp.is_worker()


def test_dead_workers_live_gauges_are_removed_and_their_counts_kept(tmp_path: Path) -> None:
    pid = dead_pid()
    mine = os.getpid()
    for name in (
        f"gauge_livesum_{pid}.db",
        f"counter_{pid}.db",
        f"histogram_{pid}.db",
        f"gauge_livesum_{mine}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    assert mp.clean_dead_workers(tmp_path) == [pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{pid}.db", f"histogram_{pid}.db", f"gauge_livesum_{mine}.db"]
    )


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigurationError, match="writable only by it"):
        mp.prepare("auto", str(shared))
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_user_variable_naming_no_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="not a directory"):
        mp.prepare("auto", None)


def test_one_process_mode_when_not_a_worker() -> None:
    assert mp.prepare("auto", None) is None
    assert mp.prepare(False, None) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def _run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


SCRIPT = """
    import os, anyio, sys
    sys.path.insert(0, {tests!r})
    import prometheus_client  # imported first, as a user's own metrics module would
    import hardenkit as hk
    from support import asgi_request
    from starlette.responses import PlainTextResponse

    app = hk.MetricsMiddleware(PlainTextResponse("ok"), multiprocess={mode!r}, multiprocess_dir={directory!r})

    async def main():
        await asgi_request(app, "/")
        print(app.render()[0].decode())
        print("DIR", os.environ.get("PROMETHEUS_MULTIPROC_DIR"), "PID", os.getpid())

    anyio.run(main)
"""


def test_a_directory_given_is_used_and_counts_add_up_across_processes(tmp_path: Path) -> None:
    tests = str(Path(__file__).resolve().parents[1])
    directory = tmp_path / "metrics"
    outputs = [_run(SCRIPT.format(tests=tests, mode="auto", directory=str(directory)), {}) for _ in range(2)]
    assert f"DIR {directory}" in outputs[0]
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    # The second process read both processes' files: two requests in one scrape.
    assert (
        'http_requests_total{method="GET",route="<unmatched>",status="200",status_class="2xx"} 2.0'
        in outputs[1]
    )


def test_forced_multiprocess_uses_a_per_server_directory_and_removes_stale_ones(tmp_path: Path) -> None:
    tests = str(Path(__file__).resolve().parents[1])
    stale = tmp_path / f"hardenkit-metrics-{os.getuid()}-{dead_pid()}"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"")
    output = _run(SCRIPT.format(tests=tests, mode=True, directory=None), {"TMPDIR": str(tmp_path)})
    expected = tmp_path / f"hardenkit-metrics-{os.getuid()}-{os.getpid()}"
    assert f"DIR {expected}" in output
    assert not stale.exists()
