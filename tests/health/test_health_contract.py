"""Acceptance of issue 6 (health probes and graceful shutdown), sentence by sentence, black box.

Only the public API as the issue and docs/health.md describe it: ``hk.HealthProbeMiddleware``,
``hk.Check``, ``add_check``, the built-in checks of ``hardenkit.health``, the kit.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message

import hardenkit as hk
from hardenkit.health import disk_space, redis_ping, tcp_connect, writable_dir
from support import asgi_request, uvicorn_server

both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
ENTRY_KEYS = {"status", "componentType", "observedValue", "observedUnit", "time", "output"}


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("app")


def starlette_app(*, add: dict[str, Any] | None = None) -> Starlette:
    app = Starlette(routes=[Route("/", hello)])
    if add is not None:
        app.add_middleware(hk.HealthProbeMiddleware, **{"shutdown_signals": [], **add})
    return app


def probes(*checks: hk.Check, **options: Any) -> hk.HealthProbeMiddleware:
    return hk.HealthProbeMiddleware(starlette_app(), checks=list(checks), shutdown_signals=[], **options)


class Calls:
    """A sync check that counts its calls and answers ``result`` (raises it if it is an exception)."""

    def __init__(self, result: Any = True) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class AsyncCalls(Calls):
    async def __call__(self) -> Any:
        await anyio.lowlevel.checkpoint()
        return super().__call__()


async def get(app: ASGIApp, path: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    import json

    answer = await asgi_request(app, path, method=method)
    body = json.loads(answer.body) if answer.body else None
    return answer.status, answer.headers, body


# -- paths and defaults -------------------------------------------------------------------


def test_default_paths_live_ready_health_answered_before_the_app_and_startup_off() -> None:
    with TestClient(starlette_app(add={})) as client:
        for path in ("/livez", "/readyz", "/healthz"):
            answer = client.get(path)
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/health+json"
            assert answer.json()["status"] == "pass"
        assert client.get("/startupz").status_code == 404  # startup_path=None by default
        assert client.get("/").text == "app"


def test_paths_are_options_with_the_issue_names() -> None:
    options = {"live_path": "/l", "ready_path": "/r", "health_path": "/h", "startup_path": "/s"}
    with TestClient(starlette_app(add=options)) as client:
        assert [client.get(p).status_code for p in ("/l", "/r", "/h", "/s")] == [200] * 4
        assert client.get("/livez").status_code == 404
    with TestClient(starlette_app(add={"health_path": None})) as client:
        assert client.get("/healthz").status_code == 404
        assert client.get("/readyz").status_code == 200


# -- checks: return values, sync and async, exceptions ----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [Calls, AsyncCalls])
@pytest.mark.parametrize(
    ("result", "critical", "status", "code"),
    [
        (True, True, "pass", 200),
        (None, True, "pass", 200),
        (False, True, "fail", 503),
        (False, False, "warn", 200),
        (RuntimeError("db down"), True, "fail", 503),
        (RuntimeError("db down"), False, "warn", 200),
        ({"status": "pass", "observedValue": 3, "observedUnit": "ms"}, True, "pass", 200),
        ({"status": "warn", "observedValue": 3, "observedUnit": "ms"}, True, "warn", 200),
        ({"status": "fail"}, True, "fail", 503),
        ({"status": "fail"}, False, "warn", 200),
    ],
)
async def test_a_check_result_decides_status_and_code(
    kind: type[Calls], result: Any, critical: bool, status: str, code: int
) -> None:
    app = probes(hk.Check("db", kind(result), critical=critical, timeout=1.0))
    for path in ("/readyz", "/healthz"):
        got, headers, body = await get(app, path)
        assert (got, body["status"]) == (code, status)
        assert headers["content-type"] == "application/health+json"
    _, _, body = await get(app, "/healthz")
    (entry,) = body["checks"]["db"]
    assert entry["status"] in ("pass", "warn", "fail")
    assert set(entry) <= ENTRY_KEYS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", entry["time"])
    if isinstance(result, dict) and "observedValue" in result:
        assert (entry["observedValue"], entry["observedUnit"]) == (3, "ms")


@pytest.mark.anyio
async def test_every_combination_of_several_checks() -> None:
    outcomes = {"pass": True, "warn": {"status": "warn"}, "fail": False}
    for a in outcomes:
        for b in outcomes:
            for noncritical in outcomes:
                app = probes(
                    hk.Check("a", Calls(outcomes[a])),
                    hk.Check("b", AsyncCalls(outcomes[b])),
                    hk.Check("c", Calls(outcomes[noncritical]), critical=False),
                )
                ranks = {"pass": 0, "warn": 1, "fail": 2}
                third = "warn" if noncritical == "fail" else noncritical
                expected = max((a, b, third), key=ranks.__getitem__)
                code, _, body = await get(app, "/healthz")
                assert (code, body["status"]) == (503 if expected == "fail" else 200, expected)
                assert set(body["checks"]) == {"a", "b", "c"}


@pytest.mark.anyio
async def test_checks_are_keyed_name_colon_measurement_with_component_type() -> None:
    check = hk.Check(
        "db",
        lambda: {"status": "pass", "observedValue": 12.5, "observedUnit": "ms"},
        measurement="responseTime",
        component_type="datastore",
    )
    _, _, body = await get(
        probes(check, version="1.2.3", release_id="1.2.3-abc", service_id="svc"), "/healthz"
    )
    assert body["version"] == "1.2.3" and body["releaseId"] == "1.2.3-abc" and body["serviceId"] == "svc"
    (entry,) = body["checks"]["db:responseTime"]
    assert entry["componentType"] == "datastore"
    assert (entry["observedValue"], entry["observedUnit"]) == (12.5, "ms")
    _, _, live = await get(probes(check, version="1.2.3"), "/livez")
    assert live["version"] == "1.2.3" and "checks" not in live


@pytest.mark.anyio
async def test_error_details_only_with_expose_details() -> None:
    secret = "password=hunter2 at db.internal:5432"
    check = hk.Check("db", Calls(RuntimeError(secret)))
    _, _, private = await get(probes(check), "/healthz")
    assert secret not in str(private) and "RuntimeError" not in str(private)
    assert private["checks"]["db"][0]["status"] == "fail" and private["checks"]["db"][0]["output"]
    _, _, public = await get(
        probes(hk.Check("db", Calls(RuntimeError(secret))), expose_details=True), "/healthz"
    )
    assert secret in public["checks"]["db"][0]["output"]


@pytest.mark.anyio
async def test_head_is_supported_with_the_same_status_and_no_body() -> None:
    app = probes(hk.Check("db", Calls(False)), cache_ttl=0)
    for path in ("/livez", "/readyz", "/healthz"):
        got = await asgi_request(app, path, method="HEAD")
        full = await asgi_request(app, path)
        assert got.status == full.status and got.body == b""
        assert got.headers["content-type"] == "application/health+json"
        assert got.headers["content-length"] == str(len(full.body))


@pytest.mark.anyio
async def test_add_check_on_the_middleware_instance() -> None:
    app = probes()
    assert (await get(app, "/readyz"))[0] == 200
    app.add_check(hk.Check("db", Calls(False)))
    assert (await get(app, "/readyz"))[0] == 503
    app.add_check("cache", AsyncCalls(False), critical=False)
    _, _, body = await get(app, "/healthz")
    assert body["checks"]["cache"][0]["status"] == "fail" and body["status"] == "fail"


# -- liveness, startup ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_liveness_runs_no_dependency_check() -> None:
    failing = Calls(False)
    app = probes(hk.Check("db", failing), hk.Check("gate", Calls(False), startup=True))
    for _ in range(3):
        code, _, body = await get(app, "/livez")
        assert (code, body["status"]) == (200, "pass")
    assert failing.calls == 0


@pytest.mark.anyio
async def test_readiness_fails_until_startup_checks_have_passed_once() -> None:
    gate = Calls(False)
    app = probes(hk.Check("migrations", gate, startup=True), cache_ttl=0, startup_path="/startupz")
    assert [(await get(app, p))[0] for p in ("/readyz", "/startupz", "/livez")] == [503, 503, 200]
    gate.result = True
    assert [(await get(app, p))[0] for p in ("/readyz", "/startupz")] == [200, 200]
    gate.result = False  # passed once: readiness no longer depends on it
    assert (await get(app, "/readyz"))[0] == 200


# -- timeouts, single flight, cache ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_sync_check_hanging_forever_fails_on_time_and_starts_no_new_thread() -> None:
    release = threading.Event()
    hung = Calls()

    def hang() -> bool:
        hung.calls += 1
        release.wait(30)
        return True

    app = probes(hk.Check("db", hang, timeout=0.3), cache_ttl=0)
    try:
        started = time.monotonic()
        code, _, body = await get(app, "/healthz")
        assert time.monotonic() - started < 5.0  # the timeout plus a margin, not the 30 s hang
        assert (code, body["status"]) == (503, "fail")
        assert "timed out" in body["checks"]["db"][0]["output"]
        threads = threading.active_count()
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(get, app, "/readyz")
        assert (await get(app, "/readyz"))[0] == 503
        assert hung.calls == 1
        assert threading.active_count() <= threads
    finally:
        release.set()


@pytest.mark.anyio
@both_backends
async def test_an_async_check_hanging_forever_fails_on_time() -> None:
    async def hang() -> bool:
        await anyio.sleep_forever()
        return True  # pragma: no cover

    app = probes(hk.Check("db", hang, timeout=0.2), hk.Check("ok", Calls()))
    with anyio.fail_after(5):
        code, _, body = await get(app, "/healthz")
    assert (code, body["status"]) == (503, "fail")
    assert body["checks"]["ok"][0]["status"] == "pass"


@pytest.mark.anyio
async def test_checks_run_concurrently_each_with_its_own_timeout() -> None:
    async def slow() -> bool:
        await anyio.sleep(0.4)
        return True

    app = probes(*(hk.Check(f"c{i}", slow, timeout=2.0) for i in range(5)))
    started = time.monotonic()
    code, _, _ = await get(app, "/readyz")
    assert code == 200
    assert time.monotonic() - started < 1.9  # 5 x 0.4 s in sequence would be 2 s


@pytest.mark.anyio
@both_backends
async def test_probe_storm_of_1000_runs_each_check_at_most_once_per_cache_ttl() -> None:
    sync_check, async_check = Calls(), AsyncCalls()

    async def slowish() -> bool:
        async_check.calls += 1
        await anyio.sleep(0.05)
        return True

    app = probes(hk.Check("sync", sync_check), hk.Check("async", slowish), cache_ttl=30.0)
    codes: list[int] = []

    async def one() -> None:
        codes.append((await get(app, "/readyz"))[0])

    async with anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(one)
    assert codes == [200] * 1000
    assert (sync_check.calls, async_check.calls) == (1, 1)
    _, headers, _ = await get(app, "/healthz")
    assert (sync_check.calls, async_check.calls) == (1, 1)
    assert headers["cache-control"] == "max-age=30"


@pytest.mark.anyio
async def test_cache_control_follows_cache_ttl_default_one_second() -> None:
    counter = Calls()
    app = probes(hk.Check("db", counter))
    _, headers, _ = await get(app, "/readyz")
    assert "max-age=1" in headers["cache-control"]
    await get(app, "/readyz")
    assert counter.calls == 1
    _, live_headers, _ = await get(app, "/livez")
    assert "max-age=1" not in live_headers.get("cache-control", "")


@pytest.mark.anyio
async def test_cache_ttl_zero_reruns_the_check_every_probe() -> None:
    counter = Calls()
    app = probes(hk.Check("db", counter), cache_ttl=0)
    for _ in range(3):
        await get(app, "/readyz")
    assert counter.calls == 3


# -- built-in checks ------------------------------------------------------------------------


@pytest.mark.anyio
@both_backends
async def test_builtin_disk_writable_and_tcp_checks(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        app = probes(
            disk_space(tmp_path, min_free_bytes=1),
            writable_dir(tmp_path),
            tcp_connect("127.0.0.1", port),
        )
        code, _, body = await get(app, "/healthz")
    assert code == 200, body
    assert {key.split(":")[0] for key in body["checks"]} == {"disk", "writable_dir", "tcp"}
    assert all(entries[0]["status"] == "pass" for entries in body["checks"].values())
    failing = probes(disk_space(tmp_path, min_free_bytes=2**62), writable_dir(tmp_path / "missing"))
    code, _, body = await get(failing, "/healthz")
    assert code == 503 and all(entries[0]["status"] == "fail" for entries in body["checks"].values())


@pytest.mark.anyio
async def test_builtin_redis_ping_fails_when_nothing_listens() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    check = redis_ping(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    assert check.key == "redis:responseTime"
    code, _, body = await get(probes(check), "/healthz")
    assert (code, body["checks"]["redis:responseTime"][0]["status"]) == (503, "fail")


# -- graceful shutdown (lifespan) -----------------------------------------------------------


@pytest.mark.anyio
async def test_lifespan_shutdown_fails_readiness_keeps_liveness_and_lets_inflight_finish() -> None:
    entered, finish = anyio.Event(), anyio.Event()

    async def slow(request: Request) -> PlainTextResponse:
        entered.set()
        await finish.wait()
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    app.add_middleware(hk.HealthProbeMiddleware, shutdown_signals=[], drain_timeout=10.0)
    to_app: list[Message] = [{"type": "lifespan.startup"}]
    from_app: list[Message] = []
    shutdown = anyio.Event()

    async def receive() -> Message:
        if to_app:
            return to_app.pop(0)
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        from_app.append(message)

    answers: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

        async def slow_request() -> None:
            answers.append(await asgi_request(app, "/slow"))

        group.start_soon(slow_request)
        with anyio.fail_after(5):
            await entered.wait()
        shutdown.set()
        with anyio.fail_after(5):
            while (await get(app, "/readyz"))[0] != 503:
                await anyio.sleep(0.01)
        assert (await get(app, "/livez"))[0] == 200
        assert (await get(app, "/healthz"))[0] == 503
        assert not any(m["type"] == "lifespan.shutdown.complete" for m in from_app)  # waits for /slow
        finish.set()
    assert answers[0].status == 200 and answers[0].body == b"done"
    assert from_app[-1]["type"] == "lifespan.shutdown.complete"


# -- through the kit ------------------------------------------------------------------------


def test_in_the_kit_probes_are_neither_rate_limited_nor_access_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = starlette_app()
    hk.harden(app, ratelimit={"default": "2/minute"}, health={"shutdown_signals": []})
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        for _ in range(5):
            assert [client.get(p).status_code for p in ("/livez", "/readyz", "/healthz")] == [200] * 3
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    access = [r.getMessage() for r in caplog.records if r.name.startswith("hardenkit.access")]
    assert access and not any(p in line for line in access for p in ("/livez", "/readyz", "/healthz"))


def test_the_kit_environment_sets_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENKIT_HEALTH_READY_PATH", "/ready")
    monkeypatch.setenv("HARDENKIT_HEALTH_VERSION", "9.9")
    monkeypatch.setenv("HARDENKIT_HEALTH_SHUTDOWN_SIGNALS", "")
    app = starlette_app()
    hk.Kit.from_env().register(hk.HealthProbeMiddleware).install(app)
    with TestClient(app) as client:
        assert client.get("/ready").json() == {"status": "pass", "version": "9.9"}


def test_bad_options_raise_configuration_error() -> None:
    for options in ({"cache_ttl": -1}, {"shutdown_delay": "soon"}, {"ready_path": "readyz"}):
        with pytest.raises(hk.ConfigurationError):
            hk.HealthProbeMiddleware(starlette_app(), **options)
    with pytest.raises(hk.ConfigurationError):
        hk.Check("db", "not callable")  # type: ignore[arg-type]
    with pytest.raises(hk.ConfigurationError):
        hk.Check("db", lambda: True, timeout=0)


# -- real uvicorn, SIGTERM, through harden() ------------------------------------------------

HARDENED_APP = """
import anyio
from pathlib import Path
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
import hardenkit as hk

