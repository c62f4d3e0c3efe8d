"""Issue 12, files part: hardenkit.lock under attack, with real processes, real SIGKILLs and real links.

5. a lock never writes into a file it did not create (the flock(1) idiom of locking a script);
6. ``hardenkit lock`` keeps the lock held until the command ends, even when the wrapper is SIGKILLed;
7. ``atomic_write`` does not follow a symlink planted by another user in a sticky shared directory;
8. ``JsonState`` on a symlinked path keeps backups that are copies of the data.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardenkit.lock import FileLock, JsonState, LockError, LockTimeout, atomic_write

HARDENKIT = [sys.executable, "-m", "hardenkit"]
HOLDER = str(Path(__file__).with_name("lock_holder.py"))
NOBODY = 65534
STRANGER = 65533  # a second unprivileged account, for links planted by "someone else" than the writer
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="links owned by another user need root (os.lchown)")

SCRIPT = b'#!/bin/sh\n# nightly backup\necho "backup ran"\n'


# -- helpers ----------------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARDENKIT, "lock", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped yet counts as gone: it runs nothing)."""
    if not os.path.isdir("/proc"):  # pragma: no cover - no procfs: a zombie counts as alive there
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fileobj:
            state = fileobj.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in (b"Z", b"X")


def wait_for(condition: object, what: str, *, seconds: float = 20) -> None:
    assert callable(condition)
    for _ in range(int(seconds / 0.05)):  # bounded
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_pid(pid: int) -> None:
    if not process_gone(pid):
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: process_gone(pid), f"pid {pid} to exit")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A fresh directory tree under /tmp that other accounts can traverse, with a sticky ``shared/`` (1777)."""
    base = Path(tempfile.mkdtemp(prefix="hk-sticky-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "shared").mkdir()
        (base / "shared").chmod(0o1777)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def plant_link(link: Path, target: Path | str, *, owner: int) -> None:
    link.symlink_to(target)
    os.lchown(link, owner, owner)


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".hktmp"))


# -- 5. a lock never writes into a file it did not create -------------------------------------------------


def test_lock_on_an_existing_file_keeps_its_bytes_and_records_the_holder_beside_it(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    script.chmod(0o755)
    before = os.stat(script)
    lock = FileLock(script)
    with lock:
        assert script.read_bytes() == SCRIPT  # not even while held
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
        assert (tmp_path / "backup.sh.holder").exists()
    assert script.read_bytes() == SCRIPT
    after = os.stat(script)
    assert (after.st_size, after.st_mode, after.st_mtime_ns) == (
        before.st_size,
        before.st_mode,
        before.st_mtime_ns,
    )
    assert lock.holder() is None
    assert not (tmp_path / "backup.sh.holder").exists()


def test_lock_file_the_lock_created_still_holds_its_own_record(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    lock = FileLock(path)
    with lock:
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
        assert b'"pid"' in path.read_bytes()
        assert not (tmp_path / "job.lock.holder").exists()
    with lock:  # the second run finds the (empty) lock file it left: still its own
        assert b'"pid"' in path.read_bytes()
    assert path.read_bytes() == b""


def test_cli_locking_the_script_it_runs_keeps_the_script_and_runs_it(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    script.chmod(0o755)
    result = run_cli("./backup.sh", "--", "./backup.sh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "backup ran\n"
    assert script.read_bytes() == SCRIPT
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o755
    assert not (tmp_path / "backup.sh.holder").exists()


def test_waiter_on_an_existing_file_names_the_holder_and_a_killed_holder_changes_nothing(
    tmp_path: Path,
) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    proc = subprocess.Popen([sys.executable, HOLDER, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout) as caught:
            FileLock(script, timeout=0.1).acquire()
        assert caught.value.holder is not None and caught.value.holder.pid == proc.pid
        result = run_cli(str(script), "--timeout", "0", "--", "true")
        assert result.returncode == 75 and f"pid {proc.pid}" in result.stderr
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert script.read_bytes() == SCRIPT
    lock = FileLock(script, timeout=0)
    assert lock.holder() is None  # the dead holder's record beside the file does not count
    with lock:
        assert script.read_bytes() == SCRIPT
    assert script.read_bytes() == SCRIPT


def test_locks_on_an_existing_file_exclude_each_other_in_one_process(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    with FileLock(script), pytest.raises(LockTimeout):
        FileLock(script, timeout=0).acquire()
    with FileLock(script, timeout=0):
        pass


# -- 6. `hardenkit lock`: the lock outlives a SIGKILLed wrapper as long as the command runs ----------------

# The command under the lock: says its pid, then runs until told to stop (at most 60 s), then says "done".
_COMMAND = """
import os, pathlib, sys, time
d = pathlib.Path(sys.argv[1])
(d / "pid").write_text(str(os.getpid()))
os.replace(d / "pid", d / "ready")
for _ in range(1200):
    if (d / "stop").exists():
        break
    time.sleep(0.05)
