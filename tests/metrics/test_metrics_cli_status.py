"""``hardenkit status`` in process, against a small real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from hardenkit.cli import main
from hardenkit.errors import ConfigurationError
from hardenkit.metrics import fetch_exposition


class Service:
    """Serves a growing exposition; counts the reads; answers ``status`` (and ``location``)."""

    def __init__(self) -> None:
        self.reads = 0
        self.status = 200
        self.location = ""
        self.authorization: list[str] = []
        self.fail_after: int | None = None

    def body(self) -> bytes:
        n = self.reads * 10
        return (
            f'http_requests_total{{method="GET",route="/a",status="200",status_class="2xx"}} {n}\n'
            f'http_request_duration_seconds_bucket{{le="0.1",route="/a"}} {n}\n'
            f'http_request_duration_seconds_bucket{{le="+Inf",route="/a"}} {n}\n'
        ).encode()


@pytest.fixture
def service() -> Iterator[tuple[Service, str]]:
    state = Service()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.reads += 1
            state.authorization.append(self.headers.get("Authorization", ""))
            failing = state.fail_after is not None and state.reads > state.fail_after
            self.send_response(500 if failing else state.status)
            if state.location:
                self.send_header("Location", state.location)
            body = state.body()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_status_prints_rates_from_two_reads(
    service: tuple[Service, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = service
    assert (
        main(["status", url.removeprefix("http://"), "--interval", "0.2", "--slo", "api:objective=0.99"]) == 0
    )
    out = capsys.readouterr().out
    assert state.reads == 2
    assert out.startswith(f"{url}/metrics")
    assert "/a" in out and "api availability (objective 99%): 100.00%" in out


def test_status_sends_the_token_from_the_environment(
    service: tuple[Service, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = service
    monkeypatch.setenv("HARDENKIT_METRICS_TOKEN", "t" * 20)
    assert main(["status", f"{url}/metrics", "--interval", "0.1"]) == 0
    assert state.authorization == [f"Bearer {'t' * 20}"] * 2


def test_status_watch_runs_until_the_service_fails(
    service: tuple[Service, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = service
    state.fail_after = 3
    assert main(["status", url, "--interval", "0.1", "--watch"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("requests/s") == 2
    assert "answered 500" in captured.err


def test_status_explains_a_refusal(service: tuple[Service, str], capsys: pytest.CaptureFixture[str]) -> None:
    state, url = service
    state.status = 403
    assert main(["status", url, "--interval", "0.1"]) == 1
    assert "403" in capsys.readouterr().err


def test_a_redirect_is_not_followed_with_the_token(service: tuple[Service, str]) -> None:
    state, url = service
    state.status, state.location = 302, "http://127.0.0.1:9/elsewhere"
    with pytest.raises(Exception, match="not followed"):
        fetch_exposition(url, token="x" * 20)
    assert state.reads == 1


def test_status_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from support import free_port

    assert main(["status", f"127.0.0.1:{free_port()}", "--interval", "0.1"]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["status", "ftp://127.0.0.1/metrics", "--interval", "0.1"]) == 2
    assert main(["status", "127.0.0.1:1", "--slo", "bad:objective=7"]) == 2
    with pytest.raises(SystemExit):
        main(["status", "127.0.0.1:1", "--interval", "0"])
    with pytest.raises(ConfigurationError, match="http"):
        fetch_exposition("file:///etc/passwd")
