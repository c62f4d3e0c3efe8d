"""The constant-rate client's schedule and HTTP parsing, and the readiness balancer, on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from benchmarks.load.balancer import ReadinessBalancer
from benchmarks.load.client import ConstantRateClient, get, read_response, schedule


def test_schedule_is_evenly_spaced_per_phase() -> None:
    times = schedule([(1.0, 4.0), (0.5, 10.0), (1.0, 0.0)])
    assert times[:4] == [0.0, 0.25, 0.5, 0.75]
    assert times[4:] == pytest.approx([1.0 + i / 10 for i in range(5)])
    assert len(schedule([(2.0, 0.0)])) == 0


def parse(raw: bytes) -> tuple[int, bool, bytes]:
    async def main() -> tuple[int, bool, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_response(reader)

    return asyncio.run(main())


def test_read_response_content_length_chunked_and_close() -> None:
    assert parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi") == (200, True, b"hi")
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert parse(chunked) == (200, True, b"abcde")
    assert parse(b"HTTP/1.1 503 x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n") == (503, False, b"")
    assert parse(b"HTTP/1.0 200 OK\r\n\r\nuntil eof") == (200, False, b"until eof")
    with pytest.raises(ValueError):
        parse(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_latency_is_measured_from_the_intended_time() -> None:
    """One connection, a server that takes 50 ms: queued requests carry their wait."""

    async def main() -> list[float]:
        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    await asyncio.sleep(0.05)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
            except (asyncio.IncompleteReadError, OSError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(slow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = ConstantRateClient(port, max_connections=1)
        result = await client.run([0.0] * 5, lambda i: ("/", (), "main"))
        server.close()
        await asyncio.sleep(0.05)  # the handler sees the client's close and closes its side
        await server.wait_closed()
        return sorted(s.latency for s in result.samples)

    latencies = asyncio.run(main())
    # Five requests due at once on one connection: the last waited for four others.
    assert latencies[-1] >= 0.25


def test_client_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError):
        ConstantRateClient(80, host="192.0.2.1")


def backend(status: int) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 answering every GET with ``status``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def test_balancer_routes_only_to_ready_backends() -> None:
    ready, unready = backend(200), backend(503)
    ready_port, unready_port = ready.server_address[1], unready.server_address[1]
    balancer = ReadinessBalancer([ready_port, unready_port], interval=0.05)
    try:
        for _ in range(100):
            if balancer.ready[ready_port]:
                break
            time.sleep(0.05)
        statuses = [asyncio.run(get(balancer.port, "/items/1"))[0] for _ in range(6)]
        assert statuses == [200] * 6
        assert balancer.routed[unready_port] == 0 and balancer.routed[ready_port] == 6
        assert not balancer.ready[unready_port]
    finally:
        balancer.close()
        for server in (ready, unready):
            server.shutdown()
            server.server_close()


def test_balancer_answers_503_when_no_backend_is_ready() -> None:
    unready = backend(503)
    balancer = ReadinessBalancer([unready.server_address[1]], interval=0.05)
    try:
        time.sleep(0.2)
        assert asyncio.run(get(balancer.port, "/"))[0] == 503
        assert balancer.no_backend == 1
    finally:
        balancer.close()
        unready.shutdown()
        unready.server_close()