(d / "done").touch()
"""


def start_wrapper(lock_path: Path, work: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    wrapper = subprocess.Popen(
        [*HARDENKIT, "lock", str(lock_path), *extra, "--", sys.executable, "-c", _COMMAND, str(work)]
    )
    try:
        wait_for(lambda: (work / "ready").exists() or wrapper.poll() is not None, "the command to start")
        assert wrapper.poll() is None, "the wrapper exited early"
    except BaseException:
        wrapper.kill()  # forwarded to nothing: SIGKILL cannot be caught, the command then ends by itself
        wrapper.wait(timeout=10)
        (work / "stop").touch()
        raise
    return wrapper, int((work / "ready").read_text())


@pytest.mark.parametrize("existing", [False, True], ids=["new-lock-file", "existing-script"])
def test_sigkilled_wrapper_leaves_the_lock_held_until_the_command_ends(
    tmp_path: Path, existing: bool
) -> None:
    lock_path = tmp_path / ("backup.sh" if existing else "backup.lock")
    if existing:
        lock_path.write_bytes(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    wrapper, command = start_wrapper(lock_path, work)
    try:
        wrapper.send_signal(signal.SIGKILL)
        assert wrapper.wait(timeout=10) == -signal.SIGKILL
        assert not process_gone(command)  # the command keeps running ...
        second = run_cli(
            str(lock_path), "--timeout", "0.2", "--", sys.executable, "-c", "print('second ran')"
        )
        assert second.returncode == 75, second.stderr  # ... and so does the lock
        assert "second ran" not in second.stdout
        assert f"pid {command}" in second.stderr  # the holder named is the process still holding it
        with pytest.raises(LockTimeout):
            FileLock(lock_path, timeout=0).acquire()
        (work / "stop").touch()
        wait_for(lambda: process_gone(command), "the command to end")
    finally:
        (work / "stop").touch()
        stop_pid(command)
    assert (work / "done").exists()
    after = run_cli(str(lock_path), "--timeout", "5", "--", sys.executable, "-c", "print('after')")
    assert after.returncode == 0 and after.stdout == "after\n", after.stderr
    if existing:
        assert lock_path.read_bytes() == SCRIPT


def test_sigkilled_wrapper_of_a_soft_lock_takes_the_command_with_it(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the wrapper's death reaches the command through PR_SET_PDEATHSIG, a Linux feature")
    lock_path = tmp_path / "soft.lock"
    work = tmp_path / "work"
    work.mkdir()
    wrapper, command = start_wrapper(lock_path, work, "--soft")
    try:
        wrapper.send_signal(signal.SIGKILL)
        assert wrapper.wait(timeout=10) == -signal.SIGKILL
        # A soft marker of a dead process is broken by the next acquirer: the command must not outlive it.
        wait_for(lambda: process_gone(command), "the command to die with its wrapper")
    finally:
        stop_pid(command)
    assert not (work / "done").exists()
    after = run_cli(str(lock_path), "--soft", "--timeout", "5", "--", sys.executable, "-c", "print('after')")
    assert after.returncode == 0 and after.stdout == "after\n", after.stderr


def test_command_ending_normally_frees_the_lock_and_clears_the_record(tmp_path: Path) -> None:
    lock_path = tmp_path / "job.lock"
    work = tmp_path / "work"
    work.mkdir()
    wrapper, command = start_wrapper(lock_path, work)
    try:
        holder = FileLock(lock_path).holder()
        assert holder is not None and holder.pid == wrapper.pid  # the wrapper is named while it lives
        (work / "stop").touch()
        assert wrapper.wait(timeout=30) == 0
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait(timeout=10)
        stop_pid(command)
    assert FileLock(lock_path).holder() is None
    with FileLock(lock_path, timeout=0):
        pass


# -- 7. atomic_write and links planted in sticky shared directories ---------------------------------------


@needs_root
def test_atomic_write_refuses_a_link_planted_by_another_user_in_a_sticky_directory(shared: Path) -> None:
    victim = shared / "victim.conf"
    victim.write_text("root: secret\n")
    link = shared / "shared" / "report.txt"
    plant_link(link, victim, owner=NOBODY)
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(link, "pwned\n")
    with pytest.raises(PermissionError):
        atomic_write(link)  # the context-manager form refuses at the call already
    assert victim.read_text() == "root: secret\n"
    assert link.is_symlink() and os.lstat(link).st_uid == NOBODY
    assert temp_files(shared / "shared") == [] and temp_files(shared) == []


@needs_root
def test_atomic_write_judges_the_link_again_when_the_block_is_entered(shared: Path) -> None:
    victim = shared / "victim.conf"
    victim.write_text("secret")
    link = shared / "shared" / "report.txt"
    writer = atomic_write(link)  # nothing there yet
    plant_link(link, victim, owner=NOBODY)  # planted between the call and the block
    with pytest.raises(PermissionError, match="symlink"), writer as fileobj:
        fileobj.write("pwned")
    assert victim.read_text() == "secret"


def test_atomic_write_in_a_missing_directory_fails_when_the_block_is_entered(tmp_path: Path) -> None:
    writer = atomic_write(tmp_path / "missing" / "f.txt")
    with pytest.raises(FileNotFoundError), writer as fileobj:
        fileobj.write("x")


@needs_root
def test_atomic_write_refuses_a_dangling_link_planted_in_a_sticky_directory(shared: Path) -> None:
    created = shared / "created-by-the-attacker"
    link = shared / "shared" / "report.txt"
    plant_link(link, created, owner=NOBODY)
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(link, "x")
    assert not created.exists()
    assert link.is_symlink()


@needs_root
def test_atomic_write_judges_every_link_of_a_chain(shared: Path) -> None:
    victim = shared / "victim.conf"
    victim.write_text("secret")
    hop = shared / "shared" / "hop"
    plant_link(hop, victim, owner=NOBODY)
    mine = shared / "shared" / "mine"
    mine.symlink_to(hop)  # the caller's own link, pointing at the planted one
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(mine, "pwned")
    assert victim.read_text() == "secret"


@needs_root
def test_atomic_write_refuses_a_link_of_the_owner_of_a_sticky_directory_not_the_caller(shared: Path) -> None:
    theirs = shared / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    theirs.chmod(0o1777)  # a shared sticky directory that another user owns, and so fills at will
    victim = shared / "victim.conf"
    victim.write_text("secret")
    link = theirs / "report.txt"
    plant_link(link, victim, owner=NOBODY)
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(link, "pwned")
    assert victim.read_text() == "secret"


@needs_root
@pytest.mark.parametrize("pointing", ["absolute", "relative"])
def test_atomic_write_refuses_a_planted_link_in_the_directory_part_of_the_path(
    shared: Path, pointing: str
) -> None:
    etc = shared / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0\n")
    app = shared / "shared" / "app"  # the directory a root job expects, planted as a link to etc/
    plant_link(app, etc if pointing == "absolute" else "../etc", owner=NOBODY)
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(app / "passwd", "pwned\n")
    with pytest.raises(PermissionError, match="symlink"):
        atomic_write(app / "new.conf", "pwned\n")
    assert (etc / "passwd").read_text() == "root:x:0:0\n"
    assert sorted(p.name for p in etc.iterdir()) == ["passwd"]


@needs_root
def test_atomic_write_follows_the_callers_own_links_in_the_directory_part(shared: Path) -> None:
    data = shared / "data"
    data.mkdir()
    (shared / "shared" / "current").symlink_to(data)  # root's own link to a directory
    (shared / "up").symlink_to("shared/../data")  # relative, through ".."
    atomic_write(shared / "shared" / "current" / "a.txt", "a")
    atomic_write(shared / "up" / "b.txt", "b")
    assert (data / "a.txt").read_text() == "a" and (data / "b.txt").read_text() == "b"


@needs_root
def test_unprivileged_writer_crosses_a_directory_it_may_search_but_not_list(shared: Path) -> None:
    shared.chmod(0o711)  # like a home directory: others may cross it, not list it
    target = shared / "shared" / "note.txt"
    assert _write_as(NOBODY, target, "hello", fsync=True) == 0
    assert target.read_text() == "hello"


@needs_root
def test_atomic_write_still_follows_the_callers_own_link_in_a_sticky_directory(shared: Path) -> None:
    real = shared / "real.txt"
    real.write_text("old")
    real.chmod(0o640)
    link = shared / "shared" / "current.txt"
    link.symlink_to(real)  # owned by the caller (root)
    atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640


@needs_root
def test_atomic_write_follows_links_in_a_directory_that_is_not_shared(shared: Path) -> None:
    private = shared / "private"
    private.mkdir(mode=0o755)
    real = shared / "real.txt"
    real.write_text("old")
    link = private / "current.txt"
    plant_link(link, real, owner=NOBODY)  # only root can write in private/: nobody could have planted it
    atomic_write(link, "new")
    assert real.read_text() == "new"


def _write_as(uid: int, path: Path, text: str, *, fsync: bool = False) -> int:
    """atomic_write(path, text) in a real process running as ``uid``: 0 written, 13 refused, 1 other error.

    A fork that drops privileges, not an exec, because the interpreter running the suite may live where
    an unprivileged account cannot execute it (a pyenv under /root).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() with threads alive
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns into pytest
        status = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            atomic_write(path, text, fsync=fsync)
            status = 0
        except PermissionError:
            status = 13
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


