from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hardenkit as hk
from hardenkit.errors import ConfigurationError
from hardenkit.health import (
    HEALTH_JSON,
    Check,
    HealthProbeMiddleware,
    disk_space,
    redis_ping,
    tcp_connect,
    writable_dir,
)
from support import RedisServer, asgi_request

both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])

# -- a small in-process ASGI driver (no sockets) ------------------------------------------


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def call(app: ASGIApp, path: str, method: str = "GET") -> Answer:
    response = await asgi_request(app, path, method=method)
    return Answer(response.status, response.headers, response.body)


class Lifespan:
    """Drives the ASGI lifespan protocol of an app from a task."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.to_app: list[Message] = []
        self.from_app: list[Message] = []
        self.wakeup = anyio.Event()

    async def run(self) -> None:
        async def receive() -> Message:
            while not self.to_app:
                self.wakeup = anyio.Event()
                await self.wakeup.wait()
            return self.to_app.pop(0)

        async def send(message: Message) -> None:
            self.from_app.append(message)

        await self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    async def say(self, message_type: str, expect: str) -> None:
        self.to_app.append({"type": message_type})
        self.wakeup.set()
        with anyio.fail_after(10):
            while not any(message["type"] == expect for message in self.from_app):
                await anyio.sleep(0.01)


async def endpoint_ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("app")


def plain_app() -> Starlette:
    return Starlette(routes=[Route("/", endpoint_ok), Route("/readyz-app", endpoint_ok)])


class Counter:
    """A check function that counts its calls and returns what it is told to."""

    def __init__(self, result: Any = True) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class AsyncCounter(Counter):
    async def __call__(self) -> Any:
        return super().__call__()


class AwaitableThing:
    """An awaitable that is not a coroutine, returned by a sync check by mistake."""

    def __await__(self) -> Iterator[None]:
        yield None  # pragma: no cover - never awaited


def probes(*checks: Check, **options: Any) -> HealthProbeMiddleware:
    return HealthProbeMiddleware(plain_app(), checks=checks, **options)


# -- liveness, shape, status codes ---------------------------------------------------------


@pytest.mark.anyio
async def test_liveness_passes_without_running_any_check() -> None:
    counter = Counter(False)
    mw = probes(Check("db", counter), version="1.2.3", release_id="1.2.3-abc", service_id="svc-1")
    answer = await call(mw, "/livez")
    assert answer.status == 200
    assert answer.headers["content-type"] == HEALTH_JSON
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "status": "pass",
        "version": "1.2.3",
        "releaseId": "1.2.3-abc",
        "serviceId": "svc-1",
    }
    assert counter.calls == 0


def _result(status: str) -> Any:
    return {"pass": True, "warn": {"status": "warn"}, "fail": False}[status]


def _expected(rows: list[tuple[str, bool]]) -> str:
    rank = {"pass": 0, "warn": 1, "fail": 2}
    worst = "pass"
    for status, critical in rows:
        effective = "warn" if status == "fail" and not critical else status
        worst = max(worst, effective, key=rank.__getitem__)
    return worst


COMBINATIONS = [
    list(rows)
    for count in (0, 1, 2)
    for rows in itertools.product(itertools.product(("pass", "warn", "fail"), (True, False)), repeat=count)
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "rows", COMBINATIONS, ids=lambda rows: "+".join(f"{s}{'' if c else '~'}" for s, c in rows)
)
async def test_every_combination_of_pass_warn_fail_has_the_right_status_and_code(
    rows: list[tuple[str, bool]],
) -> None:
    checks = [
        Check(f"c{index}", Counter(_result(status)), critical=crit)
        for index, (status, crit) in enumerate(rows)
    ]
    mw = probes(*checks)
    expected = _expected(rows)
    ready, health = await call(mw, "/readyz"), await call(mw, "/healthz")
    for answer in (ready, health):
        assert answer.status == (503 if expected == "fail" else 200)
        assert answer.headers["content-type"] == HEALTH_JSON
        assert answer.json()["status"] == expected
    details = health.json()["checks"]
    assert list(details) == [f"c{index}" for index in range(len(rows))]
    for index, (status, _) in enumerate(rows):
        (entry,) = details[f"c{index}"]
        assert entry["status"] == status  # each check reports its own status; only the total is softened
        assert time.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert "checks" not in ready.json()


@pytest.mark.anyio
async def test_health_entries_carry_measurement_key_component_type_and_observed_value() -> None:
    check = Check(
        "db", lambda: {"status": "pass", "observedValue": 12.5, "observedUnit": "ms"},
        component_type="datastore", measurement="responseTime",
    )  # fmt: skip
    answer = await call(probes(check, version="7"), "/healthz")
    document = answer.json()
    assert document["version"] == "7"
    (entry,) = document["checks"]["db:responseTime"]
    assert entry["componentType"] == "datastore"
    assert entry["observedValue"] == 12.5
    assert entry["observedUnit"] == "ms"
    assert entry["status"] == "pass"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("result", "status"),
    [(True, "pass"), (None, "pass"), (False, "fail"), ({"status": "bogus"}, "fail"), ({}, "fail"),
     ("ok", "fail"), (1, "fail"), ({"status": "warn", "observedValue": object()}, "warn"),
     (AwaitableThing(), "fail")],
)  # fmt: skip
async def test_return_values_are_interpreted_strictly(result: Any, status: str) -> None:
    check = Check("x", Counter(result))
    answer = await call(probes(check), "/healthz")
    assert answer.json()["checks"]["x"][0]["status"] == status


@pytest.mark.anyio
async def test_observed_values_are_made_json_safe() -> None:
    value = {"shards": [1, (2, 3)], 4: {"nested": object}}
    answer = await call(probes(Check("x", lambda: {"status": "pass", "observedValue": value})), "/healthz")
    observed = answer.json()["checks"]["x"][0]["observedValue"]
    assert observed == {"shards": [1, [2, 3]], "4": {"nested": str(object)}}


@pytest.mark.anyio
async def test_a_sync_check_returning_a_coroutine_fails_with_a_hint() -> None:
    async def coro() -> bool:
        return True  # pragma: no cover - closed unawaited on purpose

    answer = await call(probes(Check("x", lambda: coro())), "/healthz")
    (entry,) = answer.json()["checks"]["x"]
    assert entry["status"] == "fail"
    assert "async def" in entry["output"]


@pytest.mark.anyio
@both_backends
async def test_an_exception_is_a_fail_not_a_500_and_hides_its_details() -> None:
    mw = probes(
        Check("db", Counter(RuntimeError("password=hunter2"))), Check("cache", AsyncCounter(OSError("x")))
    )
    answer = await call(mw, "/healthz")
    assert answer.status == 503
    assert answer.json()["status"] == "fail"
    assert b"hunter2" not in answer.body
    assert answer.json()["checks"]["db"][0]["output"] == "check failed"
    assert answer.json()["checks"]["cache"][0]["output"] == "check failed"


@pytest.mark.anyio
async def test_expose_details_shows_the_exception_and_check_output() -> None:
    mw = probes(
        Check("db", Counter(RuntimeError("refused"))),
        Check("lag", lambda: {"status": "warn", "output": "replica 3s behind"}),
        Check("weird", lambda: "ok"),
        expose_details=True,
    )
    checks = (await call(mw, "/healthz")).json()["checks"]
    assert checks["db"][0]["output"] == "check failed: RuntimeError: refused"
    assert checks["lag"][0]["output"] == "replica 3s behind"
    assert "(str)" in checks["weird"][0]["output"]


@pytest.mark.anyio
async def test_check_output_is_hidden_without_expose_details() -> None:
    mw = probes(Check("lag", lambda: {"status": "warn", "output": "db at 10.0.0.7"}))
    answer = await call(mw, "/healthz")
    assert b"10.0.0.7" not in answer.body


@pytest.mark.anyio
async def test_head_answers_the_same_status_and_headers_with_no_body() -> None:
    mw = probes(Check("db", Counter(False)))
    get, head = await call(mw, "/healthz"), await call(mw, "/healthz", "HEAD")
    assert head.status == get.status == 503
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert head.headers["content-type"] == HEALTH_JSON
    live_head = await call(mw, "/livez", "HEAD")
    assert (live_head.status, live_head.body) == (200, b"")


@pytest.mark.anyio
async def test_other_methods_get_405_problem_json_with_allow() -> None:
    answer = await call(probes(), "/readyz", "POST")
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.anyio
async def test_other_paths_and_scopes_reach_the_app() -> None:
    mw = probes(Check("db", Counter(False)))
    answer = await call(mw, "/readyz-app")
    assert (answer.status, answer.body) == (200, b"app")
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    wrapped = HealthProbeMiddleware(app)
    await wrapped({"type": "websocket", "path": "/readyz"}, _never, _nothing)
    await wrapped({"type": "custom"}, _never, _nothing)
    assert seen == ["websocket", "custom"]


async def _never() -> Message:  # pragma: no cover - never called
    raise AssertionError


async def _nothing(message: Message) -> None:  # pragma: no cover - never called
    raise AssertionError


@pytest.mark.anyio
async def test_paths_can_be_moved_or_turned_off() -> None:
    mw = probes(live_path="/alive", ready_path=None, health_path="/status")
    assert (await call(mw, "/alive")).status == 200
    assert (await call(mw, "/status")).status == 200
    assert (await call(mw, "/readyz")).body == b"Not Found"


# -- timeouts, single flight, caching -------------------------------------------------------


@pytest.mark.anyio
async def test_a_hung_sync_check_fails_on_time_and_never_piles_up_threads() -> None:
    release = threading.Event()
    calls = 0

    def hang() -> bool:
        nonlocal calls
        calls += 1
        release.wait(30)
        return True

    mw = probes(Check("hang", hang, timeout=0.3), Check("ok", Counter(True)), cache_ttl=0)
    try:
        started = time.monotonic()
        answer = await call(mw, "/healthz")
        assert time.monotonic() - started < 0.3 + 5  # did not hang (generous bound)
        assert answer.status == 503
        assert answer.json()["checks"]["hang"][0]["output"] == "timed out after 0.3s"
        threads = threading.active_count()
        for _ in range(100):
            again = await call(mw, "/readyz")
            assert again.status == 503
        assert calls == 1
        assert threading.active_count() <= threads
    finally:
        release.set()
    # Once the stuck thread has ended, the next probe runs the check again.
    with anyio.fail_after(10):
        while mw._states["hang"].thread_busy:
            await anyio.sleep(0.01)
    assert (await call(mw, "/readyz")).status == 200
    assert calls == 2


@pytest.mark.anyio
@both_backends
async def test_a_hung_async_check_is_cancelled_at_its_timeout() -> None:
    cancelled = 0

    async def hang() -> bool:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        finally:
            cancelled += 1
        return True  # pragma: no cover

    mw = probes(Check("hang", hang, timeout=0.2), cache_ttl=0)
    started = time.monotonic()
    answer = await call(mw, "/readyz")
    assert time.monotonic() - started < 0.2 + 5
    assert answer.status == 503
    assert cancelled == 1


@pytest.mark.anyio
@both_backends
async def test_probe_storm_runs_each_check_once_per_cache_ttl() -> None:
    sync_check, async_check = Counter(True), AsyncCounter({"status": "warn"})

    def slow_sync() -> Any:
        time.sleep(0.05)  # long enough that the storm overlaps the run
        return sync_check()

    mw = probes(Check("sync", slow_sync), Check("async", async_check, critical=False), cache_ttl=0.5)
    statuses: list[int] = []

    async def probe() -> None:
        statuses.append((await call(mw, "/readyz")).status)

    async def storm() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(1000):
                group.start_soon(probe)

    await storm()
    assert statuses == [200] * 1000
    assert (sync_check.calls, async_check.calls) == (1, 1)
    await anyio.sleep(0.6)  # past cache_ttl
    await storm()
    assert (sync_check.calls, async_check.calls) == (2, 2)


@pytest.mark.anyio
async def test_results_are_cached_for_cache_ttl_and_cache_control_says_so() -> None:
    counter = Counter(True)
    mw = probes(Check("db", counter), cache_ttl=30)
    for _ in range(5):
        answer = await call(mw, "/readyz")
        assert answer.headers["cache-control"] == "max-age=30"
    await call(mw, "/healthz")
    assert counter.calls == 1
    uncached = probes(Check("db", counter), cache_ttl=0)
    assert (await call(uncached, "/readyz")).headers["cache-control"] == "no-store"
    await call(uncached, "/readyz")
    assert counter.calls == 3


@pytest.mark.anyio
async def test_add_check_takes_effect_on_the_next_probe() -> None:
    mw = probes(cache_ttl=60)
    assert (await call(mw, "/readyz")).status == 200
    mw.add_check("db", Counter(False))
    assert (await call(mw, "/readyz")).status == 503
    mw.add_check(Check("other", Counter(True)))
    assert [check.name for check in mw.checks] == ["db", "other"]


@pytest.mark.anyio
async def test_a_probe_cancelled_before_its_thread_starts_leaves_nothing_busy() -> None:
    counter = Counter(True)
    mw = probes(Check("db", counter), cache_ttl=0)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await call(mw, "/readyz")
    state = mw._states["db"]
    assert (state.thread_busy, state.run, counter.calls) == (False, None, 0)
    assert (await call(mw, "/readyz")).status == 200
    assert counter.calls == 1


@pytest.mark.anyio
async def test_a_probe_cancelled_mid_run_leaves_no_stuck_run() -> None:
    gate = anyio.Event()
    counter = AsyncCounter(True)

    async def slow() -> bool:
        await gate.wait()
        return bool(await counter())

    mw = probes(Check("slow", slow, timeout=10), cache_ttl=0)
    with anyio.move_on_after(0.1):
        await call(mw, "/readyz")
    assert mw._states["slow"].run is None
    gate.set()
    assert (await call(mw, "/readyz")).status == 200


# -- startup ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_readiness_fails_until_startup_checks_have_passed_once() -> None:
    warmup = Counter(False)
    mw = probes(
        Check("warmup", warmup, startup=True),
        Check("db", Counter(True)),
        startup_path="/startupz",
        cache_ttl=0,
    )
    ready = await call(mw, "/readyz")
    assert (ready.status, ready.json()["output"]) == (503, "starting")
    assert (await call(mw, "/startupz")).status == 503
    warmup.result = True
    assert (await call(mw, "/startupz")).status == 200
    calls = warmup.calls
    warmup.result = False  # no longer run once it has passed
    assert (await call(mw, "/readyz")).status == 200
    assert "warmup" not in (await call(mw, "/healthz")).json()["checks"]
    assert warmup.calls == calls


# -- shutdown --------------------------------------------------------------------------------


def slow_app(gate: anyio.Event) -> Starlette:
    async def slow(request: Request) -> PlainTextResponse:
        await gate.wait()
        return PlainTextResponse("done")

    async def forever(request: Request) -> PlainTextResponse:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    return Starlette(routes=[Route("/slow", slow), Route("/forever", forever)])


@pytest.mark.anyio
@both_backends
async def test_lifespan_shutdown_fails_readiness_keeps_liveness_and_waits_for_inflight() -> None:
    gate = anyio.Event()
    mw = HealthProbeMiddleware(slow_app(gate), drain_timeout=30, shutdown_signals=[])
    life = Lifespan(mw)
    results: list[Answer] = []
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        assert (await call(mw, "/readyz")).status == 200

        async def request() -> None:
            results.append(await call(mw, "/slow"))

        group.start_soon(request)
        with anyio.fail_after(5):
            while mw._life.inflight == 0:
                await anyio.sleep(0.01)
        life.to_app.append({"type": "lifespan.shutdown"})
        life.wakeup.set()
        with anyio.fail_after(5):
            while not mw.draining:
                await anyio.sleep(0.01)
        ready, live = await call(mw, "/readyz"), await call(mw, "/livez")
        assert (ready.status, ready.json()["output"], ready.headers["cache-control"]) == (
            503,
            "shutting down",
            "no-store",
        )
        assert (await call(mw, "/healthz")).status == 503
        assert live.status == 200
        assert not any(m["type"] == "lifespan.shutdown.complete" for m in life.from_app)  # still draining
        gate.set()
        with anyio.fail_after(5):
            while not any(m["type"] == "lifespan.shutdown.complete" for m in life.from_app):
                await anyio.sleep(0.01)
    assert results[0].status == 200 and results[0].body == b"done"


@pytest.mark.anyio
@both_backends
async def test_drain_timeout_cancels_requests_that_outlive_it(caplog: pytest.LogCaptureFixture) -> None:
    mw = HealthProbeMiddleware(slow_app(anyio.Event()), drain_timeout=0.2, shutdown_signals=[])
    finished = anyio.Event()

    answers: list[Answer] = []

    async def request() -> None:
        answers.append(await call(mw, "/forever"))
        finished.set()

    async with anyio.create_task_group() as group:
        group.start_soon(request)
        with anyio.fail_after(5):
            while mw._life.inflight == 0:
                await anyio.sleep(0.01)
        with caplog.at_level(logging.WARNING, "hardenkit.health"), anyio.fail_after(10):
            await mw._on_shutdown()
            await finished.wait()
    assert mw._life.inflight == 0
    assert "cancelling 1 in-flight request" in caplog.text
    assert answers[0].status == 503
    assert answers[0].headers["content-type"] == "application/problem+json"
    assert answers[0].json()["detail"] == "the server is shutting down"


async def _cut_by_drain_timeout(mw: HealthProbeMiddleware, path: str) -> Answer:
    """Start a request to ``path``, run the lifespan shutdown with its drain_timeout; the answer."""
    answers: list[Answer] = []

    async def request() -> None:
        answers.append(await call(mw, path))

    async with anyio.create_task_group() as group:
        group.start_soon(request)
        await wait_until(lambda: mw._life.inflight == 1)
        with anyio.fail_after(10):
            await mw._on_shutdown()
    assert mw._life.inflight == 0 and not mw._life.tasks and not mw._life.cut
    return answers[0]


@pytest.mark.anyio
async def test_drain_timeout_cuts_a_sync_endpoint_running_in_a_thread() -> None:
    release = threading.Event()

    def blocking(request: Request) -> PlainTextResponse:
        release.wait(10)
        return PlainTextResponse("late")

    mw = HealthProbeMiddleware(
        Starlette(routes=[Route("/", blocking)]), drain_timeout=0.1, shutdown_signals=[]
    )
    try:
        answer = await _cut_by_drain_timeout(mw, "/")
    finally:
        release.set()
    assert answer.status == 503 and answer.json()["detail"] == "the server is shutting down"


@pytest.mark.anyio
@both_backends
async def test_drain_timeout_ends_a_response_that_started_without_a_second_start() -> None:
    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first"
            await anyio.sleep_forever()
            yield b"never"  # pragma: no cover

        return StreamingResponse(parts())

    mw = HealthProbeMiddleware(Starlette(routes=[Route("/", stream)]), drain_timeout=0.1, shutdown_signals=[])
    answer = await _cut_by_drain_timeout(mw, "/")
    assert (answer.status, answer.body) == (200, b"first")  # cut short; no 503 after the 200 had started


@pytest.mark.anyio
@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in Python 3.11")
async def test_an_app_that_swallows_the_drain_cancellation_leaves_its_task_uncancelled() -> None:
    seen: list[int] = []

    async def stubborn(request: Request) -> PlainTextResponse:
        try:
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            pass  # a badly behaved app
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # still schedulable: not cancelled again
        seen.append(task.cancelling())  # type: ignore[attr-defined,unused-ignore]  # 3.11+
        return PlainTextResponse("swallowed")

    mw = HealthProbeMiddleware(
        Starlette(routes=[Route("/", stubborn)]), drain_timeout=0.1, shutdown_signals=[]
    )
    answer = await _cut_by_drain_timeout(mw, "/")
    assert (answer.status, answer.body) == (200, b"swallowed")
    assert seen == [1]  # the middleware takes its cancel back once the app returns


@pytest.mark.anyio
async def test_a_cancellation_that_is_not_the_drains_propagates() -> None:
    """The server cancelling a request (client gone, its own shutdown) is not the probes' to swallow."""
    mw = HealthProbeMiddleware(slow_app(anyio.Event()), drain_timeout=30, shutdown_signals=[])
    outcome: list[str] = []

    async def request() -> None:
        try:
            await call(mw, "/forever")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("returned")  # pragma: no cover

    task = asyncio.get_running_loop().create_task(request())
    await wait_until(lambda: mw._life.inflight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["cancelled"]
    assert mw._life.inflight == 0 and not mw._life.tasks


@pytest.mark.anyio
@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 folds a Task.cancel() made in the same loop iteration as the drain's into the "
    "drain's one CancelledError, and has no Task.cancelling() count to tell that a second cancel was made",
)
async def test_cancelled_by_the_drain_and_by_the_server_at_once_propagates() -> None:
    mw = HealthProbeMiddleware(slow_app(anyio.Event()), drain_timeout=0.05, shutdown_signals=[])

    async def request() -> None:
        await call(mw, "/forever")

    task = asyncio.get_running_loop().create_task(request())
    await wait_until(lambda: mw._life.inflight == 1)
    mw._cancel_stragglers()  # the drain's cancel...
    task.cancel()  # ...and the server's, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mw._life.inflight == 0 and not mw._life.tasks and not mw._life.cut