async def slow(request):
    Path("in-flight").write_text("yes")
    await anyio.sleep(2.0)
    return PlainTextResponse("slow done")

app = Starlette(routes=[Route("/slow", slow)])
hk.harden(app, health={"shutdown_delay": 1.0, "drain_timeout": 10.0})
"""


@pytest.mark.slow
def test_sigterm_under_uvicorn_with_harden(tmp_path: Path) -> None:
    (tmp_path / "hardened_app.py").write_text(HARDENED_APP, encoding="utf-8")
    answers: list[httpx2.Response] = []
    with uvicorn_server("hardened_app:app", cwd=tmp_path, extra_args=("--app-dir", str(tmp_path))) as (
        base,
        proc,
    ):
        assert httpx2.get(f"{base}/readyz", timeout=10).status_code == 200
        worker = threading.Thread(target=lambda: answers.append(httpx2.get(f"{base}/slow", timeout=20)))
        worker.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "in-flight").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        ready = httpx2.get(f"{base}/readyz", timeout=10)
        live = httpx2.get(f"{base}/livez", timeout=10)
        assert (ready.status_code, ready.json()["status"]) == (503, "fail")
        assert (live.status_code, live.json()["status"]) == (200, "pass")
        worker.join(timeout=20)
        assert answers and (answers[0].status_code, answers[0].text) == (200, "slow done")
        assert proc.wait(timeout=30) == -signal.SIGTERM
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
    assert "Traceback" not in err, err


# -- the hot path does what it did ------------------------------------------------------------


@pytest.mark.anyio
@both_backends
async def test_ordinary_requests_and_streaming_pass_through_unchanged() -> None:
    async def streamed(request: Request) -> Any:
        from starlette.responses import StreamingResponse

        async def parts() -> Any:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(parts())

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("app error")

    app = Starlette(routes=[Route("/s", streamed), Route("/boom", boom)])
    wrapped = hk.HealthProbeMiddleware(app, shutdown_signals=[])
    assert (await asgi_request(wrapped, "/s")).body == b"abc"
    with pytest.raises(RuntimeError, match="app error"):
        await asgi_request(wrapped, "/boom")
    assert wrapped.draining is False