@needs_root
def test_unprivileged_writer_refuses_a_link_another_user_planted(shared: Path) -> None:
    home = shared / "nobody-home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    data = home / "data.txt"
    data.write_text("mine")
    os.chown(data, NOBODY, NOBODY)
    planted = shared / "shared" / "planted"
    plant_link(planted, data, owner=STRANGER)
    assert _write_as(NOBODY, planted, "pwned") == 13
    assert data.read_text() == "mine"
    own = shared / "shared" / "own"
    plant_link(own, data, owner=NOBODY)
    assert _write_as(NOBODY, own, "updated") == 0  # the writer's own link: followed
    assert data.read_text() == "updated" and own.is_symlink()


@needs_root
def test_json_state_refuses_a_planted_link_in_a_sticky_directory(shared: Path) -> None:
    victim = shared / "victim.json"
    victim.write_text('{"admin": true}\n')
    link = shared / "shared" / "state.json"
    plant_link(link, victim, owner=NOBODY)
    state = JsonState(link, fsync=False)
    with pytest.raises(PermissionError):
        state.read()
    with pytest.raises(PermissionError), state.update() as data:
        data["n"] = 1
    assert victim.read_text() == '{"admin": true}\n'


# -- 8. JsonState on a symlinked path: backups are copies of the data -------------------------------------


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_json_state_through_a_symlink_keeps_backups_that_are_copies(tmp_path: Path, relative: bool) -> None:
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "state.json"
    link = tmp_path / "state.json"
    link.symlink_to("data/state.json" if relative else real)
    state = JsonState(link, backups=3, fsync=False)
    for n in range(1, 5):
        with state.update() as data:
            data["n"] = n
    real.chmod(0o600)
    with state.update() as data:
        data["n"] = 5
    assert link.is_symlink() and json.loads(real.read_text()) == {"n": 5}
    for k in (1, 2, 3):
        backup = Path(state.backup_path(k))
        assert backup.is_file() and not backup.is_symlink()
        assert json.loads(backup.read_text()) == {"n": 5 - k}
    assert stat.S_IMODE(os.stat(state.backup_path(1)).st_mode) == 0o600  # a copy keeps the data's mode