@pytest.mark.anyio
async def test_cancelled_by_the_server_then_by_the_drain_at_once_propagates() -> None:
    mw = HealthProbeMiddleware(slow_app(anyio.Event()), drain_timeout=0.05, shutdown_signals=[])

    async def request() -> None:
        await call(mw, "/forever")

    task = asyncio.get_running_loop().create_task(request())
    await wait_until(lambda: mw._life.inflight == 1)
    task.cancel()  # the server's cancel...
    mw._cancel_stragglers()  # ...and the drain's, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mw._life.inflight == 0 and not mw._life.tasks and not mw._life.cut


@pytest.mark.anyio
@pytest.mark.skipif(sys.version_info >= (3, 11), reason="the Python 3.10 limitation; 3.11+ propagates")
async def test_on_python_310_a_server_cancel_folded_into_the_drains_ends_the_request_as_the_drains() -> None:
    """What 3.10 can do: the folded cancel is taken for the drain's; the request still ends, answered 503."""
    mw = HealthProbeMiddleware(slow_app(anyio.Event()), drain_timeout=0.05, shutdown_signals=[])

    async def request() -> Answer:
        return await call(mw, "/forever")

    task = asyncio.get_running_loop().create_task(request())
    await wait_until(lambda: mw._life.inflight == 1)
    mw._cancel_stragglers()
    task.cancel()
    with anyio.fail_after(5):
        answer = await task
    assert answer.status == 503 and answer.json()["detail"] == "the server is shutting down"
    assert mw._life.inflight == 0 and not mw._life.tasks and not mw._life.cut


