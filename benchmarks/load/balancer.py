"""A small HTTP load balancer that honours readiness, for the rolling-restart scenario.

Like a Kubernetes Service or an nginx/HAProxy upstream with active health
checks: every ``interval`` seconds it asks each backend's readiness path and
routes new requests (round robin) only to backends that answered 200. It does
*not* retry a failed request on another backend, so a request lost by a
restarting backend shows up as a 502 in the client's counts: the scenario's
"zero failed requests" rests on readiness and draining alone.

Each request goes to its backend on a fresh connection (``Connection: close``),
so a backend that stops accepting never meets a stale pooled connection.
Listens on 127.0.0.1 only; runs its loop in a daemon thread; ``close()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence

from .client import get

_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_NO_BACKEND = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReadinessBalancer:
    def __init__(
        self, backends: Sequence[int], *, ready_path: str = "/readyz", interval: float = 0.1,
        timeout: float = 10.0,
    ) -> None:  # fmt: skip
        self.backends = list(backends)
        self.ready_path = ready_path
        self.interval = interval
        self.timeout = timeout
        self.ready: dict[int, bool] = dict.fromkeys(self.backends, False)
        self.routed: dict[int, int] = dict.fromkeys(self.backends, 0)
        self.bad_gateway = 0
        self.no_backend = 0
        self.transitions: list[tuple[float, int, bool]] = []
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the balancer did not start")
        self.port: int = self._bound_port()

    def _bound_port(self) -> int:
        # A method of its own: in __init__ mypy takes _server for None (set by the thread).
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            pollers = [asyncio.ensure_future(self._poll(port)) for port in self.backends]
            started.set()
            await self._stop.wait()
            self._server.close()
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)

        try:
            self._loop.run_until_complete(main())
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _poll(self, port: int) -> None:
        while True:
            status, _, _ = await get(port, self.ready_path, timeout=max(self.interval * 5, 0.5))
            ready = status == 200
            if ready != self.ready[port]:
                self.ready[port] = ready
                self.transitions.append((self._loop.time(), port, ready))
            await asyncio.sleep(self.interval)

    def _pick(self) -> int | None:
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            if self.ready[port]:
                return port
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100_000):  # requests on one client connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, OSError):
                    return
                length = 0
                lines = head.decode("latin-1").split("\r\n")
                kept = [lines[0]]
                for line in lines[1:]:
                    name = line.partition(":")[0].strip().lower()
                    if name == "content-length":
                        length = int(line.partition(":")[2])
                    if name and name != "connection":
                        kept.append(line)
                body = await reader.readexactly(length) if length else b""
                request = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1") + body
                writer.write(await self._forward(request))
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def _forward(self, request: bytes) -> bytes:
        port = self._pick()
        if port is None:
            self.no_backend += 1
            return _NO_BACKEND
        self.routed[port] += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), self.timeout
            )
        except (OSError, asyncio.TimeoutError):
            self.bad_gateway += 1
            return _BAD_GATEWAY
        try:
            up_writer.write(request)
            await up_writer.drain()
            answer = await asyncio.wait_for(up_reader.read(-1), self.timeout)
        except (OSError, asyncio.TimeoutError):
            answer = b""
        finally:
            up_writer.close()
        if not answer.startswith(b"HTTP/"):
            self.bad_gateway += 1
            return _BAD_GATEWAY
        # The backend answered "connection: close" to us; the client's connection stays open.
        head, sep, rest = answer.partition(b"\r\n\r\n")
        head = b"\r\n".join(
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
        )
        return head + sep + rest

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
