"""AccessLogMiddleware: one redacted line per request, errors, disconnects, the kit, a real uvicorn."""

from __future__ import annotations

import io
import json
import logging
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from hardenkit import HeaderContractMiddleware, Kit, Wiring
from hardenkit.errors import ConfigurationError
from hardenkit.logs import AccessLogMiddleware, Redactor, configure_logging
from support import uvicorn_server

FIELDS = {
    "method",
    "path",
    "query",
    "status",
    "duration_ms",
    "response_bytes",
    "client",
    "user_agent",
    "request_id",
}


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access() -> Iterator[Collect]:
    logger = logging.getLogger("hardenkit.access")
    handler = Collect()
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key in FIELDS | {"disconnected", "error"}}


async def ok(request: Request) -> Response:
    return PlainTextResponse("hello")


async def boom(request: Request) -> Response:
    raise RuntimeError("exploded with password=hunter2")


async def slow(request: Request) -> Response:
    await anyio.sleep(0.05)
    return PlainTextResponse("slow")


def make_app(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/", ok), Route("/boom", boom), Route("/slow", slow), Route("/livez", ok)])
    app.add_middleware(AccessLogMiddleware, **options)
    app.add_middleware(HeaderContractMiddleware)
    return app


def test_one_record_per_request_with_every_field(access: Collect) -> None:
    client = TestClient(make_app())
    response = client.get("/?page=2&token=abc&email=a@example.com", headers={"User-Agent": "probe/1.0"})
    (record,) = access.records
    got = fields(record)
    assert got.pop("duration_ms") >= 0
    assert got == {
        "method": "GET",
        "path": "/",
        "query": "page=2&token=[REDACTED:secret]&email=[REDACTED:email]",
        "status": 200,
        "response_bytes": 5,
        "client": "testclient",
        "user_agent": "probe/1.0",
        "request_id": response.headers["x-request-id"],
    }
    assert record.levelno == logging.INFO
    assert record.getMessage() == "GET / 200"


def test_app_exception_is_logged_as_500_at_error_and_reraised(access: Collect) -> None:
    client = TestClient(make_app(), raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    (record,) = access.records
    assert record.levelno == logging.ERROR
    assert fields(record)["status"] == 500 and fields(record)["error"] == "RuntimeError"
    with pytest.raises(RuntimeError):
        TestClient(make_app()).get("/boom")


def test_slow_requests_are_logged_at_warning(access: Collect) -> None:
    client = TestClient(make_app(slow_ms=1.0))
    client.get("/slow")
    client = TestClient(make_app(slow_ms=None))
    client.get("/slow")
    assert [record.levelno for record in access.records] == [logging.WARNING, logging.INFO]


def test_paths_answered_by_an_outer_component_and_excluded_paths_are_not_logged(access: Collect) -> None:
    wiring = Wiring()
    wiring.answer_paths("/livez", owner="health")
    client = TestClient(make_app(kit=wiring, exclude_paths=["/slow"]))
    client.get("/livez")
    client.get("/slow")
    client.get("/")
    assert [fields(record)["path"] for record in access.records] == ["/"]


def test_secrets_in_paths_and_user_agents_are_redacted(access: Collect) -> None:
    client = TestClient(make_app())
    client.get("/reset/alice@example.com", headers={"User-Agent": "bot token=xyz"})
    got = fields(access.records[0])
    assert got["path"] == "/reset/[REDACTED:email]" and got["user_agent"] == "bot token=[REDACTED:secret]"


def test_redaction_can_be_given_or_turned_off(access: Collect) -> None:
    TestClient(make_app(redact=False)).get("/?token=abc")
    TestClient(make_app(redact=Redactor(mode="hash", key="k"))).get("/?token=abc")
    assert fields(access.records[0])["query"] == "token=abc"
    assert fields(access.records[1])["query"].startswith("token=[REDACTED:secret:")


def test_json_line_through_configure_logging(access: Collect) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    handler = configure_logging(stream=stream, uvicorn=False)
    logging.getLogger("hardenkit.access").addHandler(handler)
    try:
        response = TestClient(make_app()).get("/?password=x")
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    (line,) = [line for line in lines if line["logger"] == "hardenkit.access"]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["query"] == "password=[REDACTED:secret]" and line["status"] == 200
    assert FIELDS <= set(line)


def test_disabled_logger_costs_nothing_and_logs_nothing(access: Collect) -> None:
    logging.getLogger("hardenkit.access").setLevel(logging.CRITICAL)
    TestClient(make_app()).get("/")
    assert access.records == []


# -- raw ASGI: disconnects, cancellation, non-http scopes -----------------------------------------


def http_scope(path: str = "/") -> Scope:
    return {
        "type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [],
        "client": ("127.0.0.1", 5000), "http_version": "1.1", "scheme": "http", "server": ("test", 80),
    }  # fmt: skip


async def wait_for_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_client_disconnect_is_logged(access: Collect) -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent to a gone client")

    await AccessLogMiddleware(wait_for_disconnect)(http_scope(), receive, send)
    (record,) = access.records
    assert fields(record)["disconnected"] is True and fields(record)["status"] == 499


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_cancelled_request_is_logged_and_cancellation_goes_on(access: Collect) -> None:
    started = anyio.Event()

    async def hang(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await anyio.sleep_forever()

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Message) -> None:
        pass

    async with anyio.create_task_group() as group:
        group.start_soon(AccessLogMiddleware(hang), http_scope(), receive, send)
        await started.wait()
        group.cancel_scope.cancel()
    (record,) = access.records
    assert fields(record)["status"] == 200 and fields(record)["disconnected"] is True


@pytest.mark.anyio
async def test_send_failure_marks_the_client_as_gone(access: Collect) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    with pytest.raises(OSError):
        await AccessLogMiddleware(app)(http_scope(), receive, send)
    got = fields(access.records[0])
    assert got["disconnected"] is True and got["error"] == "OSError"


@pytest.mark.anyio
async def test_non_http_scopes_pass_straight_through(access: Collect) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    middleware = AccessLogMiddleware(app)
    await middleware({"type": "lifespan"}, receive, send)
    await middleware({"type": "websocket", "path": "/ws"}, receive, send)
    assert seen == ["lifespan", "websocket"] and access.records == []


@pytest.mark.anyio
async def test_a_broken_logging_setup_never_breaks_the_request(
    access: Collect, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler exploded")

        def handleError(self, record: logging.LogRecord) -> None:
            raise RuntimeError("and its error handler too")

    logging.getLogger("hardenkit.access").addHandler(Broken())
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    with caplog.at_level(logging.ERROR, logger="hardenkit.accesslog"):
        await AccessLogMiddleware(app)(http_scope(), receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert "could not write the access log line" in caplog.text


# -- options and the kit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slow_ms": 0}, "slow_ms"),
        ({"slow_ms": True}, "slow_ms"),
        ({"logger": ""}, "logger must be"),
        ({"logger": 3}, "logger takes"),
        ({"exclude_paths": "/livez"}, "list of paths"),
        ({"exclude_paths": ["livez"]}, "start with '/'"),
        ({"redact": "yes"}, "redact takes"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AccessLogMiddleware(wait_for_disconnect, **options)


def test_kit_places_it_inside_the_header_contract_and_reads_the_environment(access: Collect) -> None:
    app = Starlette(routes=[Route("/slow", slow)])
    kit = Kit.from_env({"HARDENKIT_ACCESSLOG_SLOW_MS": "1", "HARDENKIT_ACCESSLOG_EXCLUDE_PATHS": "/x,/y"})
    kit.register(AccessLogMiddleware).register(HeaderContractMiddleware)
    assert repr(kit).index("HeaderContractMiddleware") < repr(kit).index("AccessLogMiddleware")
    response = TestClient(kit.install(app)).get("/slow")
    (record,) = access.records
    assert record.levelno == logging.WARNING
    assert fields(record)["request_id"] == response.headers["x-request-id"]
    with pytest.raises(ConfigurationError, match="HARDENKIT_ACCESSLOG_NOPE"):
        Kit.from_env({"HARDENKIT_ACCESSLOG_NOPE": "1"}).register(AccessLogMiddleware).install(Starlette())


# -- a real server ------------------------------------------------------------------------------

APP_MODULE = """
from __future__ import annotations
import logging, os
import anyio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
import hardenkit as hk

hk.configure_logging(stream=open(os.environ["ACCESS_LOG_FILE"], "a", buffering=1))

async def index(request):
    return PlainTextResponse("ok")

async def stream(request):
    async def chunks():
        for _ in range(1000):
            yield b"x" * 1024
            await anyio.sleep(0.01)
    return StreamingResponse(chunks())

app = Starlette(routes=[Route("/", index), Route("/stream", stream)])
hk.Kit().register(hk.AccessLogMiddleware).register(hk.HeaderContractMiddleware).install(app)
"""


def read_access_lines(path: Path, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        lines = [line for line in lines if line.get("logger") == "hardenkit.access"]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return lines


@pytest.mark.slow
def test_real_uvicorn_writes_one_json_line_per_request_including_disconnects(tmp_path: Path) -> None:
    (tmp_path / "access_app.py").write_text(textwrap.dedent(APP_MODULE), encoding="utf-8")
    log_file = tmp_path / "access.log"
    with uvicorn_server("access_app:app", env={"ACCESS_LOG_FILE": str(log_file)}, cwd=tmp_path) as (url, _):
        response = httpx.get(f"{url}/?api_key=topsecret&q=1", headers={"User-Agent": "itest"})
        assert response.status_code == 200
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        lines = read_access_lines(log_file, 2)
    assert len(lines) == 2, lines
    first, second = lines
    assert first["query"] == "api_key=[REDACTED:secret]&q=1"
    assert first["request_id"] == response.headers["x-request-id"] and first["user_agent"] == "itest"
    assert first["client"] == "127.0.0.1" and first["response_bytes"] == 2
    assert second["path"] == "/stream" and second.get("disconnected") is True
    assert "topsecret" not in log_file.read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_handler_filter_with_more_categories_still_rescans_the_access_line() -> None:
    """The access log vouches for its fields only to filters its redactor covers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    outputs = []
    try:
        for redact in (True, Redactor(enable=["ip"])):
            stream = io.StringIO()
            configure_logging(stream=stream, redact=redact, uvicorn=False)
            scope = http_scope("/")
            scope["client"] = ("203.0.113.7", 5000)
            await AccessLogMiddleware(app, logger="test.access.rescan")(scope, receive, send)
            (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
            outputs.append(line["client"])
    finally:
        root.handlers[:], root.level = saved
    assert outputs == ["203.0.113.7", "[REDACTED:ip]"]
