"""hardenkit.lock: FileLock, atomic_write, JsonState and `hardenkit lock`, with real processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import hardenkit.errors
import hardenkit.lock
from hardenkit.lock import (
    FileLock,
    Holder,
    JsonState,
    LockError,
    LockTimeout,
    StateCorrupted,
    StateError,
    atomic_write,
)

ROOT = Path(__file__).resolve().parents[2]
HOLDER = str(Path(__file__).with_name("lock_holder.py"))
WRITER = str(Path(__file__).with_name("lock_writer.py"))
COUNTER = str(ROOT / "examples" / "lock_counter.py")
BOTH_BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])


# -- helpers ----------------------------------------------------------------------------------------------


def start_holder(path: Path, *, soft: bool = False) -> subprocess.Popen[str]:
    """A real process holding the lock at ``path`` (it prints 'held' once it does)."""
    args = [sys.executable, HOLDER, str(path), *(["--soft"] if soft else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "held":
        proc.kill()
        proc.wait()
        raise AssertionError(f"holder did not take the lock: {line!r}")
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)  # reaped: its pid no longer exists


@pytest.fixture
def holders() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(path: Path, *, soft: bool = False) -> subprocess.Popen[str]:
        proc = start_holder(path, soft=soft)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            kill(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def held(lock: FileLock) -> bool:
    # A function, not the property, so that mypy does not narrow it for the rest of a test.
    return lock.is_locked


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".hktmp"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- import and public names ------------------------------------------------------------------------------


def test_import_loads_neither_web_stack_nor_anyio() -> None:
    code = (
        "import hardenkit.lock, sys\n"
        "bad = [m for m in ('starlette', 'limits', 'anyio') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exceptions_are_the_ones_of_hardenkit_errors() -> None:
    assert LockTimeout is hardenkit.errors.LockTimeout
    assert issubclass(LockTimeout, TimeoutError) and issubclass(LockTimeout, LockError)
    assert StateCorrupted is hardenkit.errors.StateCorrupted and issubclass(StateCorrupted, StateError)
    assert sorted(hardenkit.lock.__all__) == hardenkit.lock.__all__
    assert all(getattr(hardenkit.lock, name) is not None for name in hardenkit.lock.__all__)


# -- FileLock ---------------------------------------------------------------------------------------------


def test_holder_is_recorded_while_held_and_cleared_on_release(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock")
    assert lock.holder() is None
    before = time.time()
    with lock:
        assert held(lock)
        holder = lock.holder()
        assert holder is not None
        assert holder.pid == os.getpid()
        assert before - 1 <= holder.since <= time.time() + 1
        assert "this process" in holder.describe()
        assert holder.command
    assert not held(lock)
    assert lock.holder() is None
    assert (tmp_path / "a.lock").exists(), "a native lock file must never be deleted"


def test_timeout_names_the_holder_pid(tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    lock = FileLock(path, timeout=0.2)
    with pytest.raises(LockTimeout) as caught:
        lock.acquire()
    assert isinstance(caught.value, TimeoutError)
    assert f"pid {proc.pid}" in str(caught.value)
    assert "lock_holder.py" in str(caught.value)  # the holder's command
    assert caught.value.path == str(path)
    assert isinstance(caught.value.holder, Holder) and caught.value.holder.pid == proc.pid
    assert not held(lock)
    # A zero timeout is one attempt and fails the same way.
    with pytest.raises(LockTimeout, match=f"pid {proc.pid}"):
        lock.acquire(timeout=0)


def test_lock_held_by_a_killed_process_is_free(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    lock = FileLock(path, timeout=0)
    holder = lock.holder()
    assert holder is not None and holder.pid == proc.pid
    kill(proc)
    assert lock.holder() is None  # the record of a dead process does not count
    with lock:
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()


def test_waiter_gets_the_lock_when_the_holder_dies(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    timer = threading.Timer(0.2, proc.kill)
    timer.start()
    try:
        with FileLock(path, timeout=30) as lock:
            assert held(lock)
    finally:
        timer.cancel()


def test_soft_lock_of_a_dead_local_process_is_broken_with_a_log_line(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path, soft=True)
    lock = FileLock(path, soft=True, timeout=0.1)
    with pytest.raises(LockTimeout, match=f"pid {proc.pid}"):
        lock.acquire()  # alive: the soft lock holds
    kill(proc)
    assert path.exists(), "a killed soft holder leaves its marker behind"
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"), lock:
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
    stale = [r for r in caplog.records if "broke stale soft lock" in r.getMessage()]
    assert len(stale) == 1
    assert f"pid {proc.pid}" in stale[0].getMessage()
    assert getattr(stale[0], "stale_pid", None) == proc.pid
    assert not path.exists() and not (tmp_path / "a.lock.holder").exists()


def test_soft_lock_round_trip_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lock = FileLock(tmp_path / "s.lock", soft=True, timeout=1)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"):
        for _ in range(3):
            with lock:
                assert lock.holder() is not None
            assert lock.holder() is None
    assert caplog.records == []
    assert repr(lock).startswith("<hardenkit.lock.FileLock soft ")


def test_stale_soft_marker_without_holder_record_is_broken_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    path = tmp_path / "a.lock"
    pid = dead_pid()
    path.write_text(f"{pid}\n{socket.gethostname()}\n")  # filelock's marker format, no .holder beside it
    lock = FileLock(path, soft=True, timeout=1)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"), lock:
        pass
    assert [r.getMessage() for r in caplog.records] == [
        f"broke stale soft lock {path}: its holder is gone (pid {pid} on {socket.gethostname()})"
    ]


def test_stale_soft_marker_is_logged_by_the_attempt_that_breaks_it_even_when_that_attempt_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # filelock 4.1 (and 4.2 where names cannot be exchanged) breaks a stale marker in one attempt and lets a
    # later attempt create the new one; filelock 4.2 on Linux does both in one. Either way: one log line,
    # written by the first acquire call (the one that broke it), and the lock is then ours.
    import socket

    path = tmp_path / "a.lock"
    pid = dead_pid()
    path.write_text(f"{pid}\n{socket.gethostname()}\n")
    lock = FileLock(path, soft=True, timeout=0)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"):
        try:
            lock.acquire()
        except LockTimeout:  # filelock 4.1: the marker is gone but this attempt did not create ours
            assert not path.exists()
        assert [getattr(r, "stale_pid", None) for r in caplog.records] == [pid]
        for _ in range(3):
            if held(lock):
                break
            lock.acquire()  # the path is free now: one attempt suffices
        assert held(lock)
        lock.release()
    assert len(caplog.records) == 1


def test_soft_marker_of_a_live_local_process_is_neither_broken_nor_logged(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path, soft=True)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"):
        for _ in range(3):
            with pytest.raises(LockTimeout, match=f"pid {proc.pid}"):
                FileLock(path, soft=True, timeout=0).acquire()
    assert caplog.records == [] and path.exists()


def test_soft_marker_of_another_host_is_neither_broken_nor_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.lock"
    path.write_text(f"{dead_pid()}\nsome-other-host\n")  # dead here, but its pid means nothing on this host
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"), pytest.raises(LockTimeout):
        FileLock(path, soft=True, timeout=0.05).acquire()
    assert caplog.records == [] and path.exists()


def test_soft_marker_of_a_recycled_pid_is_broken_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The pid is alive, but the marker's start token is not that process's: the holder is gone and its pid
    # reused. filelock breaks such a marker, so it must be logged like any other stale one.
    import socket

    path = tmp_path / "a.lock"
    path.write_text(f"{os.getppid()}\n{socket.gethostname()}\n1\n")
    lock = FileLock(path, soft=True, timeout=1)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"), lock:
        assert held(lock)
    assert [getattr(r, "stale_pid", None) for r in caplog.records] == [os.getppid()]


def test_unreadable_soft_marker_times_out_with_an_unknown_holder(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    path.write_text("garbage")
    with pytest.raises(LockTimeout, match="unknown holder") as caught:
        FileLock(path, soft=True, timeout=0.05).acquire()
    assert caught.value.holder is None


def test_soft_holder_record_without_marker_means_free(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", soft=True)
    with lock:
        record = (tmp_path / "a.lock.holder").read_bytes()
    (tmp_path / "a.lock.holder").write_bytes(record)  # left behind, but the marker is gone
    assert lock.holder() is None


def test_soft_lock_whose_record_cannot_be_written_is_not_held(tmp_path: Path) -> None:
    (tmp_path / "a.lock.holder").mkdir()
    lock = FileLock(tmp_path / "a.lock", soft=True, timeout=0)
    with pytest.raises(LockError, match="cannot use lock file"):
        lock.acquire()
    assert not held(lock)
    assert not (tmp_path / "a.lock").exists()


def test_soft_release_tolerates_a_removed_holder_record(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", soft=True)
    lock.acquire()
    (tmp_path / "a.lock.holder").unlink()
    lock.release()
    assert not (tmp_path / "a.lock").exists()


def test_long_commands_are_shortened_in_the_record(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = subprocess.Popen(
        [sys.executable, HOLDER, str(path), "x" * 3000], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        holder = FileLock(path).holder()
        assert holder is not None and holder.pid == proc.pid
        assert holder.command.endswith("…") and len(holder.command) < 512
        assert len(path.read_bytes()) == 512
    finally:
        kill(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def test_record_head_shortens_a_long_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import hardenkit.lock.file as lock_file

    monkeypatch.setattr(sys, "orig_argv", ["python", "y" * 5000])
    monkeypatch.setattr(lock_file, "_IDENTITY", None)  # restored afterwards, with this process's real command
    record = lock_file._record()
    assert len(record) == 512
    holder = lock_file._parse_record(record)
    assert holder is not None and holder.command.startswith("python yyy") and holder.command.endswith("…")


def test_lock_properties(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=3)
    assert lock.path == str(tmp_path / "a.lock")
    assert lock.timeout == 3.0 and not lock.soft
    assert repr(lock) == f"<hardenkit.lock.FileLock {str(tmp_path / 'a.lock')!r} unlocked>"


def test_lock_is_not_reentrant_in_one_thread(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=5)
    with lock:
        with pytest.raises(LockError, match="not reentrant"):
            lock.acquire()
        assert held(lock)
    assert not held(lock)


def test_release_of_an_unheld_lock_raises(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="not held"):
        FileLock(tmp_path / "a.lock").release()


def test_threads_sharing_one_lock_exclude_each_other(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=30)
    counter = [0]
    inside = [0]
    overlaps = [0]

    def work() -> None:
        for _ in range(50):
            with lock:
                inside[0] += 1
                overlaps[0] += inside[0] > 1
                value = counter[0]
                time.sleep(0)  # let another thread run while we are inside
                counter[0] = value + 1
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert counter[0] == 200
    assert overlaps[0] == 0


def test_release_may_happen_on_another_thread(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=5)
    acquirer = threading.Thread(target=lock.acquire)
    acquirer.start()
    acquirer.join()
    assert held(lock)
    releaser = threading.Thread(target=lock.release)
    releaser.start()
    releaser.join()
    assert not held(lock)
    with lock:  # and it can be taken again
        pass


def test_two_lock_objects_on_one_path_exclude_each_other(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "a.lock")
    second = FileLock(tmp_path / "a.lock", timeout=0)
    with first:
        with pytest.raises(LockTimeout, match=f"pid {os.getpid()} .*this process"):
            second.acquire()
    with second:
        assert held(second)


def test_waiting_thread_times_out_on_the_in_process_gate(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=0.05)
    errors: list[BaseException] = []

    def contend() -> None:
        try:
            lock.acquire()
        except LockTimeout as exc:
            errors.append(exc)

    with lock:
        thread = threading.Thread(target=contend)
        thread.start()
        thread.join(timeout=10)
    assert len(errors) == 1 and f"pid {os.getpid()}" in str(errors[0])


def test_lock_directories_are_created(tmp_path: Path) -> None:
    with FileLock(tmp_path / "new" / "dir" / "a.lock"):
        assert (tmp_path / "new" / "dir" / "a.lock").exists()


def test_unusable_lock_path_is_a_lock_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LockError, match="cannot use lock file"):
        FileLock(blocker / "a.lock").acquire()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be"),
        ({"timeout": "5"}, "timeout must be"),
        ({"timeout": True}, "timeout must be"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": 60}, "poll_interval"),
    ],
)
def test_bad_options_are_configuration_errors(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(hardenkit.errors.ConfigurationError, match=message):
        FileLock(tmp_path / "a.lock", **kwargs)  # type: ignore[arg-type]


def test_bad_paths_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(hardenkit.errors.ConfigurationError, match="non-empty"):
        FileLock("")
    with pytest.raises(hardenkit.errors.ConfigurationError, match="is a directory"):
        FileLock(tmp_path)


def test_timeout_none_and_inf_wait_forever(tmp_path: Path) -> None:
    assert FileLock(tmp_path / "a.lock", timeout=None).timeout is None
    assert FileLock(tmp_path / "a.lock", timeout=float("inf")).timeout is None


def test_holder_ignores_unreadable_records(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    lock = FileLock(path)
    for content in ("not json", "[1, 2]", '{"pid": "1", "host": "h", "since": 1, "command": ""}'):
        path.write_text(content)
        assert lock.holder() is None
    path.write_text('{"pid": 1, "host": "elsewhere", "since": true, "command": ""}')
    assert lock.holder() is None
    path.write_text('{"pid": 1, "host": "elsewhere", "since": 1.5, "command": ""}')
    assert lock.holder() == Holder(pid=1, host="elsewhere", since=1.5, command="")  # another host: trusted


def test_lock_cannot_be_pickled(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(TypeError, match="create one in each process"):
        pickle.dumps(FileLock(tmp_path / "a.lock"))


# -- FileLock from async code -----------------------------------------------------------------------------


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_wait_keeps_the_loop_running_and_times_out(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    lock = FileLock(path, timeout=0.5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with pytest.raises(LockTimeout, match=f"pid {proc.pid}"):
            await lock.aacquire()
        tg.cancel_scope.cancel()
    # A blocked loop would have let the ticker run at most once or twice during the 0.5 s wait.
    assert ticks >= 5
    assert not held(lock)


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_wait_is_cancellable_and_leaves_nothing_held(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    lock = FileLock(path, timeout=None)
    with anyio.move_on_after(0.2) as scope:
        await lock.aacquire()
    assert scope.cancelled_caught
    assert not held(lock)
    kill(proc)
    with anyio.fail_after(10):
        async with lock:
            holder = lock.holder()
            assert holder is not None and holder.pid == os.getpid()
    assert not held(lock)


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_waiter_gets_the_lock_when_the_holder_dies(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    lock = FileLock(path, timeout=30)
    got_it = anyio.Event()

    async def waiter() -> None:
        async with lock:
            got_it.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.1)
            assert not got_it.is_set()
            proc.kill()
    assert got_it.is_set()


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_soft_lock_waits_and_breaks_a_dead_holder(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path, soft=True)
    lock = FileLock(path, soft=True, timeout=0.2)
    with pytest.raises(LockTimeout, match=f"pid {proc.pid}"):
        await lock.aacquire()
    kill(proc)
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"):
        async with lock:
            assert held(lock)
    assert not held(lock) and not path.exists()
    assert any(f"pid {proc.pid}" in r.getMessage() for r in caplog.records)


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_tasks_sharing_one_lock_exclude_each_other(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=30)
    counter = 0
    inside = 0
    overlaps = 0

    async def work() -> None:
        nonlocal counter, inside, overlaps
        for _ in range(20):
            async with lock:
                inside += 1
                overlaps += inside > 1
                value = counter
                await anyio.lowlevel.checkpoint()
                counter = value + 1
                inside -= 1

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(work)
    assert counter == 100
    assert overlaps == 0


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_reentry_raises_instead_of_deadlocking(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=5)
    async with lock:
        with pytest.raises(LockError, match="not reentrant"):
            await lock.aacquire()
    assert not held(lock)


@pytest.mark.anyio
async def test_async_gate_times_out_behind_another_task(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=0.05)
    async with lock:
        async with anyio.create_task_group() as tg:

            async def contend() -> None:
                with pytest.raises(LockTimeout, match="this process"):
                    await lock.aacquire()

            tg.start_soon(contend)


@pytest.mark.anyio
async def test_lock_taken_in_a_worker_thread_is_released_in_another(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "a.lock", timeout=5)
    await anyio.to_thread.run_sync(lock.acquire)
    assert held(lock)
    released = threading.Thread(target=lock.release)
    released.start()
    released.join()
    assert not held(lock)


# -- atomic_write -----------------------------------------------------------------------------------------


def test_atomic_write_text_bytes_and_context_managers(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    atomic_write(target, "héllo", encoding="latin-1", fsync=False)
    assert target.read_bytes() == "héllo".encode("latin-1")
    atomic_write(str(target), b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic_write(target, bytearray(b"ba"))
    assert target.read_bytes() == b"ba"
    with atomic_write(target) as text_file:
        text_file.write("line 1\n")
        text_file.write("line 2\n")
        assert target.read_bytes() == b"ba", "nothing is visible before the block ends"
    assert target.read_text() == "line 1\nline 2\n"
    with atomic_write(target, binary=True) as binary_file:
        binary_file.write(b"\xff")
    assert target.read_bytes() == b"\xff"
    assert temp_files(tmp_path) == []


def test_atomic_write_rejects_other_data_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        atomic_write(tmp_path / "f", 42)  # type: ignore[call-overload]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o444])
def test_atomic_write_keeps_permissions_of_an_existing_file(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(mode)
    atomic_write(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text() == "new"
    with atomic_write(target) as fileobj:
        fileobj.write("newer")
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_atomic_write_new_file_gets_the_umask_default(tmp_path: Path) -> None:
    code = (
        "import os, stat, sys\n"
        "from hardenkit.lock import atomic_write\n"
        "os.umask(0o027)\n"
        "atomic_write(sys.argv[1], 'x')\n"
        "print(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "f")], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == oct(0o640)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_atomic_write_keeps_the_owner_when_allowed(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    os.chown(target, 4321, 4321)
    target.chmod(0o2640)  # set-gid survives because chmod runs after chown
    atomic_write(target, "new")
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (4321, 4321)
    assert stat.S_IMODE(info.st_mode) == 0o2640


def test_error_in_the_block_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as fileobj:
        fileobj.write("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert temp_files(tmp_path) == []


def test_unknown_encoding_fails_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    with pytest.raises(LookupError), atomic_write(target, encoding="no-such-codec"):
        pass
    assert target.read_text() == "old"
    assert temp_files(tmp_path) == []


def test_failed_replace_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(target, "x")
    assert temp_files(tmp_path) == []


def test_full_disk_leaves_the_target_whole_and_no_temp_file(tmp_path: Path) -> None:
    # A real write failure: the process may not write files larger than 64 KiB (RLIMIT_FSIZE).
    target = tmp_path / "f"
    target.write_text("old")
    code = (
        "import resource, signal, sys\n"
        "from hardenkit.lock import atomic_write\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "try:\n"
        "    atomic_write(sys.argv[1], 'x' * 1_000_000)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
        "else:\n"
        "    print('written')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out != "written"
    assert target.read_text() == "old"
    assert temp_files(tmp_path) == []


def test_atomic_write_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    atomic_write(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, "v1")
    from hardenkit.lock.atomic import temp_path_for

    mine = Path(temp_path_for(str(target)))
    head, pid_and_rest = mine.name.rsplit("-", 1)
    rest = pid_and_rest.split(".", 1)[1]
    dead = tmp_path / f"{head}-{dead_pid()}.{rest}"
    live = tmp_path / f"{head}-{os.getppid()}.{rest}"
    own = tmp_path / mine.name  # another thread of this process may be writing it
    other_host = tmp_path / f".f.00000000-{dead_pid()}.{rest}"
    not_a_pid = tmp_path / f"{head}-abc.{rest}"
    for path in (dead, live, own, other_host, not_a_pid):
        path.write_text("leftover")
    atomic_write(target, "v2")
    assert not dead.exists()
    assert live.exists() and own.exists() and other_host.exists() and not_a_pid.exists()


def test_killed_writer_never_leaves_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    last = 0
    for kill_number in range(20):
        proc = subprocess.Popen([sys.executable, WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "writing"
            time.sleep(0.002 * (kill_number % 10))  # kill at varying points of the write cycle
        finally:
            proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
        data = json.loads(path.read_text())  # the main file itself parses: no recovery needed
        assert data["check"] == str(data["n"]) * 2000, "a mixed or torn version"
        assert data["n"] > last, "an old version came back"
        last = data["n"]
    # Temp files of the killed writers go away with the next successful write.
    with JsonState(path, fsync=False).update() as data:
        data["n"] += 1
    assert temp_files(tmp_path) == []
    assert JsonState(path).read()["n"] == last + 1


# -- JsonState --------------------------------------------------------------------------------------------


def test_eight_processes_increment_exactly(tmp_path: Path) -> None:
    # fsync off: the test is about mutual exclusion and atomic replacement between processes, which fsync
    # does not change; it only adds disk latency (power-loss durability cannot be tested here anyway).
    path = tmp_path / "counter.json"
    procs = [
        subprocess.Popen(
            [sys.executable, COUNTER, str(path), "--times", "250", "--no-fsync"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert 250 <= int(out) <= 2000
    assert json.loads(path.read_text()) == {"count": 2000}
    assert [json.loads(Path(f"{path}.{n}").read_text())["count"] for n in (1, 2, 3)] == [1999, 1998, 1997]
    assert temp_files(tmp_path) == []


def test_missing_file_reads_as_the_default(tmp_path: Path) -> None:
    assert JsonState(tmp_path / "s.json").read() == {}
    assert JsonState(tmp_path / "s.json", default=list).read() == []
    assert not (tmp_path / "s.json").exists()


def test_update_writes_and_rotates_backups(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", backups=3)
    for i in range(1, 6):
        with state.update() as data:
            data["i"] = i
    assert state.read() == {"i": 5}
    assert [json.loads(Path(state.backup_path(n)).read_text()) for n in (1, 2, 3)] == [
        {"i": 4},
        {"i": 3},
        {"i": 2},
    ]
    assert not Path(state.backup_path(4)).exists()
    assert temp_files(tmp_path) == []


def test_no_backups_when_asked(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", backups=0)
    for i in range(3):
        with state.update() as data:
            data["i"] = i
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock"]


def test_exception_in_the_block_leaves_the_file(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json")
    with state.update() as data:
        data["a"] = 1
    before = Path(state.path).read_bytes()
    with pytest.raises(KeyError), state.update() as data:
        data["a"] = 2
        raise KeyError("nope")
    assert Path(state.path).read_bytes() == before
    assert not held(state.lock)


@pytest.mark.parametrize("bad", [object(), float("nan"), {1j: 1}])
def test_value_json_cannot_encode_fails_and_leaves_the_file(tmp_path: Path, bad: object) -> None:
    state = JsonState(tmp_path / "s.json")
    with state.update() as data:
        data["a"] = 1
    with state.update() as data:
        data["a"] = 2
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StateError, match="not JSON"), state.update() as data:
        data["bad"] = bad
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    assert state.read() == {"a": 2}


def test_read_is_a_snapshot_while_an_update_runs(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json")
    with state.update() as data:
        data["v"] = 1
    with state.update() as data:
        data["v"] = 2
        assert state.read() == {"v": 1}  # read() does not wait for the lock and sees the whole old version
    assert state.read() == {"v": 2}


def _make_history(state: JsonState, count: int) -> None:
    for i in range(1, count + 1):
        with state.update() as data:
            data["v"] = i


def test_corrupt_file_is_recovered_from_the_newest_valid_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = JsonState(tmp_path / "s.json")
    _make_history(state, 4)  # main v=4, .1 v=3, .2 v=2, .3 v=1
    Path(state.path).write_text('{"v": 4')  # truncated
    Path(state.backup_path(1)).write_text("")  # and the newest backup is empty
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"):
        assert state.read() == {"v": 2}
    assert state.read() == {"v": 2}  # the main file itself was repaired
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "restored it from backup" in warnings[0] and "s.json.2" in warnings[0]
    kept = list(tmp_path.glob("s.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"v": 4'
    with state.update() as data:  # and updates go on from there
        data["v"] += 10
    assert state.read() == {"v": 12}


def test_update_recovers_a_corrupt_file_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = JsonState(tmp_path / "s.json")
    _make_history(state, 2)
    Path(state.path).write_bytes(b"\xff\xfe not json")
    with caplog.at_level(logging.WARNING, logger="hardenkit.lock"), state.update() as data:
        assert data == {"v": 1}
        data["v"] = 100
    assert state.read() == {"v": 100}
    assert any("restored it from backup" in r.getMessage() for r in caplog.records)


def test_corrupt_file_without_valid_backup_raises_and_moves_nothing(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", backups=2)
    _make_history(state, 2)
    for path in (state.path, state.backup_path(1)):
        Path(path).write_text("{")
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StateCorrupted, match="no valid backup"):
        state.read()
    with pytest.raises(StateCorrupted), state.update():
        pass
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_state_path_that_is_a_directory_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "s.json").mkdir()
    with pytest.raises(StateError, match="is a directory"):
        JsonState(tmp_path / "s.json").read()


def test_update_times_out_naming_the_holder(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = holders(tmp_path / "s.json.lock")
    state = JsonState(tmp_path / "s.json", lock_timeout=0.1)
    with pytest.raises(LockTimeout, match=f"pid {proc.pid}"), state.update():
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default": {}}, "default must be a callable"),
        ({"backups": -1}, "backups must be"),
        ({"backups": True}, "backups must be"),
        ({"lock_timeout": -2}, "lock_timeout must be"),
    ],
)
def test_bad_state_options_are_configuration_errors(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(hardenkit.errors.ConfigurationError, match=message):
        JsonState(tmp_path / "s.json", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(hardenkit.errors.ConfigurationError, match="non-empty"):
        JsonState("")


def test_soft_locked_state(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", soft_lock=True)
    _make_history(state, 2)
    assert state.lock.soft and state.read() == {"v": 2}
    assert repr(state) == f"<hardenkit.lock.JsonState {str(tmp_path / 's.json')!r}>"


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_aupdate_from_concurrent_tasks(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", fsync=False)

    async def bump() -> None:
        for _ in range(10):
            async with state.aupdate() as data:
                data["n"] = data.get("n", 0) + 1

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(bump)
    assert await state.aread() == {"n": 40}


@pytest.mark.anyio
async def test_aupdate_error_in_block_leaves_file_and_releases(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json")
    async with state.aupdate() as data:
        data["a"] = 1
    with pytest.raises(ValueError, match="stop"):
        async with state.aupdate() as data:
            data["a"] = 2
            raise ValueError("stop")
    assert state.read() == {"a": 1}
    assert not held(state.lock)


# -- the `hardenkit lock` command -------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hardenkit", "lock", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_cli_runs_the_command_holding_the_lock_and_returns_its_status(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    probe = (
        "import os, sys\n"
        "from hardenkit.lock import FileLock, LockTimeout\n"
        "try:\n"
        "    FileLock(sys.argv[1], timeout=0).acquire()\n"
        "except LockTimeout as exc:\n"
        "    assert exc.holder.pid == os.getppid(), (exc.holder, os.getppid())\n"
        "    sys.exit(3)\n"
    )
    result = run_cli(str(path), "--", sys.executable, "-c", probe, str(path))
    assert result.returncode == 3, result.stderr
    with FileLock(path, timeout=0):  # released afterwards
        pass


def test_cli_timeout_exits_75_naming_the_holder_pid(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "a.lock"
    proc = holders(path)
    result = run_cli(str(path), "--timeout", "0.2", "--", sys.executable, "-c", "print('ran')")
    assert result.returncode == 75
    assert f"pid {proc.pid}" in result.stderr
    assert "ran" not in result.stdout


def test_cli_soft_lock(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "s.lock"), "--soft", "--", sys.executable, "-c", "print('ran')")
    assert result.returncode == 0 and result.stdout.strip() == "ran"
    assert not (tmp_path / "s.lock").exists()


def test_cli_forwards_sigterm_to_the_command(tmp_path: Path) -> None:
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hardenkit",
            "lock",
            str(tmp_path / "a.lock"),
            "--",
            sys.executable,
            "-c",
            child,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_cli_reports_a_signal_death_like_a_shell(tmp_path: Path) -> None:
    result = run_cli(
        str(tmp_path / "a.lock"), "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"
    )
    assert result.returncode == 128 + 9


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["{d}/x.lock", "true"], 2, "put -- before the command"),
        (["{d}/x.lock", "--"], 2, "no command given"),
        (["{d}/x.lock", "--timeout", "-1", "--", "true"], 2, "--timeout must be"),
        (["{d}/x.lock", "--timeout", "soon", "--", "true"], 2, "invalid float"),
        (["{d}/x.lock", "--", "hardenkit-no-such-command"], 127, "command not found"),
        (["{d}/x.lock", "--", "{d}/not-executable"], 126, "not executable"),
        (["{d}/sub/x.lock", "--", "true"], 73, "cannot use lock file"),
    ],
)
def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], status: int, message: str
) -> None:
    from hardenkit.cli.lock import main as _cli_main

    (tmp_path / "not-executable").write_text("")
    (tmp_path / "sub").write_text("a file where a directory should be")
    assert _cli_main([arg.format(d=tmp_path) for arg in args]) == status
    assert message in capsys.readouterr().err


def test_cli_in_process_runs_the_command_and_restores_signal_handlers(
    tmp_path: Path, holders: Callable[..., subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from hardenkit.cli.lock import main as _cli_main

    before = signal.getsignal(signal.SIGTERM)
    path = str(tmp_path / "a.lock")
    assert _cli_main([path, "--timeout", "inf", "--", sys.executable, "-c", "raise SystemExit(5)"]) == 5
    assert signal.getsignal(signal.SIGTERM) is before
    assert not held(FileLock(path))
    proc = holders(Path(path))
    assert _cli_main([path, "--timeout", "0", "--", "true"]) == 75
    assert f"pid {proc.pid}" in capsys.readouterr().err


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    from hardenkit.cli.lock import main as _cli_main

    assert _cli_main(["--help"]) == 0
    assert "-- CMD" in capsys.readouterr().out
    assert run_cli("--help").returncode == 0
