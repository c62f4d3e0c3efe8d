"""The fault proxy between the app and Redis: pass, latency, blackhole, reset (real sockets, loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from benchmarks.load.faultproxy import FaultProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A threaded TCP echo server on 127.0.0.1."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(echo_port)
    yield fault_proxy
    fault_proxy.close()


def roundtrip(port: int, payload: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    assert roundtrip(proxy.port, b"PING\r\n") == b"PING\r\n"
    big = bytes(range(256)) * 1000
    assert roundtrip(proxy.port, big) == big
    assert proxy.connections_total == 2


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.set("latency", 0.2)
    time.sleep(0.05)  # the mode is applied on the proxy's own loop
    began = time.monotonic()
    assert roundtrip(proxy.port, b"x") == b"x"
    # A lower bound only: 0.2 s each way can never be beaten, however slow the machine.
    assert time.monotonic() - began >= 0.4


def test_blackhole_accepts_but_nothing_comes_back(proxy: FaultProxy) -> None:
    proxy.set("blackhole")
    time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        with pytest.raises(socket.timeout):
            sock.recv(10)
    proxy.set("pass")
    time.sleep(0.05)
    assert roundtrip(proxy.port, b"back") == b"back"


def test_reset_resets_open_and_new_connections(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=3) as sock:
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        proxy.set("reset")
        with pytest.raises(ConnectionResetError):
            for _ in range(50):  # bounded: the reset reaches the socket within a few tries
                sock.sendall(b"b")
                if not sock.recv(1):
                    raise ConnectionResetError("closed")
                time.sleep(0.05)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=3) as sock:
            sock.sendall(b"c")
            if not sock.recv(1):
                raise ConnectionResetError("closed")
    assert proxy.resets >= 2


def test_unknown_mode_and_negative_delay_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.set("slow")
    with pytest.raises(ValueError):
        proxy.set("latency", -1)