# -- signals (in this process, with SIGUSR1 standing in for SIGTERM) ----------------------------


class FakeServer:
    """Stands for uvicorn: its handler records the signals it gets."""

    def __init__(self) -> None:
        self.got: list[int] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.got.append(sig)


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    original = signal.signal(signal.SIGUSR1, server.handle_exit)
    try:
        yield server
    finally:
        signal.signal(signal.SIGUSR1, original)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.mark.anyio
@both_backends
async def test_signal_flips_readiness_at_once_and_chains_to_the_server_after_the_delay(
    fake_server: FakeServer,
) -> None:
    mw = HealthProbeMiddleware(
        plain_app(), shutdown_delay=0.3, drain_timeout=0.1, shutdown_signals=["SIGUSR1"]
    )
    life = Lifespan(mw)
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        assert signal.getsignal(signal.SIGUSR1) != fake_server.handle_exit
        signal.raise_signal(signal.SIGUSR1)
        assert mw.draining  # flipped in the handler itself
        assert (await call(mw, "/readyz")).status == 503
        assert (await call(mw, "/livez")).status == 200
        assert fake_server.got == []  # the server is let go only after shutdown_delay
        await wait_until(lambda: fake_server.got == [signal.SIGUSR1])
        assert signal.getsignal(signal.SIGUSR1) == fake_server.handle_exit
        await anyio.sleep(0.2)  # past drain_timeout: nothing was in flight, nothing to cancel
        await life.say("lifespan.shutdown", "lifespan.shutdown.complete")


