"""Multiprocess setup: the directory, its safety, dead workers' files (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from hardenkit.errors import ConfigurationError
from hardenkit.metrics import multiprocess as mp


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_the_test_process_is_not_a_worker() -> None:
    assert not mp.is_worker()


KEY = mmap_key("http_requests_total", "http_requests_total", ["route"], ["/a"], "doc")


def write(path: Path, value: float) -> None:
    values = MmapedDict(str(path))  # type: ignore[no-untyped-call]
    values.write_value(KEY, value, 0.0)  # type: ignore[no-untyped-call]
    values.close()  # type: ignore[no-untyped-call]


def read(path: Path) -> dict[str, float]:
    return {key: value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))}  # type: ignore[no-untyped-call]


def test_dead_workers_files_are_cleaned_and_their_counts_kept_in_the_archive(tmp_path: Path) -> None:
    pid = dead_pid()
    mine = os.getpid()
    write(tmp_path / f"counter_{pid}.db", 3.0)
    write(tmp_path / "counter_archive.db", 2.0)
    write(tmp_path / f"counter_{mine}.db", 7.0)
    write(tmp_path / f"histogram_{pid}.db", 1.0)
    write(tmp_path / f"gauge_livesum_{pid}.db", 4.0)
    write(tmp_path / f"gauge_livesum_{mine}.db", 1.0)
    assert mp.clean_dead_workers(tmp_path) == [pid]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted(
        ["counter_archive.db", "histogram_archive.db", f"counter_{mine}.db", f"gauge_livesum_{mine}.db"]
    )
    assert read(tmp_path / "counter_archive.db") == {KEY: 5.0}
    assert read(tmp_path / "histogram_archive.db") == {KEY: 1.0}
    assert read(tmp_path / f"counter_{mine}.db") == {KEY: 7.0}


def test_a_file_left_aside_by_a_crash_is_merged_once(tmp_path: Path) -> None:
    # Set aside after the archive was written: not merged yet.
    write(tmp_path / "counter_archive.db", 2.0)
    time.sleep(0.01)
    write(tmp_path / "counter_1.db.merging", 3.0)
    mp.clean_dead_workers(tmp_path)
    assert read(tmp_path / "counter_archive.db") == {KEY: 5.0}
    assert not list(tmp_path.glob("*.merging"))
    # Set aside before the archive was replaced: its counts are in the archive already.
    write(tmp_path / "counter_2.db.merging", 3.0)
    time.sleep(0.01)
    write(tmp_path / "counter_archive.db", 8.0)
    mp.clean_dead_workers(tmp_path)
    assert read(tmp_path / "counter_archive.db") == {KEY: 8.0}
    assert not list(tmp_path.glob("*.merging"))


def test_merging_waits_for_a_scrape_in_progress(tmp_path: Path) -> None:
    pid = dead_pid()
    write(tmp_path / f"counter_{pid}.db", 3.0)
    with mp.scrape_lock(tmp_path, timeout=1):
        mp.clean_dead_workers(tmp_path)  # another holder: nothing merged now
        assert (tmp_path / f"counter_{pid}.db").exists()
    mp.clean_dead_workers(tmp_path)
    assert read(tmp_path / "counter_archive.db") == {KEY: 3.0}


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


def test_pid_checks() -> None:
    assert mp.pid_alive(os.getpid())
    assert not mp.pid_alive(0) and not mp.pid_alive(-1)
    assert mp.pid_alive(1)  # init: alive, possibly someone else's


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_text("")
    with pytest.raises(ConfigurationError, match="multiprocess directory"):
        mp.prepare("auto", str(tmp_path / "metrics"))
