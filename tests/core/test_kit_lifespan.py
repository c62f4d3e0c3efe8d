"""The kit root answers the ASGI lifespan protocol for apps that do not support it.

Django's ASGI handler raises on a lifespan scope, minimal apps return at once,
some send ``lifespan.startup.failed`` without reading the startup event: in each
case the server must still see a complete startup and shutdown, and the kit's
hooks (the health probes' signal handling and drain) must run. An app that does
support lifespan keeps its own, and a real startup failure still reaches the server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hardenkit as hk
from hardenkit._core.kit import Wiring, _KitRoot
from hardenkit.health import HealthProbeMiddleware
from support import asgi_request

pytestmark = pytest.mark.anyio

LIFESPAN_SCOPE: dict[str, Any] = {
    "type": "lifespan",
    "asgi": {"version": "3.0", "spec_version": "2.0"},
    "state": {},
}

# -- apps that reject lifespan, each its own way ---------------------------------------------


async def http_ok(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"app"})


async def raises_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    # What Django's ASGIHandler does.
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await http_ok(send)


async def raises_after_reading_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("lifespan? no")
    await http_ok(send)


async def returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    await http_ok(send)


async def returns_after_reading_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        return
    await http_ok(send)


async def fails_without_reading_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await send({"type": "lifespan.startup.failed", "message": "lifespan is not supported"})
        return
    await http_ok(send)


REJECTING_APPS = [
    raises_at_once,
    raises_after_reading_startup,
    returns_at_once,
    returns_after_reading_startup,
    fails_without_reading_startup,
]


# -- the server's side of one lifespan scope ----------------------------------------------------


class Server:
    """Plays the server: sends startup, waits for the answer, then (when told) sends shutdown."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.sent: list[str] = []  # what the app (the kit root) sent, by type
        self.stop = anyio.Event()
        self.error: BaseException | None = None
        self.done = anyio.Event()
        self._step = 0

    async def receive(self) -> Message:
        self._step += 1
        if self._step == 1:
            return {"type": "lifespan.startup"}
        while not self.sent:
            await anyio.sleep(0.005)
        if self._step == 2 and self.sent[0] == "lifespan.startup.complete":
            await self.stop.wait()
            return {"type": "lifespan.shutdown"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        self.sent.append(message["type"])

    async def run(self) -> None:
        try:
            await self.app(dict(LIFESPAN_SCOPE), self.receive, self.send)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    async def wait_for(self, message_type: str) -> None:
        with anyio.fail_after(5):
            while message_type not in self.sent and not self.done.is_set():
                await anyio.sleep(0.005)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[Server]:
    server = Server(app)
    async with anyio.create_task_group() as group:
        group.start_soon(server.run)
        await server.wait_for("lifespan.startup.complete")
        yield server
        server.stop.set()
        with anyio.fail_after(5):
            await server.done.wait()


def recording_root(app: ASGIApp) -> tuple[ASGIApp, list[str]]:
    calls: list[str] = []
    wiring = Wiring()

    async def on_startup() -> None:
        calls.append("kit startup")

    wiring.on_startup(on_startup)
    wiring.on_shutdown(lambda: calls.append("kit shutdown"))
    return _KitRoot(app, wiring=wiring), calls


# -- tests ------------------------------------------------------------------------------------


both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])


@both_backends
@pytest.mark.parametrize("app", REJECTING_APPS, ids=lambda app: app.__name__)
async def test_the_kit_answers_lifespan_for_an_app_that_rejects_it(app: ASGIApp) -> None:
    root, calls = recording_root(app)
    async with serving(root) as server:
        assert server.sent == ["lifespan.startup.complete"]
        assert calls == ["kit startup"]
    assert server.error is None
    assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["kit startup", "kit shutdown"]


@both_backends
@pytest.mark.parametrize("app", REJECTING_APPS, ids=lambda app: app.__name__)
async def test_kit_wrap_gives_an_app_without_lifespan_a_graceful_shutdown(app: ASGIApp) -> None:
    root = hk.Kit().register(HealthProbeMiddleware, shutdown_signals=[]).wrap(app)
    async with serving(root):
        assert (await asgi_request(root, "/readyz")).status == 200
        assert (await asgi_request(root, "/")).body == b"app"
    assert (await asgi_request(root, "/readyz")).status == 503  # drained: readiness fails
    assert (await asgi_request(root, "/livez")).status == 200


@pytest.mark.parametrize("app", [raises_at_once, returns_at_once], ids=lambda app: app.__name__)
async def test_harden_gives_an_app_without_lifespan_the_whole_set_and_a_graceful_shutdown(
    app: ASGIApp,
) -> None:
    hardened = hk.harden(app, env=False)
    async with serving(hardened) as server:
        ready = await asgi_request(hardened, "/readyz")
        assert ready.status == 200
        response = await asgi_request(hardened, "/")
        assert (response.status, response.body) == (200, b"app")
        assert "x-request-id" in response.headers
    assert server.error is None
    assert (await asgi_request(hardened, "/readyz")).status == 503


