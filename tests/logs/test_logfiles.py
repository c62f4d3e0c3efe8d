"""LogFileHandler in one process: options, permissions, dictConfig, rotation by the clock, retention,
external logrotate, the full-queue policy, a full disk and a read-only directory (real tmpfs mounts)."""

from __future__ import annotations

import calendar
import gzip
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hardenkit as hk
from hardenkit.errors import ConfigurationError
from hardenkit.logs import LogFileHandler

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the gate is flock(2): POSIX only")


@pytest.fixture
def make_logger() -> Iterator[Callable[[LogFileHandler], logging.Logger]]:
    made: list[tuple[logging.Logger, LogFileHandler]] = []

    def make(handler: LogFileHandler) -> logging.Logger:
        logger = logging.getLogger(f"test.logfiles.{len(made)}.{id(handler)}")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        made.append((logger, handler))
        return logger

    yield make
    for logger, handler in made:
        handler.close()
        logger.handlers[:] = []


def _lines(path: Path) -> list[dict[str, Any]]:
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode().splitlines()]


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("rotate", "weekly"), ("rotate", "1 KB"), ("rotate", "12 parsecs"), ("rotate", True),
        ("keep", 0), ("keep", "30x"), ("keep", -1), ("mode", 0o10000), ("mode", "640"),
        ("queue_size", 0), ("block", -1), ("retry_interval", float("nan")),
    ],
)  # fmt: skip
def test_bad_options_are_refused_with_a_hint(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        options: dict[str, Any] = {option: value}
        LogFileHandler(tmp_path / "app.log", **options)


def test_new_files_are_0640_and_the_new_directory_0750_whatever_the_umask(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger]
) -> None:
    path = tmp_path / "logs" / "api_requests.log"
    old = os.umask(0o077)
    try:
        handler = LogFileHandler(path)
        make_logger(handler).info("hello")
        handler.flush()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.parent.stat().st_mode & 0o777 == 0o750
    assert _lines(path)[0]["message"] == "hello"


def test_dictconfig_recipe_builds_the_handler(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "file": {"class": "hardenkit.logs.LogFileHandler", "filename": str(path), "rotate": "daily",
                         "keep": "30d", "compress": True, "level": "INFO"},
            },
            "loggers": {"test.dictconfig": {"handlers": ["file"], "level": "INFO", "propagate": False}},
        }
    )  # fmt: skip
    logger = logging.getLogger("test.dictconfig")
    handler = logger.handlers[0]
    try:
        assert isinstance(handler, LogFileHandler) and handler.policy.mode == "daily"
        logger.info("from dictConfig", extra={"n": 1})
        handler.flush()
        assert _lines(path) == [{**_lines(path)[0], "message": "from dictConfig", "n": 1}]
    finally:
        handler.close()
        logger.handlers[:] = []


def test_hourly_rotation_follows_the_clock_and_names_the_hour(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger]
) -> None:
    now = [calendar.timegm((2030, 1, 1, 22, 59, 0))]
    handler = LogFileHandler(tmp_path / "app.log", rotate="hourly", keep=None, clock=lambda: now[0])
    logger = make_logger(handler)
    for hour_step in range(3):
        logger.info("line", extra={"step": hour_step})
        handler.flush()
        now[0] += 3600
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["app.log", "app.log.2030-01-01T22", "app.log.2030-01-01T23"]
    assert [r["step"] for r in _lines(tmp_path / "app.log.2030-01-01T23")] == [1]


def test_keep_by_age_deletes_only_old_files_of_ours(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger]
) -> None:
    for name in ("app.log.2029-11-01.gz", "app.log.2029-12-20", "app.log.1", "other.log.2020-01-01"):
        (tmp_path / name).write_text("{}\n")
    now = [calendar.timegm((2030, 1, 1, 23, 0, 0))]
    handler = LogFileHandler(tmp_path / "app.log", rotate="daily", keep="30d", clock=lambda: now[0])
    logger = make_logger(handler)
    logger.info("day one")
    handler.flush()
    now[0] += 3600
    logger.info("day two")
    handler.close()
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    # 2029-11-01 is past 30 days; logrotate's app.log.1 and another log are not ours to delete.
    assert names == [
        "app.log",
        "app.log.1",
        "app.log.2029-12-20",
        "app.log.2030-01-01",
        "other.log.2020-01-01",
    ]


