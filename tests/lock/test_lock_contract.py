"""Acceptance of issue 5 read sentence by sentence: hardenkit.lock as a user who read only the issue uses it.

Black-box: public names only (``hardenkit.lock``, the ``hardenkit`` console script), real processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from hardenkit.lock import FileLock, JsonState, LockTimeout, atomic_write

BOTH_BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
HARDENKIT = str(Path(sys.executable).with_name("hardenkit"))

# A process that takes a lock, says so, and holds it until killed (at most 60 s).
_HOLD = """
import sys, time
from hardenkit.lock import FileLock
lock = FileLock(sys.argv[1], soft=sys.argv[2] == "soft", timeout=30)
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


class Holders:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, path: Path, *, soft: bool = False) -> subprocess.Popen[str]:
        args = [sys.executable, "-c", _HOLD, str(path), "soft" if soft else "os"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        return proc

    def kill(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def holders() -> Iterator[Holders]:
    h = Holders()
    yield h
    for proc in h.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def held(lock: FileLock) -> bool:
    return lock.is_locked  # a call, so that mypy does not narrow the property for the rest of a test


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# -- "must not import starlette or limits" -----------------------------------------------------------------


def test_python_c_import_hardenkit_lock_loads_neither_starlette_nor_limits() -> None:
    code = (
        "import sys, hardenkit.lock; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'limits')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- FileLock ------------------------------------------------------------------------------------------------


def test_default_timeout_is_ten_seconds_and_timeout_is_a_timeout_error(tmp_path: Path) -> None:
    assert FileLock(tmp_path / "a.lock").timeout == 10.0
    assert issubclass(LockTimeout, TimeoutError)


def test_with_lock_records_the_holder_and_lock_file_survives(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    lock = FileLock(path)
    before = time.time()
    with lock as entered:
        assert entered is lock
        holder = lock.holder()
        assert holder is not None
        assert holder.pid == os.getpid()
        assert holder.host == socket.gethostname()
        assert before - 5 <= holder.since <= time.time() + 5
        assert holder.start_time == holder.since  # the words work too
        assert holder.command  # the command line of this process
        assert "pytest" in holder.command or sys.executable in holder.command
    assert lock.holder() is None
    assert path.exists()  # "Unix lock files are not deleted while in use" (nor after)


def test_timeout_names_the_holder_pid_and_since_when(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "busy.lock"
    proc = holders.start(path)
    lock = FileLock(path, timeout=0.2)
    holder = lock.holder()
    assert holder is not None and holder.pid == proc.pid
    with pytest.raises(LockTimeout) as info:
        with lock:
            pass  # pragma: no cover - never reached
    assert isinstance(info.value, TimeoutError)
    message = str(info.value)
    assert str(proc.pid) in message
    assert "since" in message
    assert not lock.is_locked


def test_timeout_zero_is_one_attempt_and_acquire_takes_a_timeout(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "busy.lock"
    holders.start(path)
    with pytest.raises(LockTimeout):
        FileLock(path, timeout=0).acquire()
    with pytest.raises(TimeoutError):
        FileLock(path).acquire(timeout=0.05)


def test_lock_held_by_a_killed_process_is_free_for_the_next(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "k.lock"
    for _ in range(2):
        proc = holders.start(path)
        holders.kill(proc)
    lock = FileLock(path, timeout=5)
    assert lock.holder() is None  # the dead holder's record does not count
    with lock:
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()


def test_soft_lock_of_a_dead_local_process_is_broken_with_a_log_line(
    tmp_path: Path, holders: Holders, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nfs.lock"
    proc = holders.start(path, soft=True)
    with pytest.raises(LockTimeout, match=str(proc.pid)):
        FileLock(path, soft=True, timeout=0.1).acquire()
    holders.kill(proc)
    caplog.set_level(logging.DEBUG)
    lock = FileLock(path, soft=True, timeout=5)
    with lock:
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
    broken = [r for r in caplog.records if str(proc.pid) in r.getMessage()]
    assert broken, caplog.text
    assert broken[0].levelno >= logging.WARNING
    assert "stale" in broken[0].getMessage() or "broke" in broken[0].getMessage()


def test_soft_lock_excludes_another_process_and_holder_works(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "soft.lock"
    proc = holders.start(path, soft=True)
    lock = FileLock(path, soft=True, timeout=0.1)
    holder = lock.holder()
    assert holder is not None and holder.pid == proc.pid
    with pytest.raises(LockTimeout):
        lock.acquire()


def test_threads_using_one_lock_exclude_each_other(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "t.lock", timeout=30)
    inside = 0
    most = 0
    errors: list[BaseException] = []

    def work() -> None:
        nonlocal inside, most
        try:
            for _ in range(20):
                with lock:
                    inside += 1
                    most = max(most, inside)
                    time.sleep(0.0005)
                    inside -= 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert most == 1


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_acquire_and_release_on_different_anyio_worker_threads(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "w.lock", timeout=5)
    await anyio.to_thread.run_sync(lock.acquire)
    assert held(lock)
    await anyio.to_thread.run_sync(lock.release)
    assert not held(lock)
    async with lock:  # and it can be taken again afterwards
        pass


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_tasks_taking_the_lock_in_reused_worker_threads_wait_for_each_other(tmp_path: Path) -> None:
    # One worker thread at a time: task B's acquire runs on the thread where task A's acquire ran, while A
    # still holds the lock. B must wait for A (not be refused as a "reentry", not get the lock too).
    lock = FileLock(tmp_path / "pool.lock", timeout=10)
    limiter = anyio.CapacityLimiter(1)
    threads: list[int] = []
    events: list[str] = []

    def acquire() -> None:
        threads.append(threading.get_ident())
        lock.acquire()

    async def user(name: str) -> None:
        await anyio.to_thread.run_sync(acquire, limiter=limiter)
        events.append(f"{name} in")
        await anyio.sleep(0.1)
        events.append(f"{name} out")
        lock.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(user, "a")
        await anyio.sleep(0.05)
        tg.start_soon(user, "b")
    assert events == ["a in", "a out", "b in", "b out"]
    assert not lock.is_locked


def test_reentry_from_the_same_thread_fails_fast_instead_of_deadlocking(tmp_path: Path) -> None:
    # The docs say FileLock is not reentrant and that a reentry raises at once (no 10 s wait).
    from hardenkit.lock import LockError

    lock = FileLock(tmp_path / "re.lock", timeout=None)
    with lock:
        with pytest.raises(LockError, match="not reentrant"):
            lock.acquire()
        assert lock.is_locked
    with lock:  # usable again after the refused reentry
        pass


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_wait_does_not_block_the_loop_and_is_cancellable(
    tmp_path: Path, holders: Holders
) -> None:
    path = tmp_path / "a.lock"
    proc = holders.start(path)
    lock = FileLock(path, timeout=30)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.move_on_after(0.5) as scope:
            async with lock:
                pytest.fail("took a lock another process holds")  # pragma: no cover
        assert scope.cancelled_caught
        assert ticks >= 5  # the ticker ran while we waited
        tg.cancel_scope.cancel()
    assert not lock.is_locked

    # A short timeout gives LockTimeout naming the holder, under both backends.
    with pytest.raises(LockTimeout, match=str(proc.pid)):
        await lock.aacquire(timeout=0.1)

    # Once the holder is gone, the async wait gets the lock.
    holders.kill(proc)
    with anyio.fail_after(10):
        async with lock:
            holder = lock.holder()
            assert holder is not None and holder.pid == os.getpid()


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_async_waiter_gets_the_lock_when_another_task_releases(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "tasks.lock", timeout=10)
    order: list[str] = []

    async def second() -> None:
        async with lock:
            order.append("second")

    async with anyio.create_task_group() as tg:
        async with lock:
            tg.start_soon(second)
            await anyio.sleep(0.05)
            order.append("first")
    assert order == ["first", "second"]


# -- atomic_write -------------------------------------------------------------------------------------------


def test_atomic_write_as_a_function(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    assert atomic_write(target, "héllo\n") is None
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(str(target), "latin é", encoding="latin-1")
    assert target.read_bytes() == "latin é".encode("latin-1")
    atomic_write(target, b"\x00\xff", binary=True)
    assert target.read_bytes() == b"\x00\xff"
    atomic_write(target, "no fsync", fsync=False)
    assert target.read_text() == "no fsync"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_write_as_a_context_manager(tmp_path: Path) -> None:
    target = tmp_path / "cm.txt"
    with atomic_write(target) as f:
        f.write("one ")
        f.write("two")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "one two"
    with atomic_write(target, binary=True) as b:
        b.write(b"bin")
    assert target.read_bytes() == b"bin"
    assert leftovers(tmp_path, {"cm.txt"}) == []


def test_atomic_write_error_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half of the new")
            raise RuntimeError("boom")
    with pytest.raises(TypeError):
        with atomic_write(target, binary=True) as b:
            b.write("text into a binary file")  # type: ignore[call-overload]
    assert target.read_text() == "old"
    assert leftovers(tmp_path, {"keep.txt"}) == []


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_atomic_write_keeps_permissions_of_an_existing_file(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "perm.txt"
    target.write_text("x")
    os.chmod(target, mode)
    atomic_write(target, "y")
    assert target.stat().st_mode & 0o7777 == mode
    with atomic_write(target) as f:
        f.write("z")
    assert target.stat().st_mode & 0o7777 == mode
    assert target.read_text() == "z"


# -- JsonState ------------------------------------------------------------------------------------------


def test_json_state_defaults_update_and_read(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json")
    assert state.read() == {}
    with state.update() as data:
        data["n"] = 1
    assert state.read() == {"n": 1}
    assert json.loads((tmp_path / "s.json").read_text()) == {"n": 1}
    snapshot = state.read()
    snapshot["n"] = 99  # a snapshot is a copy: changing it changes nothing
    assert state.read() == {"n": 1}

    listed = JsonState(tmp_path / "l.json", default=list)
    assert listed.read() == []
    with listed.update() as items:
        items.append("a")
    assert listed.read() == ["a"]


def test_json_state_keeps_at_most_backups_old_versions(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json", backups=3)
    for i in range(6):
        with state.update() as data:
            data["i"] = i
    versions = []
    for p in tmp_path.iterdir():
        if p.name.startswith("s.json.") and not p.name.endswith(".lock"):
            versions.append(json.loads(p.read_text())["i"])
    assert sorted(versions) == [2, 3, 4]
    assert state.read() == {"i": 5}


def test_exception_in_the_update_block_writes_nothing(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "s.json")
    with state.update() as data:
        data["n"] = 1
    with pytest.raises(KeyError):
        with state.update() as data:
            data["n"] = 2
            raise KeyError("stop")
    assert state.read() == {"n": 1}


@pytest.mark.parametrize("bad", [object(), float("nan"), {1j: 1}, {1, 2}])
def test_value_json_cannot_encode_fails_and_leaves_the_file(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "s.json"
    state = JsonState(path)
    with state.update() as data:
        data["ok"] = True
    before = path.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        with state.update() as data:
            data["bad"] = bad
    assert path.read_bytes() == before
    assert state.read() == {"ok": True}
    # An experienced user catches what json.dumps raises: TypeError for objects it does not know.
    if not isinstance(bad, float):
        with pytest.raises(TypeError):
            with state.update() as data:
                data["bad"] = bad
    assert path.read_bytes() == before
    with state.update() as data:  # the lock was released: the next update works
        data["after"] = 1
    assert state.read() == {"ok": True, "after": 1}


@pytest.mark.parametrize("damage", [b"", b'{"n": ', b"\x00\x00\x00", b"not json"])
def test_corrupt_or_truncated_file_is_recovered_from_the_newest_valid_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: bytes
) -> None:
    path = tmp_path / "s.json"
    state = JsonState(path)
    for n in (1, 2, 3):
        with state.update() as data:
            data["n"] = n
    path.write_bytes(damage)
    caplog.set_level(logging.WARNING)
    assert state.read() == {"n": 2}
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    # the bad file is kept aside
    aside = [p for p in tmp_path.iterdir() if p.is_file() and p.read_bytes() == damage and p != path]
    assert aside, sorted(p.name for p in tmp_path.iterdir())
    with state.update() as data:
        data["n"] += 10
    assert state.read() == {"n": 12}


def test_truncated_file_with_a_corrupt_newest_backup_uses_the_next_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.json"
    state = JsonState(path)
    for n in (1, 2, 3, 4):
        with state.update() as data:
            data["n"] = n
    path.write_text('{"n"')
    newest = [
        p for p in tmp_path.iterdir() if p.name.startswith("s.json.") and p.read_text() == '{\n  "n": 3\n}\n'
    ]
    assert len(newest) == 1
    newest[0].write_text("garbage")
    caplog.set_level(logging.WARNING)
    with state.update() as data:
        assert data == {"n": 2}


@BOTH_BACKENDS
@pytest.mark.anyio
async def test_aupdate_from_async_code(tmp_path: Path) -> None:
    state = JsonState(tmp_path / "a.json")

    async def bump() -> None:
        for _ in range(5):
            async with state.aupdate() as data:
                data["n"] = data.get("n", 0) + 1

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(bump)
    assert state.read() == {"n": 20}


def test_update_waits_at_most_lock_timeout(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "s.json"
    state = JsonState(path, lock_timeout=0.2)
    proc = holders.start(Path(state.lock.path))
    with pytest.raises(LockTimeout, match=str(proc.pid)):
        with state.update():
            pass  # pragma: no cover - never reached
    assert state.read() == {}  # reading never waits for the lock


_INCREMENT = """
import sys
from hardenkit.lock import JsonState
state = JsonState(sys.argv[1], lock_timeout=120)
for _ in range(int(sys.argv[2])):
    with state.update() as data:
        data["count"] = data.get("count", 0) + 1
"""


def test_eight_processes_times_250_increments_is_exactly_2000(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    procs = [subprocess.Popen([sys.executable, "-c", _INCREMENT, str(path), "250"]) for _ in range(8)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    assert JsonState(path).read() == {"count": 2000}
    assert json.loads(path.read_text()) == {"count": 2000}


_WRITE_FOREVER = """
import sys
from hardenkit.lock import JsonState
state = JsonState(sys.argv[1])
first = True
while True:
    with state.update() as data:
        data["n"] = data.get("n", 0) + 1
        data["pad"] = str(data["n"]) * 5000
    if first:
        print("writing", flush=True)
        first = False
"""


def test_sigkill_while_writing_never_leaves_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    last = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"writing"
        time.sleep(0.02)  # let it be somewhere in a write, not at a timing assertion
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        value = json.loads(path.read_bytes())  # parses after every kill
        assert value["pad"] == str(value["n"]) * 5000  # one whole version, old or new
        assert value["n"] >= last
        last = value["n"]
    state = JsonState(path)
    with state.update() as data:
        data["n"] += 1
    names = {"w.json", "w.json.lock"} | {f"w.json.{i}" for i in (1, 2, 3)}
    assert leftovers(tmp_path, names) == []  # no temp files pile up after the next write


# -- `hardenkit lock PATH [--timeout S] -- CMD ARGS...` -----------------------------------------------------


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HARDENKIT, "lock", *args], capture_output=True, text=True, timeout=timeout)


def test_cli_runs_the_command_holding_the_lock_and_exits_with_its_status(tmp_path: Path) -> None:
    path = tmp_path / "cli.lock"
    probe = (
        "import sys; from hardenkit.lock import FileLock; "
        "h = FileLock(sys.argv[1]).holder(); print(h.pid if h else None); sys.exit(int(sys.argv[2]))"
    )
    done = run_cli(str(path), "--", sys.executable, "-c", probe, str(path), "3")
    assert done.returncode == 3, done.stderr
    holder_pid = done.stdout.strip()
    assert holder_pid.isdigit()  # the lock was held (by the CLI) while the command ran
    assert run_cli(str(path), "--timeout", "5", "--", sys.executable, "-c", "pass").returncode == 0
    assert run_cli("--timeout=5", str(path), "--", sys.executable, "-c", "print('x')").stdout == "x\n"
    assert FileLock(path).holder() is None  # released afterwards


def test_cli_timeout_exits_75_naming_the_holder(tmp_path: Path, holders: Holders) -> None:
    path = tmp_path / "cli.lock"
    proc = holders.start(path)
    marker = tmp_path / "ran"
    done = run_cli(
        str(path), "--timeout", "0.2", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"
    )
    assert done.returncode == 75
    assert str(proc.pid) in done.stderr
    assert not marker.exists()  # the command did not run


def test_cli_python_dash_m_works_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hardenkit",
            "lock",
            str(tmp_path / "m.lock"),
            "--",
            sys.executable,
            "-c",
            "exit(4)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr


def test_cli_waiting_behind_another_cli_names_that_cli_process(tmp_path: Path) -> None:
    path = tmp_path / "two.lock"
    ready = tmp_path / "ready"
    hold = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(30)"
    first = subprocess.Popen([HARDENKIT, "lock", str(path), "--", sys.executable, "-c", hold])
    try:
        for _ in range(600):  # bounded: at most ~30 s
            if ready.exists():
                break
            time.sleep(0.05)
        assert ready.exists()
        done = run_cli(str(path), "--timeout", "0", "--", sys.executable, "-c", "pass")
        assert done.returncode == 75
        assert f"pid {first.pid}" in done.stderr
        assert "hardenkit" in done.stderr  # the holder's command line
    finally:
        first.send_signal(signal.SIGTERM)  # forwarded to the command; the CLI exits with its status
        assert first.wait(timeout=30) == 128 + signal.SIGTERM
    assert run_cli(str(path), "--timeout", "0", "--", sys.executable, "-c", "pass").returncode == 0