@pytest.mark.anyio
async def test_a_second_signal_lets_the_server_go_at_once_and_only_once(fake_server: FakeServer) -> None:
    mw = HealthProbeMiddleware(plain_app(), shutdown_delay=0.5, shutdown_signals=["USR1"])
    life = Lifespan(mw)
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        signal.raise_signal(signal.SIGUSR1)
        await anyio.sleep(0.05)
        assert fake_server.got == []
        signal.raise_signal(signal.SIGUSR1)
        await wait_until(lambda: fake_server.got == [signal.SIGUSR1], timeout=0.4)
        await anyio.sleep(0.6)  # the delayed release comes and finds the work done
        assert fake_server.got == [signal.SIGUSR1]
        await life.say("lifespan.shutdown", "lifespan.shutdown.complete")


@pytest.mark.anyio
async def test_a_handler_installed_after_ours_is_kept_and_the_server_still_gets_the_signal(
    fake_server: FakeServer,
) -> None:
    mw = HealthProbeMiddleware(plain_app(), shutdown_delay=0.1, shutdown_signals=["SIGUSR1", "SIGUSR2"])
    other = FakeServer()
    previous_usr2 = signal.signal(signal.SIGUSR2, other.handle_exit)
    life = Lifespan(mw)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(life.run)
            await life.say("lifespan.startup", "lifespan.startup.complete")
            mw._on_startup()  # a second startup does not hook twice
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGUSR2)  # already draining: released at once
            later = FakeServer()
            signal.signal(signal.SIGUSR1, later.handle_exit)
            await wait_until(lambda: fake_server.got == [signal.SIGUSR1] and other.got == [signal.SIGUSR2])
            assert signal.getsignal(signal.SIGUSR1) == later.handle_exit
            assert signal.getsignal(signal.SIGUSR2) == other.handle_exit
            await life.say("lifespan.shutdown", "lifespan.shutdown.complete")
    finally:
        signal.signal(signal.SIGUSR2, previous_usr2)