def test_a_file_moved_by_an_external_logrotate_is_reopened(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger]
) -> None:
    path = tmp_path / "app.log"
    handler = LogFileHandler(path)
    logger = make_logger(handler)
    logger.info("before")
    handler.flush()
    os.rename(path, tmp_path / "app.log.1")  # logrotate's default: rename, then the app reopens
    logger.info("after")
    handler.flush()
    assert [r["message"] for r in _lines(tmp_path / "app.log.1")] == ["before"]
    assert [r["message"] for r in _lines(path)] == ["after"]
    os.truncate(path, 0)  # logrotate's copytruncate
    logger.info("truncated")
    handler.flush()
    assert [r["message"] for r in _lines(path)] == ["truncated"]


def test_a_line_cut_by_a_killed_writer_is_trimmed_by_the_next_writer(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger]
) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b'{"message": "whole"}\n{"message": "cut by SIGK')  # what a short write leaves
    handler = LogFileHandler(path)
    make_logger(handler).info("next")
    handler.flush()
    assert [r["message"] for r in _lines(path)] == ["whole", "next"]


def test_a_full_queue_waits_briefly_then_drops_counts_and_reports_once(
    tmp_path: Path, make_logger: Callable[[LogFileHandler], logging.Logger], capfd: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    path = tmp_path / "app.log"
    handler = LogFileHandler(path, queue_size=20, block=0.01)
    logger = make_logger(handler)
    logger.info("warm")
    handler.flush()
    gate = os.open(tmp_path / ".app.log.gate", os.O_RDWR)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)  # a disk that stalls: the writer waits on its batch
        for i in range(200):
            logger.info("line", extra={"i": i})  # never raises, never waits long
        assert handler.dropped >= 200 - 20 - 512
        assert handler.dropped > 0
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)
        os.close(gate)
    handler.flush()
    written = [r for r in _lines(path) if r["message"] == "line"]
    assert len(written) + handler.dropped == 200
    err = capfd.readouterr().err
    assert err.count("is full") == 1
    assert f"{handler.dropped} lines dropped" in err


def test_the_health_check_passes_while_the_file_is_written(tmp_path: Path) -> None:
    handler = LogFileHandler(tmp_path / "app.log")
    check = handler.check()
    assert check.name == "log_file" and check.critical is False
    assert check.fn() == {"status": "pass", "observedValue": 0, "observedUnit": "dropped lines"}
    handler.close()


def test_emit_after_close_is_counted_not_raised(tmp_path: Path) -> None:
    handler = LogFileHandler(tmp_path / "app.log")
    handler.close()
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "late", None, None))
    assert handler.dropped == 1


# -- real mounts: a full disk and a read-only directory -------------------------------------------------


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    mounted: list[Path] = []

    def do(options: str) -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, timeout=30
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(target)
        return target

    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    yield do
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(100_000):  # bounded: a 256 KiB tmpfs fills after 64 pages
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_keeps_the_app_running_warns_once_and_recovers(
    mount: Callable[[str], Path],
    make_logger: Callable[[LogFileHandler], logging.Logger],
    capfd: pytest.CaptureFixture[str],
) -> None:
    disk = mount("size=256k")
    path = disk / "logs" / "app.log"
    handler = LogFileHandler(path, retry_interval=0.05)
    logger = make_logger(handler)
    logger.info("line", extra={"i": -1})
    handler.flush()
    (disk / "spare").write_bytes(b"\0" * 8192)
    _fill(disk)
    os.unlink(disk / "spare")  # two pages left: a batch is cut by the full disk, then taken back
    for i in range(300):
        logger.info("line", extra={"i": i, "pad": "z" * 100})
    _wait(lambda: handler.state()["writing"] is False)
    time.sleep(0.3)  # several retries: still one warning
    state = handler.state()
    assert state["error"] is not None and "No space left" in state["error"]
    check = handler.check().fn()
    assert check["status"] == "fail" and "No space left" in check["output"]
    os.unlink(disk / "filler")
    _wait(lambda: handler.state()["writing"] is True)
    handler.flush()
    numbers = [r["i"] for r in _lines(path)]  # every line whole: the cut batch was taken back
    assert sorted(numbers) == list(range(-1, 300)) and len(set(numbers)) == len(numbers)
    err = capfd.readouterr().err
    assert err.count("cannot write") == 1 and "writing" in err and "again" in err