def test_corrupt_state_behind_a_symlink_is_recovered_in_place(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "state.json"
    link = tmp_path / "state.json"
    link.symlink_to(real)
    state = JsonState(link, fsync=False)
    for n in (1, 2):
        with state.update() as data:
            data["n"] = n
    damage = b'{"n": 3, "trunc'
    real.write_bytes(damage)  # the live file is damaged, through whatever path
    assert state.read() == {"n": 1}  # from the backup, not StateCorrupted
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link stays a link ...
    assert json.loads(real.read_text()) == {"n": 1}  # ... and the file it names is repaired
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].is_file() and not aside[0].is_symlink()
    assert aside[0].read_bytes() == damage
    with state.update() as data:
        data["n"] = 4
    assert json.loads(real.read_text()) == {"n": 4}


# -- FileLock.spawn, in process -------------------------------------------------------------------------

_WAIT_FOR_STOP = (
    "import pathlib, sys, time\n"
    "for _ in range(1200):\n"
    "    if pathlib.Path(sys.argv[1]).exists():\n"
    "        break\n"
    "    time.sleep(0.05)\n"
)


def test_spawn_hands_the_lock_to_the_command_and_release_still_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    stop = tmp_path / "stop"
    lock = FileLock(path)
    lock.acquire()
    child = lock.spawn([sys.executable, "-c", _WAIT_FOR_STOP, str(stop)])
    try:
        assert f'"heir": {child.pid}'.encode() in path.read_bytes()
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()  # the taker is named while it lives
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0).acquire()
        lock.release()
        # The command still has the descriptor, but the taker's release ends the lock for everyone: a
        # daemon left behind by a command must not keep it.
        with FileLock(path, timeout=0):
            pass
    finally:
        stop.touch()
        child.wait(timeout=30)
        if lock.is_locked:
            lock.release()