SIG_DFL_SCRIPT = """
import os, signal, sys, anyio
from hardenkit.health import HealthProbeMiddleware

async def app(scope, receive, send):
    message = await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()

async def main():
    if len(sys.argv) > 2:
        signal.signal(getattr(signal, sys.argv[1]), signal.SIG_IGN)
    mw = HealthProbeMiddleware(app, shutdown_delay=0.2, shutdown_signals=[sys.argv[1]])
    messages = [{"type": "lifespan.startup"}]
    async def receive():
        if messages:
            return messages.pop()
        await anyio.sleep_forever()
    async def send(message):
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        print("draining" if mw.draining else "not draining", flush=True)
    with anyio.move_on_after(2):
        await mw({"type": "lifespan"}, receive, send)
    print("still alive", flush=True)

anyio.run(main)
"""


@pytest.mark.parametrize(("sig", "ignored"), [("SIGTERM", False), ("SIGUSR1", True)])
def test_with_no_server_handler_the_default_action_follows_after_the_delay(sig: str, ignored: bool) -> None:
    import subprocess
    import sys

    args = [sys.executable, "-c", SIG_DFL_SCRIPT, sig, *(["ignore"] if ignored else [])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[0] == "draining"
    if ignored:
        assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "still alive")
    else:
        assert result.returncode == -signal.SIGTERM
        assert "still alive" not in result.stdout


