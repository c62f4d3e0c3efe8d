"""TimeoutMiddleware under a real uvicorn: a sync endpoint's 504 leaves the loop serving; a slow body gets 408."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx2
import pytest

from support import uvicorn_server

pytestmark = pytest.mark.slow

APP = "integration.timeout_app:app"


def test_sync_endpoint_gets_504_and_the_server_keeps_serving(tmp_path: Path) -> None:
    marker = tmp_path / "done"
    with uvicorn_server(APP, env={"TIMEOUT_APP_MARKER": str(marker)}) as (url, _):
        with httpx2.Client(base_url=url, timeout=10) as client:
            slow = client.get("/blocking", headers={"X-Request-ID": "sync-1"})
            assert slow.status_code == 504
            assert slow.headers["content-type"] == "application/problem+json"
            assert slow.json()["request_id"] == slow.headers["x-request-id"] == "sync-1"
            assert not marker.exists(), "the 504 waited for the worker thread"
            fast = client.get("/fast")
            assert (fast.status_code, fast.text) == (200, "fast")
            assert not marker.exists()  # answered while the thread was still blocked


def test_slow_body_upload_gets_408_and_the_connection_closes() -> None:
    with uvicorn_server(APP, env={"TIMEOUT_APP_MARKER": "/dev/null"}) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # 10 bytes announced, 2 sent: a client that never finishes its body.
            sock.sendall(
                b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nX-Request-ID: slow-1\r\n\r\nab"
            )
            received = b""
            while True:  # bounded: the server closes the connection after the 408
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 408 Request Timeout"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["request_id"] == headers["x-request-id"] == "slow-1"