def test_a_full_disk_does_not_turn_requests_into_500s(
    mount: Callable[[str], Path], capfd: pytest.CaptureFixture[str]
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    disk = mount("size=128k")
    handler = LogFileHandler(disk / "app.log", retry_interval=0.05, queue_size=50)
    logger = logging.getLogger("test.logfiles.app")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    async def endpoint(request: object) -> PlainTextResponse:
        logger.info("served", extra={"pad": "p" * 300})
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(
        hk.HealthProbeMiddleware, checks=[handler.check()], cache_ttl=0.01, shutdown_signals=()
    )
    _fill(disk)
    try:
        with TestClient(app) as client:
            statuses = {client.get("/").status_code for _ in range(200)}
            assert statuses == {200}
            assert handler.dropped > 0
            _wait(lambda: handler.state()["writing"] is False)
            time.sleep(0.05)  # past the readiness cache
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "warn"
            os.unlink(disk / "filler")
            _wait(lambda: handler.state()["writing"] is True)
            time.sleep(0.05)
            assert client.get("/readyz").json()["status"] == "pass"
    finally:
        handler.close()
        logger.handlers[:] = []
    err = capfd.readouterr().err
    assert err.count("cannot write") == 1


def test_a_read_only_directory_is_reported_once_and_writing_resumes_when_writable(
    mount: Callable[[str], Path],
    make_logger: Callable[[LogFileHandler], logging.Logger],
    capfd: pytest.CaptureFixture[str],
) -> None:
    disk = mount("size=64k,ro")
    path = disk / "logs" / "app.log"
    handler = LogFileHandler(path, retry_interval=0.05)
    logger = make_logger(handler)
    logger.info("while read-only")
    _wait(lambda: handler.state()["writing"] is False)
    assert "Read-only" in str(handler.state()["error"])
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True, capture_output=True, timeout=30)
    _wait(lambda: handler.state()["writing"] is True)
    logger.info("writable again")
    handler.flush()
    assert [r["message"] for r in _lines(path)] == ["while read-only", "writable again"]
    assert path.parent.stat().st_mode & 0o777 == 0o750
    assert capfd.readouterr().err.count("cannot write") == 1


# -- configure_logging(file=...) and harden(): wired in by the lead (see docs/logfiles.md) -------------------


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_configure_logging_file_writes_the_redacted_json_lines_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "api_requests.log"
    hk.configure_logging(
        file=path, rotate="daily", keep="30d", compress=True, stream=io.StringIO(), uvicorn=False
    )
    logging.getLogger("app").info("login for %s", "alice@example.com")
    files = [h for h in logging.getLogger().handlers if isinstance(h, LogFileHandler)]
    assert len(files) == 1 and files[0].policy.keep_seconds == 30 * 86400
    files[0].flush()
    assert _lines(path)[-1]["message"] == "login for [REDACTED:email]"


@pytest.mark.usefixtures("restore_root")
def test_configure_logging_again_replaces_and_closes_the_file_handler(tmp_path: Path) -> None:
    for name in ("a.log", "b.log"):
        hk.configure_logging(file=tmp_path / name, stream=io.StringIO(), uvicorn=False)
    files = [h for h in logging.getLogger().handlers if isinstance(h, LogFileHandler)]
    assert [h.path for h in files] == [str(tmp_path / "b.log")]


@pytest.mark.usefixtures("restore_root")
def test_harden_log_file_writes_the_access_log_and_warns_in_readiness(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    path = tmp_path / "api_requests.log"
    app = hk.harden(Starlette(), log_file={"file": str(path), "rotate": "daily", "keep": "30d"})
    with TestClient(app) as client:
        assert client.get("/missing").status_code == 404
        assert "log_file" in client.get("/healthz").json()["checks"]
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogFileHandler):
            handler.flush()  # the writer thread batches; a clean exit flushes through atexit
    assert any(r.get("status") == 404 for r in _lines(path))