@pytest.mark.anyio
async def test_drain_deadline_starts_when_the_server_is_let_go(fake_server: FakeServer) -> None:
    mw = HealthProbeMiddleware(
        slow_app(anyio.Event()), shutdown_delay=0, drain_timeout=0.2, shutdown_signals=["SIGUSR1"]
    )
    life = Lifespan(mw)
    outcome: list[int] = []

    async def request() -> None:
        outcome.append((await call(mw, "/forever")).status)

    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        group.start_soon(request)
        await wait_until(lambda: mw._life.inflight == 1)
        signal.raise_signal(signal.SIGUSR1)
        await wait_until(lambda: outcome == [503])  # uvicorn would still be waiting for it
        assert fake_server.got == [signal.SIGUSR1]
        await life.say("lifespan.shutdown", "lifespan.shutdown.complete")


@pytest.mark.anyio
async def test_lifespan_shutdown_without_a_signal_restores_the_server_handler(
    fake_server: FakeServer,
) -> None:
    mw = HealthProbeMiddleware(plain_app(), shutdown_signals=["SIGUSR1"])
    life = Lifespan(mw)
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        assert signal.getsignal(signal.SIGUSR1) != fake_server.handle_exit
        await life.say("lifespan.shutdown", "lifespan.shutdown.complete")
    assert signal.getsignal(signal.SIGUSR1) == fake_server.handle_exit
    assert fake_server.got == []


@pytest.mark.anyio
async def test_a_signal_owned_by_the_event_loop_is_left_alone() -> None:
    loop = asyncio.get_running_loop()
    got: list[str] = []
    loop.add_signal_handler(signal.SIGUSR2, got.append, "loop")
    try:
        mw = HealthProbeMiddleware(plain_app(), shutdown_signals=[signal.SIGUSR2])
        life = Lifespan(mw)
        async with anyio.create_task_group() as group:
            group.start_soon(life.run)
            await life.say("lifespan.startup", "lifespan.startup.complete")
            assert mw._life.hooked == {}
            await life.say("lifespan.shutdown", "lifespan.shutdown.complete")
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)


def test_no_signal_is_hooked_outside_the_main_thread(fake_server: FakeServer) -> None:
    app = plain_app()
    app.add_middleware(HealthProbeMiddleware, shutdown_signals=["SIGUSR1"])
    with TestClient(app) as client:  # runs the app in a thread of its own
        assert signal.getsignal(signal.SIGUSR1) == fake_server.handle_exit
        assert client.get("/readyz").status_code == 200
        assert client.get("/").text == "app"


# -- with the kit -------------------------------------------------------------------------------


class Recorder:
    """A stand-in for the inner components: records every path that reaches it."""

    hardenkit_slot: ClassVar[str] = "ratelimit"
    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp, *, kit: hk.Wiring | None = None) -> None:
        self.app = app
        self.kit = kit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            type(self).seen.append(scope["path"])
        await self.app(scope, receive, send)


class LogRecorder(Recorder):
    hardenkit_slot: ClassVar[str] = "access_log"
    seen: ClassVar[list[str]] = []


def test_in_a_kit_probes_are_declared_answered_and_never_reach_inner_components() -> None:
    Recorder.seen.clear()
    LogRecorder.seen.clear()
    app = plain_app()
    kit = (
        hk.Kit()
        .register(Recorder)
        .register(LogRecorder)
        .register(HealthProbeMiddleware, startup_path="/startupz")
    )
    kit.install(app)
    with TestClient(app) as client:
        for path in ("/livez", "/readyz", "/healthz", "/startupz"):
            assert client.get(path).headers["content-type"] == HEALTH_JSON
        assert client.get("/").text == "app"
    assert Recorder.seen == LogRecorder.seen == ["/"]
    root = kit.wrap(plain_app())
    wiring: hk.Wiring = root.wiring  # type: ignore[attr-defined]
    assert {"/livez", "/readyz", "/healthz", "/startupz"} <= wiring.answered_paths
    assert all(wiring.is_answered(path) for path in ("/livez", "/readyz", "/healthz"))


