"""TimeoutMiddleware: 504 at the request bound, 408 for a slow body, streams left alone, asyncio and trio."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hardenkit as hk
from hardenkit.errors import ConfigurationError
from hardenkit.timeouts import TimeoutMiddleware
from hardenkit.timeouts.middleware import _DETACHED

pytestmark = pytest.mark.anyio

BOUND = 0.2  # seconds: short, so that tests are quick; nothing asserts an upper time bound


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@dataclass
class Exchange:
    messages: list[Message] = field(default_factory=list)
    complete: anyio.Event = field(default_factory=anyio.Event)
    answered_at: float | None = None

    @property
    def status(self) -> int:
        status: int = self.messages[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode().lower(): v.decode("latin-1") for k, v in self.messages[0].get("headers", [])}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        document: dict[str, Any] = json.loads(self.body)
        return document


async def call(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    chunks: Sequence[bytes] = (),
    stall_after: int | None = None,
    exchange: Exchange | None = None,
) -> Exchange:
    """One request straight into ``app``: the body comes in ``chunks``; with ``stall_after=n``
    the client sends n chunks and then nothing more (a slow client). After the body,
    ``receive`` waits for ever, like a client that keeps the connection open."""
    exchange = exchange or Exchange()
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }  # fmt: skip
    pending = list(chunks) or [b""]
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        if sent < len(pending) and (stall_after is None or sent < stall_after):
            sent += 1
            return {"type": "http.request", "body": pending[sent - 1], "more_body": sent < len(pending)}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        exchange.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            exchange.answered_at = anyio.current_time()
            exchange.complete.set()

    await app(scope, receive, send)
    return exchange


class Flags:
    def __init__(self) -> None:
        self.cancelled = False
        self.finished = False
        self.thread_done = threading.Event()
        self.release = threading.Event()


def build_app(flags: Flags) -> Starlette:
    async def slow(request: Request) -> Response:
        try:
            await anyio.sleep(60)
        finally:
            flags.cancelled = True  # a finally only runs here when the sleep is cancelled
        return PlainTextResponse("too late")  # pragma: no cover

    async def fast(request: Request) -> Response:
        return PlainTextResponse("ok")

    def blocking(request: Request) -> Response:
        # A sync endpoint: Starlette runs it in a worker thread, which nothing can interrupt.
        flags.release.wait(30)
        flags.thread_done.set()
        return PlainTextResponse("late sync answer")

    async def upload(request: Request) -> Response:
        try:
            body = await request.body()
        finally:
            flags.cancelled = True
        return PlainTextResponse(f"{len(body)} bytes")

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            try:
                for index in range(4):
                    yield f"chunk {index}\n".encode()
                    await anyio.sleep(BOUND)  # the whole stream lasts well past the request bound
                flags.finished = True
            finally:
                flags.cancelled = not flags.finished

        return StreamingResponse(chunks(), media_type="text/plain")

    async def boom(request: Request) -> Response:
        raise RuntimeError("app failure")

    return Starlette(
        routes=[
            Route("/slow", slow),
            Route("/fast", fast),
            Route("/blocking", blocking),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/boom", boom),
        ]
    )


def hardened(flags: Flags, **options: Any) -> ASGIApp:
    """The app under the header contract (for the request id) and the timeout."""
    options.setdefault("request_timeout", BOUND)
    options.setdefault("body_timeout", BOUND)
    return hk.HeaderContractMiddleware(TimeoutMiddleware(build_app(flags), **options))


# -- 504 ---------------------------------------------------------------------------


async def test_slow_async_endpoint_gets_504_problem_with_the_request_id_and_is_cancelled() -> None:
    flags = Flags()
    began = anyio.current_time()
    result = await call(hardened(flags), "/slow")
    assert result.status == 504
    problem = result.problem()
    assert problem["status"] == 504 and problem["title"] == "Gateway Timeout"
    assert problem["request_id"] == result.headers["x-request-id"]
    assert flags.cancelled, "the endpoint's finally did not run: its work was not cancelled"
    assert result.answered_at is not None and result.answered_at - began >= BOUND


async def test_alone_the_504_carries_the_clients_valid_request_id() -> None:
    flags = Flags()
    app = TimeoutMiddleware(build_app(flags), request_timeout=BOUND)
    for sent, expected in ((b"trace-7", "trace-7"), (b"bad id\r\nx: y", None)):
        scope, receive = _scope_for("/slow")
        scope["headers"] = [(b"x-request-id", sent)]
        result = Exchange()
        await app(scope, receive, _recorder(result))
        assert result.problem().get("request_id") == expected


async def test_fast_endpoint_passes_through_untouched() -> None:
    flags = Flags()
    result = await call(hardened(flags), "/fast")
    assert (result.status, result.body) == (200, b"ok")


async def test_sync_endpoint_gets_504_while_its_thread_runs_and_the_loop_keeps_serving() -> None:
    flags = Flags()
    app = hardened(flags)
    slow = Exchange()
    async with anyio.create_task_group() as group:

        async def blocked_request() -> None:
            await call(app, "/blocking", exchange=slow)

        group.start_soon(blocked_request)
        with anyio.fail_after(20):
            await slow.complete.wait()
        assert slow.status == 504
        assert not flags.thread_done.is_set(), "the 504 waited for the thread"
        # The worker thread is still blocked, yet the event loop answers others.
        other = await call(app, "/fast")
        assert (other.status, other.body) == (200, b"ok")
        assert not flags.thread_done.is_set()
        flags.release.set()
    with anyio.fail_after(20):  # bounded: the thread, then (asyncio) the task left behind, end
        while not flags.thread_done.is_set() or _DETACHED:
            await anyio.sleep(0.01)
    # The thread's late answer was dropped: the client got exactly one response.
    assert [m["type"] for m in slow.messages] == ["http.response.start", "http.response.body"]
    assert slow.problem()["status"] == 504


async def test_the_request_ends_at_the_bound_while_a_sync_thread_still_runs(anyio_backend: str) -> None:
    flags = Flags()
    result = Exchange()
    returned = anyio.Event()

    async def request() -> None:
        await call(hardened(flags), "/blocking", exchange=result)
        returned.set()

    async with anyio.create_task_group() as group:
        group.start_soon(request)
        with anyio.fail_after(20):
            await result.complete.wait()
        assert result.status == 504
        if anyio_backend == "asyncio":
            # The ASGI call returns (the server's cycle, the access log line) without the thread.
            with anyio.fail_after(20):
                await returned.wait()
            assert not flags.thread_done.is_set()
            assert len(_DETACHED) == 1
        flags.release.set()
    with anyio.fail_after(20):
        while not flags.thread_done.is_set() or _DETACHED:
            await anyio.sleep(0.01)


async def test_app_returning_without_a_response_is_left_to_the_server() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    result = Exchange()
    await TimeoutMiddleware(silent, request_timeout=BOUND)(*_scope_for("/silent"), _recorder(result))
    assert result.messages == []


async def test_cancelling_the_request_from_outside_cancels_the_app() -> None:
    flags = Flags()
    with anyio.move_on_after(BOUND) as outer:
        await call(TimeoutMiddleware(build_app(flags), request_timeout=30), "/slow")
    assert outer.cancelled_caught
    with anyio.fail_after(10):  # the app's task ends on its own schedule: wait (bounded) for its finally
        while not flags.cancelled:
            await anyio.sleep(0.01)


async def test_a_failure_after_the_504_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def failing(request: Request) -> Response:
        release.wait(30)
        raise RuntimeError("the slow call failed in the end")

    app = TimeoutMiddleware(Starlette(routes=[Route("/", failing)]), request_timeout=BOUND)
    result = Exchange()
    with caplog.at_level(logging.WARNING, logger="hardenkit.timeouts"):
        async with anyio.create_task_group() as group:

            async def request() -> None:
                await call(app, "/", exchange=result)

            group.start_soon(request)
            with anyio.fail_after(20):
                await result.complete.wait()
            release.set()
        with anyio.fail_after(20):
            while _DETACHED:
                await anyio.sleep(0.01)
    assert result.status == 504
    assert any("raised after its timeout answer" in r.getMessage() for r in caplog.records)


async def test_app_exception_propagates_as_itself() -> None:
    flags = Flags()
    with pytest.raises(RuntimeError, match="app failure"):
        await call(TimeoutMiddleware(build_app(flags), request_timeout=BOUND), "/boom")


# -- 408 ---------------------------------------------------------------------------


async def test_slow_body_gets_408_and_the_reader_is_cancelled() -> None:
    flags = Flags()
    result = await call(
        hardened(flags, request_timeout=30), "/upload", method="POST", chunks=[b"a", b"b"], stall_after=1
    )
    assert result.status == 408
    assert result.headers["connection"] == "close"
    problem = result.problem()
    assert problem["status"] == 408 and problem["request_id"] == result.headers["x-request-id"]
    assert flags.cancelled


async def test_request_deadline_passing_while_the_body_is_awaited_is_the_clients_fault() -> None:
    flags = Flags()
    result = await call(
        hardened(flags, request_timeout=BOUND, body_timeout=30),
        "/upload",
        method="POST",
        chunks=[b"a", b"b"],
        stall_after=1,
    )
    assert result.status == 408


async def test_a_body_late_after_the_response_started_ends_the_exchange() -> None:
    cancelled = False

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancelled
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while (await receive()).get("more_body", False):
                await send({"type": "http.response.body", "body": b".", "more_body": True})
        finally:
            cancelled = True
        await send({"type": "http.response.body", "body": b""})  # pragma: no cover

    result = await call(
        TimeoutMiddleware(echo, body_timeout=BOUND),
        "/",
        method="POST",
        chunks=[b"a", b"b", b"c"],
        stall_after=2,
    )
    assert result.status == 200 and cancelled
    assert not result.complete.is_set()


async def test_a_body_sent_in_time_reaches_the_app() -> None:
    flags = Flags()
    result = await call(hardened(flags), "/upload", method="POST", chunks=[b"abc", b"de"])
    assert (result.status, result.body) == (200, b"5 bytes")


# -- streaming ---------------------------------------------------------------------


async def test_started_stream_continues_past_the_request_bound() -> None:
    flags = Flags()
    result = await call(hardened(flags), "/stream")
    assert result.status == 200
    assert result.body == b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    assert flags.finished and not flags.cancelled


async def test_stream_timeout_bounds_the_whole_stream() -> None:
    flags = Flags()
    scope, receive = _scope_for("/stream")
    result = Exchange()
    await hardened(flags, request_timeout=30, stream_timeout=BOUND * 1.5)(scope, receive, _recorder(result))
    assert result.status == 200
    assert flags.cancelled and not flags.finished
    assert not result.complete.is_set(), "a cut stream must not look complete to the client"
    assert scope["hardenkit.timeout"] == "stream"


# -- paths, other scopes, options --------------------------------------------------


async def test_excluded_paths_are_not_bounded() -> None:
    flags = Flags()
    result = await call(hardened(flags, exclude_paths=["/upload"]), "/upload", method="POST", chunks=[b"x"])
    assert result.status == 200
    with anyio.move_on_after(BOUND * 3):
        # Unbounded: the stalled upload is still waiting when the test gives up on it.
        await call(
            hardened(flags, exclude_paths=["/upload"]),
            "/upload",
            method="POST",
            chunks=[b"x", b"y"],
            stall_after=1,
        )
        raise AssertionError("an excluded path was answered")  # pragma: no cover


async def test_excluding_the_root_leaves_every_path_unbounded() -> None:
    flags = Flags()
    with anyio.move_on_after(BOUND * 3) as waited:
        await call(hardened(flags, exclude_paths=["/"]), "/slow")
    assert waited.cancelled_caught  # nobody answered: the client gave up first


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await anyio.sleep(BOUND * 2)

    middleware = TimeoutMiddleware(app, request_timeout=BOUND / 4)
    for kind in ("lifespan", "websocket"):
        await middleware({"type": kind}, _never, _discard)
    assert seen == ["lifespan", "websocket"]


@pytest.mark.parametrize(
    "options",
    [
        {"request_timeout": 0},
        {"request_timeout": -1},
        {"body_timeout": float("nan")},
        {"stream_timeout": "10"},
        {"request_timeout": True},
        {"exclude_paths": "/upload"},
        {"exclude_paths": ["upload"]},
    ],
)
def test_bad_options_say_what_to_write(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="give|must be a path"):
        TimeoutMiddleware(build_app(Flags()), **options)


def test_kit_reads_the_environment_and_places_the_timeout_inside_the_access_log() -> None:
    kit = hk.Kit.from_env(
        {"HARDENKIT_TIMEOUT_REQUEST_TIMEOUT": "0.2", "HARDENKIT_TIMEOUT_EXCLUDE_PATHS": "/a,/b"}
    )
    kit.register(TimeoutMiddleware).register(hk.AccessLogMiddleware).register(hk.RateLimitMiddleware)
    stack = kit.describe().splitlines()
    assert [line.split()[0] for line in stack[2:5]] == ["access_log", "timeout", "ratelimit"]
    assert "request_timeout=0.2" in kit.describe() and "exclude_paths=['/a', '/b']" in kit.describe()
    with pytest.raises(ConfigurationError, match="HARDENKIT_TIMEOUT_REQUEST_TIMEOUT"):
        hk.Kit.from_env({"HARDENKIT_TIMEOUT_REQUEST_TIMEOUT": "-3"}).register(TimeoutMiddleware).wrap(
            build_app(Flags())
        )


def test_harden_installs_it_and_the_access_log_counts_the_504(caplog: pytest.LogCaptureFixture) -> None:
    flags = Flags()
    app = hk.harden(build_app(flags), env=False, timeout={"request_timeout": BOUND})
    with caplog.at_level(logging.INFO, logger="hardenkit.access"), TestClient(app) as client:
        response = client.get("/slow")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    access = [r for r in caplog.records if r.name == "hardenkit.access"]
    assert [(getattr(r, "status", None), getattr(r, "request_id", None)) for r in access] == [
        (504, response.headers["x-request-id"])
    ]
    assert flags.cancelled


def test_harden_can_leave_it_out() -> None:
    with_it = hk.Kit().register(TimeoutMiddleware)
    assert "TimeoutMiddleware" in with_it.describe()
    app = hk.harden(build_app(Flags()), env=False, timeout=False)
    assert not any(m.cls is TimeoutMiddleware for m in app.user_middleware)
    app = hk.harden(build_app(Flags()), env=False)
    assert any(m.cls is TimeoutMiddleware for m in app.user_middleware)


# -- helpers -----------------------------------------------------------------------


def _scope_for(path: str) -> tuple[Scope, Receive]:
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    return scope, receive


def _recorder(exchange: Exchange) -> Send:
    async def send(message: Message) -> None:
        exchange.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            exchange.complete.set()

    return send


async def _never() -> Message:  # pragma: no cover - the pass-through apps never read
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def _discard(message: Message) -> None:  # pragma: no cover
    return None


def test_a_body_produced_slowly_through_the_test_client_gets_408() -> None:
    flags = Flags()

    def slow_body() -> Any:
        for _ in range(3):
            time.sleep(BOUND)  # blocks the test client's event loop: no deadline can fire meanwhile
            yield b"x"

    app = hardened(flags, request_timeout=30)
    response = TestClient(app).post("/upload", content=slow_body())
    assert response.status_code == 408
    assert response.json()["request_id"] == response.headers["x-request-id"]