async def test_the_kit_says_once_why_it_answers_lifespan(caplog: pytest.LogCaptureFixture) -> None:
    root, _ = recording_root(raises_at_once)
    with caplog.at_level(logging.INFO, logger="hardenkit.kit"):
        async with serving(root):
            pass
    messages = [record.getMessage() for record in caplog.records if record.name == "hardenkit.kit"]
    assert len(messages) == 1
    assert "does not support the ASGI lifespan protocol" in messages[0]
    assert "ValueError" in messages[0]


async def test_an_app_with_lifespan_keeps_its_own_around_the_kit_hooks() -> None:
    calls: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        calls.append("app startup")
        yield
        calls.append("app shutdown")

    wiring = Wiring()
    wiring.on_startup(lambda: calls.append("kit startup"))
    wiring.on_shutdown(lambda: calls.append("kit shutdown"))
    async with serving(_KitRoot(Starlette(lifespan=lifespan), wiring=wiring)) as server:
        pass
    assert server.error is None
    assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # The kit's shutdown hooks (readiness fails, drain) run before the app's own shutdown.
    assert calls == ["app startup", "kit startup", "kit shutdown", "app shutdown"]


async def test_a_real_startup_failure_still_reaches_the_server() -> None:
    database_down = len(LIFESPAN_SCOPE) > 0

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if database_down:
            raise ConnectionError("database unreachable")
        yield  # pragma: no cover

    root, calls = recording_root(Starlette(lifespan=lifespan))
    server = Server(root)
    with anyio.fail_after(5):
        await server.run()
    assert server.sent == ["lifespan.startup.failed"]
    assert isinstance(server.error, ConnectionError)
    assert calls == []  # never started, so the kit's startup hooks did not run


async def test_an_app_that_reads_startup_and_reports_failure_stops_the_server() -> None:
    async def fails_after_reading(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no config"})

    root, calls = recording_root(fails_after_reading)
    server = Server(root)
    with anyio.fail_after(5):
        await server.run()
    assert (server.sent, server.error, calls) == (["lifespan.startup.failed"], None, [])


Behaviour = Callable[[Receive, Send], Awaitable[None]]


async def _started_then_returns(receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.complete"})


async def _started_then_raises(receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.complete"})
    raise RuntimeError("background task died")


@pytest.mark.parametrize("behaviour", [_started_then_returns, _started_then_raises])
async def test_an_app_that_leaves_after_startup_still_gets_a_shutdown(
    behaviour: Behaviour, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await behaviour(receive, send)

    root, calls = recording_root(app)
    with caplog.at_level(logging.ERROR, logger="hardenkit.kit"):
        async with serving(root) as server:
            pass
    assert server.error is None
    assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["kit startup", "kit shutdown"]
    errors = [record for record in caplog.records if record.name == "hardenkit.kit"]
    assert len(errors) == (1 if behaviour is _started_then_raises else 0)


async def test_an_error_in_the_apps_own_shutdown_reaches_the_server() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("shutdown broke")

    root, calls = recording_root(app)
    async with serving(root) as server:
        pass
    assert isinstance(server.error, RuntimeError)
    assert calls == ["kit startup", "kit shutdown"]


async def test_an_app_that_reads_shutdown_and_returns_gets_its_completion_sent() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()

    root, calls = recording_root(app)
    async with serving(root) as server:
        pass
    assert (server.error, server.sent) == (None, ["lifespan.startup.complete", "lifespan.shutdown.complete"])
    assert calls == ["kit startup", "kit shutdown"]


@pytest.mark.parametrize("app", [raises_at_once, returns_at_once], ids=lambda app: app.__name__)
async def test_standalone_health_answers_lifespan_for_an_app_that_rejects_it(app: ASGIApp) -> None:
    health = HealthProbeMiddleware(app, shutdown_signals=[])
    async with serving(health) as server:
        assert (await asgi_request(health, "/readyz")).status == 200
    assert server.error is None
    assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert health.draining
    assert (await asgi_request(health, "/readyz")).status == 503


async def test_http_and_websocket_scopes_go_straight_through_the_root() -> None:
    root, calls = recording_root(raises_at_once)
    response = await asgi_request(root, "/")
    assert (response.status, response.body, calls) == (200, b"app", [])


def test_testclient_starts_and_stops_a_wrapped_app_that_raises_on_lifespan() -> None:
    from starlette.testclient import TestClient

    wrapped = hk.Kit().register(HealthProbeMiddleware, shutdown_signals=[]).wrap(raises_at_once)
    with TestClient(wrapped) as client:  # used to raise the app's ValueError here
        assert client.get("/readyz").status_code == 200
        assert client.get("/").text == "app"
    assert client.get("/readyz").status_code == 503