@pytest.mark.anyio
async def test_in_a_kit_the_shutdown_hook_flips_readiness() -> None:
    root = hk.Kit().register(HealthProbeMiddleware, shutdown_signals=[]).wrap(plain_app())
    life = Lifespan(root)
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("lifespan.startup", "lifespan.startup.complete")
        assert (await call(root, "/readyz")).status == 200
        await life.say("lifespan.shutdown", "lifespan.shutdown.complete")
    assert (await call(root, "/readyz")).status == 503
    assert (await call(root, "/livez")).status == 200


def _state(healthy: bool) -> dict[str, Any]:
    return {"healthy": healthy, "mode": "primary" if healthy else "fallback",
            "on_storage_error": "memory", "since": None if healthy else 1700000000.0,
            "storage": "redis://:secret@db:6379/0"}  # fmt: skip


@pytest.mark.anyio
async def test_rate_limiter_storage_state_shows_in_readiness_as_warn_while_on_fallback() -> None:
    root = hk.Kit().register(HealthProbeMiddleware, cache_ttl=0).wrap(plain_app())
    wiring: hk.Wiring = root.wiring  # type: ignore[attr-defined]
    assert (await call(root, "/healthz")).json() == {"status": "pass", "checks": {}}
    current = {"healthy": False}
    wiring.provide("ratelimit.storage_state", lambda: _state(current["healthy"]))
    ready, health = await call(root, "/readyz"), await call(root, "/healthz")
    assert (ready.status, ready.json()["status"]) == (200, "warn")
    (entry,) = health.json()["checks"]["ratelimit:storage"]
    assert (entry["status"], entry["observedValue"], entry["componentType"]) == (
        "warn",
        "fallback",
        "datastore",
    )
    assert b"secret" not in health.body
    current["healthy"] = True
    assert (await call(root, "/readyz")).json()["status"] == "pass"

    def broken() -> Mapping[str, Any]:
        raise RuntimeError("provider broke")

    wiring.provide("ratelimit.storage_state", broken)
    assert (await call(root, "/readyz")).json()["status"] == "warn"


def test_options_come_from_the_environment_through_the_kit() -> None:
    app = plain_app()
    environ = {"HARDENKIT_HEALTH_READY_PATH": "/ready", "HARDENKIT_HEALTH_CACHE_TTL": "5",
               "HARDENKIT_HEALTH_HEALTH_PATH": "none", "HARDENKIT_HEALTH_SHUTDOWN_SIGNALS": ""}  # fmt: skip
    hk.Kit.from_env(environ).register(HealthProbeMiddleware).install(app)
    with TestClient(app) as client:
        answer = client.get("/ready")
        assert (answer.status_code, answer.headers["cache-control"]) == (200, "max-age=5")
        assert client.get("/healthz").status_code == 404


def test_lazy_public_names() -> None:
    assert hk.HealthProbeMiddleware is HealthProbeMiddleware
    assert hk.Check is Check


# -- built-in checks ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_disk_space_passes_warns_and_fails_on_thresholds(tmp_path: Path) -> None:
    huge = 1 << 62
    mw = probes(
        disk_space(tmp_path, min_free_bytes=0),
        disk_space(tmp_path, min_free_bytes=0, warn_free_bytes=huge, name="disk2"),
        disk_space(tmp_path, min_free_bytes=huge, name="disk3"),
    )
    checks = (await call(mw, "/healthz")).json()["checks"]
    assert [checks[key][0]["status"] for key in ("disk:free", "disk2:free", "disk3:free")] == [
        "pass",
        "warn",
        "fail",
    ]
    assert checks["disk:free"][0]["observedUnit"] == "bytes"
    assert checks["disk:free"][0]["observedValue"] > 0


@pytest.mark.anyio
async def test_writable_dir_passes_on_a_directory_and_fails_when_it_is_missing(tmp_path: Path) -> None:
    mw = probes(writable_dir(tmp_path), writable_dir(tmp_path / "missing", name="missing"))
    checks = (await call(mw, "/healthz")).json()["checks"]
    assert (checks["writable_dir"][0]["status"], checks["missing"][0]["status"]) == ("pass", "fail")
    assert os.listdir(tmp_path) == []  # leaves nothing behind


@pytest.mark.anyio
@both_backends
async def test_tcp_connect_passes_on_a_listener_and_fails_on_a_closed_port() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        mw = probes(
            tcp_connect("127.0.0.1", listener.getsockname()[1], name="up"),
            tcp_connect("127.0.0.1", closed_port, name="down"),
        )
        checks = (await call(mw, "/healthz")).json()["checks"]
    finally:
        listener.close()
    assert checks["up:responseTime"][0]["status"] == "pass"
    assert checks["up:responseTime"][0]["observedUnit"] == "ms"
    assert checks["down:responseTime"][0]["status"] == "fail"


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_ping_passes_while_redis_runs_and_fails_when_it_is_down(
    redis_server: RedisServer,
) -> None:
    mw = probes(redis_ping(redis_server.url, timeout=2.0), cache_ttl=0)
    answer = await call(mw, "/healthz")
    (entry,) = answer.json()["checks"]["redis:responseTime"]
    assert (answer.status, entry["status"], entry["componentType"]) == (200, "pass", "datastore")
    assert redis_server.command_stats().get("ping", 0) >= 1
    redis_server.stop()
    assert (await call(mw, "/readyz")).status == 503


