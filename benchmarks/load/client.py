"""A constant-rate (open-loop) HTTP/1.1 load client on asyncio streams.

Why not wrk or hey for latency: both are closed-loop (each connection sends its
next request only when the previous answer came), so when the server stalls
they stop sending and the stall shows up as one slow request instead of the
hundreds a real client population would have waited: coordinated omission.
Here every request has an intended send time on a fixed schedule and its
latency is measured from that time, whether it then waited for a free
connection or not. wrk is still used for the stress profile's closed-loop
ceiling (see profiles.py).

Traffic goes to 127.0.0.1 only; every run is bounded by its schedule (a count)
and by ``timeout`` per request (a time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .stats import Sample

#: (path, extra header lines, tag)
Request = tuple[str, tuple[tuple[str, str], ...], str]


def schedule(phases: Sequence[tuple[float, float]]) -> list[float]:
    """Intended send times (s from start) for phases of (duration s, rate per s), evenly spaced."""
    times: list[float] = []
    start = 0.0
    for duration, rate in phases:
        if duration <= 0 or rate <= 0:
            start += max(duration, 0.0)
            continue
        count = int(round(duration * rate))
        times.extend(start + i / rate for i in range(count))
        start += duration
    return times


@dataclass
class RunResult:
    samples: list[Sample]
    started_wall: float  # time.time() at intended time 0
    duration: float


#: A pooled connection idle longer than this is closed, not reused: the server
#: (uvicorn: --timeout-keep-alive, 5 s) may be closing it at the same moment, and
#: a request sent into that race is lost without being the service's fault. Real
#: client pools do the same (httpx: keepalive_expiry).
KEEPALIVE_EXPIRY = 2.0


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class ConstantRateClient:
    def __init__(
        self, port: int, *, host: str = "127.0.0.1", max_connections: int = 128, timeout: float = 5.0
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the load client only sends traffic to loopback")
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.timeout = timeout
        self._idle: list[_Conn] = []
        self._open = 0
        self._free = asyncio.Condition()

    async def _acquire(self) -> _Conn:
        async with self._free:
            while not self._idle and self._open >= self.max_connections:
                await self._free.wait()
            while self._idle:
                conn = self._idle.pop()
                if time.monotonic() - conn.last_used < KEEPALIVE_EXPIRY:
                    return conn
                conn.close()
                self._open -= 1
            self._open += 1
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            await self._release(None)
            raise
        return _Conn(reader, writer)

    async def _release(self, conn: _Conn | None) -> None:
        async with self._free:
            if conn is None:
                self._open -= 1
            else:
                conn.last_used = time.monotonic()
                self._idle.append(conn)
            self._free.notify()

    async def _one(self, request: Request) -> int:
        path, headers, _ = request
        conn = await self._acquire()
        reusable = False
        try:
            lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
            lines += [f"{name}: {value}" for name, value in headers]
            conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await conn.writer.drain()
            status, reusable, _ = await read_response(conn.reader)
            return status
        finally:
            if reusable:
                await self._release(conn)
            else:
                conn.close()
                await self._release(None)

    async def run(self, times: Sequence[float], make: Callable[[int], Request]) -> RunResult:
        """Send request ``make(i)`` at ``times[i]``; returns one Sample per request."""
        loop = asyncio.get_running_loop()
        samples: list[Sample | None] = [None] * len(times)
        start = loop.time() + 0.05
        started_wall = time.time() + 0.05

        async def fire(index: int, intended: float) -> None:
            request = make(index)
            status, error = 0, ""
            try:
                remaining = max(0.001, start + intended + self.timeout - loop.time())
                status = await asyncio.wait_for(self._one(request), remaining)
            except asyncio.TimeoutError:
                error = "timeout"
            except ConnectionRefusedError:
                error = "refused"
            except (ConnectionResetError, BrokenPipeError):
                error = "reset"
            except asyncio.IncompleteReadError:
                error = "closed"
            except (OSError, ValueError) as exc:
                error = type(exc).__name__
            samples[index] = Sample(intended, loop.time() - start - intended, status, error, request[2])

        tasks: list[asyncio.Task[None]] = []
        for index, intended in enumerate(times):
            delay = start + intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(fire(index, intended)))
        await asyncio.gather(*tasks)
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        done = [s for s in samples if s is not None]
        return RunResult(done, started_wall, (times[-1] if times else 0.0))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.1 response: (status, whether the connection can be reused, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {lines[0]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        for _ in range(100_000):
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        body = b"".join(chunks)
    elif status not in (204, 304) and not 100 <= status < 200:
        body = await reader.read(1 << 20)
        keep = False
    return status, keep, body


async def get(port: int, path: str, *, timeout: float = 2.0) -> tuple[int, float, bytes]:
    """One GET on a fresh connection: (status or 0, seconds taken, body)."""
    began = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return 0, time.monotonic() - began, b""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        status, _, body = await asyncio.wait_for(read_response(reader), timeout)
        return status, time.monotonic() - began, body
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return 0, time.monotonic() - began, b""
    finally:
        writer.close()
