"""A local TCP proxy that injects network faults between the app and Redis.

The app is pointed at the proxy's port instead of Redis's; the proxy forwards
bytes both ways and, on command, changes how:

- ``pass``: forwards as received;
- ``latency``: delays every chunk by ``delay`` seconds (order kept, pipelined:
  throughput is not divided by the delay, as on a long link);
- ``blackhole``: reads and drops everything, both ways, and accepts new
  connections that then hear nothing (a partition, a dead firewall: the
  client only notices through its timeouts);
- ``reset``: resets (RST, SO_LINGER 0) every open connection and every new one.

It listens on 127.0.0.1 only and runs its own event loop in a daemon thread,
so the harness's load client is not slowed by it; ``close()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

MODES = ("pass", "latency", "blackhole", "reset")


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, *, listen_port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.delay = 0.0
        self.connections_total = 0
        self.resets = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(listen_port, ready), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        self.port: int = self._bound_port()

    def _bound_port(self) -> int:
        # A method of its own: in __init__ mypy takes _server for None (set by the thread).
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _run(self, listen_port: int, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", listen_port)
            ready.set()

        self._loop.run_until_complete(start())
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if self._server is not None:
                self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

    def set(self, mode: str, delay: float = 0.0) -> None:
        """Switch the fault (thread-safe); ``reset`` also resets every open connection now."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if delay < 0:
            raise ValueError("delay must be >= 0")

        def apply() -> None:
            self.mode, self.delay = mode, delay
            if mode == "reset":
                for link in list(self._links):
                    self._drop(link, reset=True)

        self._loop.call_soon_threadsafe(apply)

    def _drop(self, link: _Link, *, reset: bool) -> None:
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            if writer is None:
                continue
            if reset:
                _reset(writer)
                self.resets += 1
            else:
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        link = _Link(writer)
        if self.mode == "reset":
            _reset(writer)
            self.resets += 1
            return
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self._drop(link, reset=True)
            return
        link.upstream = up_writer
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._drop(link, reset=False)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks into a queue stamped with their delivery time; a second task delivers them."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if self.mode in ("blackhole", "reset"):
                    continue
                writer.write(data)
                await writer.drain()

        delivery = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue
                queue.put_nowait((loop.time() + (self.delay if self.mode == "latency" else 0.0), data))
            queue.put_nowait(None)
            await delivery
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await delivery
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._links):
                self._drop(link, reset=True)

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