def test_spawn_needs_the_lock_held(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="acquire it before spawn"):
        FileLock(tmp_path / "a.lock").spawn(["true"])


def test_soft_spawn_runs_the_command_and_the_callers_preexec_fn(tmp_path: Path) -> None:
    marker = tmp_path / "preexec-ran"
    lock = FileLock(tmp_path / "soft.lock", soft=True)
    with lock:
        child = lock.spawn(
            [sys.executable, "-c", "print('ran')"],
            stdout=subprocess.PIPE,
            preexec_fn=lambda: os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600)),
        )
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0 and out == b"ran\n"
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
    assert marker.exists()


def test_cli_reports_a_command_it_cannot_run_while_the_lock_holds_it_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hardenkit.cli.lock import main as cli_main

    lock_file = tmp_path / "run-me"
    lock_file.touch(mode=0o755)  # an empty file: a lock file, opened read-write, so it cannot be executed
    assert cli_main([str(lock_file), "--", str(lock_file)]) == 126
    assert "cannot run" in capsys.readouterr().err


# -- existing files: the branches a race reaches ----------------------------------------------------------


def _filelock_truncates_on_acquire() -> bool:
    # filelock up to 4.2.0 empties the lock file once it wins the flock (4.2.1 stopped);
    # 4.1 is the newest release for Python 3.10.
    import filelock

    parts = tuple(int(p) for p in filelock.__version__.split(".")[:3] if p.isdigit())
    return parts < (4, 2, 1)


@pytest.mark.skipif(
    _filelock_truncates_on_acquire(),
    reason="filelock < 4.2.1 (Python 3.10's newest) empties the file itself once locked; documented in docs/lock.md",
)
def test_file_that_gained_content_before_the_lock_was_taken_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hardenkit.lock.file as lock_file

    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    # As if the content was written right after the lock judged the file missing or empty.
    monkeypatch.setattr(lock_file, "_is_existing_foreign_file", lambda path: False)
    lock = FileLock(script)
    with lock:
        assert script.read_bytes() == SCRIPT
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
    assert script.read_bytes() == SCRIPT
    assert not (tmp_path / "backup.sh.holder").exists()


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_existing_file_swapped_while_being_locked_is_locked_again_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import fcntl

    import hardenkit.lock.existing as existing

    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    real_flock = fcntl.flock
    calls: list[int] = []

    class SwapOnce:
        LOCK_EX, LOCK_NB, LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN

        @staticmethod
        def flock(fd: int, operation: int) -> None:
            if not calls:  # between the open and the flock of the first attempt
                if how == "replaced":
                    (tmp_path / "new").write_bytes(SCRIPT + b"# v2\n")
                    os.replace(tmp_path / "new", script)
                else:
                    script.unlink()
            calls.append(operation)
            real_flock(fd, operation)

    monkeypatch.setattr(existing, "fcntl", SwapOnce)
    lock = FileLock(script, timeout=5)
    if how == "removed":
        with lock:  # the next attempt finds no file: the lock creates its own
            assert script.read_bytes().startswith(b'{"pid": ')
        return
    with lock:
        assert len(calls) >= 2  # the first lock was on the old inode: dropped, taken again
        assert script.read_bytes() == SCRIPT + b"# v2\n"
        with pytest.raises(LockTimeout):
            FileLock(script, timeout=0).acquire()