# -- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"live_path": "livez"}, "live_path must be a path"),
        ({"ready_path": "/x?y"}, "ready_path must be a path"),
        ({"health_path": "/livez"}, "used by another probe"),
        ({"live_path": None, "ready_path": None, "health_path": None}, "keep at least"),
        ({"cache_ttl": -1}, "cache_ttl must be"),
        ({"cache_ttl": float("nan")}, "cache_ttl must be"),
        ({"shutdown_delay": True}, "shutdown_delay must be"),
        ({"drain_timeout": "5"}, "drain_timeout must be"),
        ({"shutdown_signals": "SIGTERM"}, "takes a list"),
        ({"shutdown_signals": ["SIGNOPE"]}, "is not a signal"),
        ({"shutdown_signals": [1.5]}, "is not a signal"),
        ({"expose_details": "yes"}, "expose_details must be"),
        ({"version": 3}, "version must be a string"),
        ({"checks": [Check("a", bool), Check("a", bool)]}, "already exists"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HealthProbeMiddleware(plain_app(), **options)


def test_signal_numbers_are_accepted() -> None:
    mw = HealthProbeMiddleware(plain_app(), shutdown_signals=[int(signal.SIGTERM), "term", "SIGTERM"])
    assert mw._signals == (signal.SIGTERM,)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Check("a:b", bool), "without ':'"),
        (lambda: Check("", bool), "non-empty"),
        (lambda: Check("a", bool, measurement=" m"), "surrounding spaces"),
        (lambda: Check("a", "not callable"), "must be a callable"),  # type: ignore[arg-type]
        (lambda: Check("a", bool, timeout=0), "timeout must be"),
        (lambda: Check("a", bool, timeout=float("inf")), "timeout must be"),
        (lambda: disk_space(min_free_bytes=-1), "min_free_bytes"),
        (lambda: disk_space(min_free_bytes=0, warn_free_bytes=1.5), "warn_free_bytes"),  # type: ignore[arg-type]
        (lambda: tcp_connect("localhost", 0), "port must be"),
        (lambda: redis_ping("http://x"), "redis://"),
    ],
)
def test_bad_checks_raise_configuration_error(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_add_check_misuse_raises_configuration_error() -> None:
    mw = probes()
    with pytest.raises(ConfigurationError, match="give the check function"):
        mw.add_check("db")
    with pytest.raises(ConfigurationError, match="expected a hardenkit.health.Check"):
        mw.add_check(Check("db", bool), timeout=3)
    with pytest.raises(ConfigurationError, match="already exists"):
        mw.add_check("ratelimit", bool, measurement="storage")


def test_async_callables_are_recognised() -> None:
    import functools

    class Callable_:
        async def __call__(self) -> bool:
            return True  # pragma: no cover

    assert Check("a", AsyncCounter()).is_async
    assert Check("a", functools.partial(Callable_())).is_async
    assert not Check("a", Counter()).is_async


# -- the example --------------------------------------------------------------------------------


def test_health_example_answers_its_probes() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "health_example.py"
    spec = importlib.util.spec_from_file_location("health_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with TestClient(example.app) as client:
        assert client.get("/livez").json()["status"] == "pass"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        health = client.get("/healthz").json()
        assert set(health["checks"]) == {"disk:free", "state_dir", "config"}
        assert client.get("/").json() == {"hello": "world"}


# -- with the real rate limiter and access log ----------------------------------------------------


def test_with_the_real_kit_probes_are_not_rate_limited_nor_access_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = plain_app()
    kit = hk.Kit().register(hk.RateLimitMiddleware, default="2/minute").register(hk.AccessLogMiddleware)
    kit.register(HealthProbeMiddleware, shutdown_signals=[]).install(app)
    with caplog.at_level(logging.INFO, "hardenkit.access"), TestClient(app) as client:
        for _ in range(10):
            for path in ("/livez", "/readyz", "/healthz"):
                answer = client.get(path)
                assert answer.status_code == 200
                assert not any(
                    name.lower().startswith(("ratelimit", "x-ratelimit")) for name in answer.headers
                )
        storage = client.get("/healthz").json()["checks"]["ratelimit:storage"][0]
        assert storage["status"] == "pass"
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    logged = [record.getMessage() for record in caplog.records if record.name == "hardenkit.access"]
    assert len(logged) == 3
    assert not any(probe in message for message in logged for probe in ("/livez", "/readyz", "/healthz"))


@pytest.mark.redis
def test_readiness_warns_while_the_real_rate_limiter_runs_on_its_fallback(redis_server: RedisServer) -> None:
    app = plain_app()
    kit = hk.Kit().register(
        hk.RateLimitMiddleware, default="100/minute", storage=redis_server.url, on_storage_error="allow"
    )
    kit.register(HealthProbeMiddleware, cache_ttl=0, shutdown_signals=[]).install(app)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/readyz").json()["status"] == "pass"
        redis_server.stop()
        assert client.get("/").status_code == 200  # allowed: the limiter degrades as configured
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "warn")
        entry = client.get("/healthz").json()["checks"]["ratelimit:storage"][0]
        assert (entry["status"], entry["observedValue"]) == ("warn", "fallback")
        assert str(redis_server.port) not in client.get("/healthz").text