def test_existing_file_whose_record_cannot_be_written_is_not_held(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    (tmp_path / "backup.sh.holder").mkdir()
    lock = FileLock(script, timeout=0)
    with pytest.raises(LockError, match="cannot use lock file"):
        lock.acquire()
    assert not lock.is_locked
    (tmp_path / "backup.sh.holder").rmdir()
    with FileLock(script, timeout=0):
        pass
    assert script.read_bytes() == SCRIPT


def test_a_link_planted_where_the_record_goes_is_replaced_not_followed(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_bytes(SCRIPT)
    victim = tmp_path / "victim.conf"
    victim.write_text("keep me")
    (tmp_path / "backup.sh.holder").symlink_to(victim)
    lock = FileLock(script)
    with lock:
        assert not (tmp_path / "backup.sh.holder").is_symlink()
        holder = lock.holder()
        assert holder is not None and holder.pid == os.getpid()
    assert victim.read_text() == "keep me" and script.read_bytes() == SCRIPT
    assert not (tmp_path / "backup.sh.holder").exists()


def _lock_as(uid: int, path: Path) -> int:
    """Lock ``path`` in a real process running as ``uid``: 0 when locked with the file unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() with threads alive
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns into pytest
        status = 1
        try:
            before = path.read_bytes()
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            lock = FileLock(path, timeout=0)
            with lock:
                if lock.holder() is None and path.read_bytes() == before:
                    status = 0
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


@needs_root
def test_read_only_script_in_a_read_only_directory_is_locked_like_flock_does(shared: Path) -> None:
    bin_dir = shared / "bin"
    bin_dir.mkdir(mode=0o755)  # root's: the unprivileged locker cannot write the record beside it
    script = bin_dir / "backup.sh"
    script.write_bytes(SCRIPT)
    script.chmod(0o555)
    assert _lock_as(NOBODY, script) == 0
    assert script.read_bytes() == SCRIPT and not (bin_dir / "backup.sh.holder").exists()


def test_unreadable_records_mean_no_known_holder(tmp_path: Path) -> None:
    marker = tmp_path / "soft.lock"
    marker.write_text("not a marker")
    (tmp_path / "soft.lock.holder").mkdir()  # read() of a directory fails
    assert FileLock(marker, soft=True).holder() is None


@needs_root
def test_existing_file_of_another_user_in_a_sticky_directory_is_refused(shared: Path) -> None:
    script = shared / "shared" / "backup.sh"
    script.write_bytes(SCRIPT)
    os.chown(script, NOBODY, NOBODY)  # its owner can swap it for a new inode under our lock
    with pytest.raises(LockError, match="belongs to uid"):
        FileLock(script, timeout=0).acquire()
    assert script.read_bytes() == SCRIPT


# -- atomic_write: odd link targets ------------------------------------------------------------------------


def test_atomic_write_reports_a_link_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links") as caught:
        atomic_write(tmp_path / "a", "x")
    assert caught.value.errno == errno.ELOOP


def test_atomic_write_to_a_link_naming_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "sub" / "up", "x")
    assert temp_files(tmp_path) == [] and temp_files(tmp_path / "sub") == []


def test_json_state_in_a_missing_directory_reads_the_default(tmp_path: Path) -> None:
    assert JsonState(tmp_path / "missing" / "state.json").read() == {}


@needs_root
@pytest.mark.skipif(not hasattr(os, "O_PATH"), reason="O_PATH is Linux's")
def test_atomic_write_works_in_a_directory_it_may_write_but_not_list(shared: Path) -> None:
    drop = shared / "drop"
    drop.mkdir()
    os.chown(drop, NOBODY, NOBODY)
    drop.chmod(0o333)  # root lists any directory: the writer is its unprivileged owner
    target = drop / "out.txt"
    assert _write_as(NOBODY, target, "v1", fsync=True) == 0
    assert _write_as(NOBODY, target, "v2") == 0
    assert target.read_text() == "v2"
    assert temp_files(drop) == []
