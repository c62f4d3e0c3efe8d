"""RateLimitMiddleware against a real redis-server: exactness, outages, fleets of processes."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from hardenkit.ratelimit import RateLimitMiddleware, rate_limit
from support import RedisServer, asgi_request, uvicorn_server

pytestmark = pytest.mark.redis


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    await anyio.sleep(0.01)  # lets the concurrent requests interleave
    await PlainTextResponse("ok")(scope, receive, send)


async def call(
    app: Any, path: str = "/", *, client: tuple[str, int] = ("203.0.113.7", 1), method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    response = await asgi_request(app, path, method=method, client=client, headers=[(b"host", b"test")])
    return response.status, response.headers, response.body


@contextlib.asynccontextmanager
async def limiter(app: Any, **options: Any) -> AsyncIterator[RateLimitMiddleware]:
    """The middleware, with this event loop's Redis connections closed at the end."""
    middleware = RateLimitMiddleware(app, **options)
    try:
        yield middleware
    finally:
        await middleware.aclose()


async def start_of_a_second() -> None:
    """Sleep to just after the next whole second (windows are clock-aligned)."""
    now = time.time()
    await anyio.sleep(math.ceil(now) - now + 0.01)


def evalsha_calls(redis_server: RedisServer) -> int:
    return redis_server.command_stats().get("evalsha", 0)


# -- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window", "moving-window"])
@pytest.mark.anyio
async def test_300_concurrent_requests_against_100_admit_exactly_100(
    redis_server: RedisServer, strategy: str
) -> None:
    # A generous storage_timeout: this test is about atomicity, and on a loaded machine
    # 300 calls queued on the connection pool can take longer than the 0.5 s default.
    async with limiter(
        slow_app,
        default="100 per 100 days",
        storage=redis_server.url,
        strategy=strategy,
        storage_timeout=20,
        on_storage_error="deny",
    ) as app:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await call(app))[0])

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(300):
                    tg.start_soon(one)
        assert statuses.count(200) == 100
        assert statuses.count(429) == 200


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window"])
@pytest.mark.anyio
async def test_one_redis_command_per_request_with_headers(redis_server: RedisServer, strategy: str) -> None:
    async with limiter(ok_app, default="5/hour;50/day", storage=redis_server.url, strategy=strategy) as app:
        await call(app)  # loads the script
        before = redis_server.command_stats()
        results = [await call(app) for _ in range(6)]
        after = redis_server.command_stats()
        # One EVALSHA per request is the only round trip (INFO commandstats also counts the
        # commands the script runs inside Redis; the benchmark reports both).
        assert after.get("evalsha", 0) - before.get("evalsha", 0) == 6
        assert after.get("script|load", 0) == before.get("script|load", 0)
        assert [status for status, _, _ in results] == [200, 200, 200, 200, 429, 429]
        _, head, _ = results[0]
        assert head["ratelimit-policy"] == '"default-3600s";q=5;w=3600, "default-86400s";q=50;w=86400'
        assert '"default-3600s";r=3;' in head["ratelimit"] and '"default-86400s";r=48;' in head["ratelimit"]
        status, head, body = results[-1]
        assert json.loads(body)["violated-policies"] == ["default-3600s"]
        assert 1 <= int(head["retry-after"]) <= 3600
        # A refused request did not count on the hour limit.
        assert '"default-86400s";r=45;' in head["ratelimit"]


@pytest.mark.parametrize(
    ("strategy", "inside"), [("fixed-window", {"incrby": 10}), ("sliding-window", {"bitfield": 10})]
)
@pytest.mark.anyio
async def test_redis_commands_per_request_in_commandstats(
    redis_server: RedisServer, strategy: str, inside: dict[str, int]
) -> None:
    async with limiter(ok_app, default="100/hour", storage=redis_server.url, strategy=strategy) as app:
        await call(app)  # loads the script, sets the window's expiry
        before = redis_server.command_stats()
        for _ in range(10):
            assert (await call(app))[0] == 200
        after = redis_server.command_stats()
    delta = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    for own in ("info", "hello"):  # command_stats() itself
        delta.pop(own, None)
    assert delta == {"evalsha": 10, **inside}


async def redis_delta(redis_server: RedisServer, before: dict[str, int]) -> dict[str, int]:
    after = redis_server.command_stats()
    delta = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    for own in ("info", "hello"):  # command_stats() itself
        delta.pop(own, None)
    return delta


async def keys_and_ttls(url: str) -> dict[bytes, int]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        return {key: await client.pttl(key) async for key in client.scan_iter("*")}
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_refused_sliding_window_requests_cost_two_commands_too(redis_server: RedisServer) -> None:
    async with limiter(ok_app, default="3/hour", storage=redis_server.url) as app:
        await call(app)  # loads the script, makes the window's key
        before = redis_server.command_stats()
        statuses = [(await call(app))[0] for _ in range(10)]
        delta = await redis_delta(redis_server, before)
    assert statuses == [200, 200] + [429] * 8
    # The check and the count are one conditional BITFIELD: nothing to give back on a 429.
    assert delta == {"evalsha": 10, "bitfield": 10}


@pytest.mark.anyio
async def test_sliding_window_survives_lost_keys_and_leaves_none_without_expiry(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    options: dict[str, Any] = {"default": "1000 per 100 days", "storage": redis_server.url}
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with limiter(ok_app, **options) as one, limiter(ok_app, **options) as other:
            assert [(await call(one))[0] for _ in range(3)] == [200] * 3
            (current,) = [key async for key in client.scan_iter("*")]
            # The keys are lost (FLUSHALL, a restart without persistence): `one` still
            # remembers the previous window's count; its next request finds no key,
            # makes it again from the previous window (absent: 0) with an expiry.
            await client.flushall()
            _, head, _ = await call(one)
            assert '"default";r=999;' in head["ratelimit"]
            ttls = await keys_and_ttls(redis_server.url)
            assert list(ttls) == [current] and ttls[current] > 0
            # Again lost, and this time the previous window had 800 requests: `other` makes
            # the key with that count, and `one`'s stale memory (0) is corrected by the
            # key's own copy, so both see the same weighted count.
            await client.flushall()
            index = int(current.rsplit(b"/", 1)[1])
            previous = current.rsplit(b"/", 1)[0] + b"/" + str(index - 1).encode()
            await client.set(previous, (800).to_bytes(5, "big") + (1).to_bytes(5, "big"), px=60_000)
            seconds = 100 * 86400
            weight = 1 - (time.time() - index * seconds) / seconds  # of the previous window
            _, head_other, _ = await call(other)
            _, head_one, _ = await call(one)
            left = int(head_other["ratelimit"].split(";r=")[1].split(";")[0])
            assert abs(left - (1000 - math.floor(800 * weight) - 1)) <= 1
            assert f'"default";r={left - 1};' in head_one["ratelimit"]
            # Every key has an expiry; `one` knows the count again: two commands a request.
            assert all(ttl > 0 for ttl in (await keys_and_ttls(redis_server.url)).values())
            before = redis_server.command_stats()
            await call(one)
            assert await redis_delta(redis_server, before) == {"evalsha": 1, "bitfield": 1}
    finally:
        await client.aclose()


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window"])
@pytest.mark.anyio
async def test_no_key_is_left_without_an_expiry(redis_server: RedisServer, strategy: str) -> None:
    async with limiter(
        ok_app, default="2/hour;5/day", storage=redis_server.url, strategy=strategy, cost=2
    ) as app:
        for client in (("203.0.113.1", 1), ("203.0.113.2", 1)):
            assert [(await call(app, client=client))[0] for _ in range(3)] == [200, 429, 429]
    ttls = await keys_and_ttls(redis_server.url)
    assert len(ttls) == 4 and all(ttl > 0 for ttl in ttls.values())


@pytest.mark.anyio
async def test_fixed_window_resets_after_its_window_in_redis(redis_server: RedisServer) -> None:
    async with limiter(ok_app, default="2/second", storage=redis_server.url, strategy="fixed-window") as app:
        await start_of_a_second()
        assert [(await call(app))[0] for _ in range(3)] == [200, 200, 429]
        await anyio.sleep(1.1)
        assert (await call(app))[0] == 200


@pytest.mark.anyio
async def test_sliding_window_refills_in_redis(redis_server: RedisServer) -> None:
    async with limiter(ok_app, default="2/second", storage=redis_server.url) as app:
        await start_of_a_second()
        assert [(await call(app))[0] for _ in range(2)] == [200, 200]
        status, head, _ = await call(app)
        assert status == 429
        # Retry-After is honest: retrying after it is admitted.
        await anyio.sleep(int(head["retry-after"]))
        assert (await call(app))[0] == 200
        await anyio.sleep(1.05)
        await start_of_a_second()  # the previous window is now empty
        assert [(await call(app))[0] for _ in range(3)] == [200, 200, 429]


@pytest.mark.anyio
async def test_count_when_and_endpoint_limits_with_redis(redis_server: RedisServer) -> None:
    check = rate_limit("export")

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/export":
            await check()
        status = 401 if scope["path"] == "/login" else 200
        await PlainTextResponse("x", status_code=status)(scope, receive, send)

    async with limiter(
        endpoint,
        default="2/hour",
        policies={"export": "1/hour"},
        storage=redis_server.url,
        count_when=lambda status: status >= 400,
    ) as app:
        assert {(await call(app, "/"))[0] for _ in range(4)} == {200}  # successes are not counted
        assert [(await call(app, "/login"))[0] for _ in range(3)] == [401, 401, 429]
        other = ("203.0.113.8", 1)
        assert [(await call(app, "/export", client=other))[0] for _ in range(2)] == [200, 429]


@pytest.mark.anyio
async def test_moving_window_on_redis_uses_limits_strategies_with_several_limits(
    redis_server: RedisServer,
) -> None:
    async with limiter(
        ok_app,
        default="2/second;3/hour",
        storage=redis_server.url,
        strategy="moving-window",
        cost=lambda scope: 0 if scope["path"] == "/free" else 1,
    ) as app:
        assert [(await call(app))[0] for _ in range(3)] == [200, 200, 429]
        assert {(await call(app, "/free"))[0] for _ in range(3)} == {200}
        status, head, body = await call(app)
        assert json.loads(body)["violated-policies"] == ["default-1s"]
        assert '"default-3600s";r=1;' in head["ratelimit"]


@pytest.mark.anyio
async def test_endpoint_check_while_the_storage_is_down_in_deny_mode(redis_server: RedisServer) -> None:
    check = rate_limit("ai")

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await check()
        await PlainTextResponse("ok")(scope, receive, send)

    async with limiter(
        endpoint, default=None, policies={"ai": "5/hour"}, storage=redis_server.url, on_storage_error="deny"
    ) as app:
        assert (await call(app))[0] == 200
        redis_server.stop()
        status, head, body = await call(app)
        assert status == 503 and json.loads(body)["status"] == 503 and "retry-after" in head


@pytest.mark.anyio
async def test_a_burst_when_redis_dies_logs_once_and_never_fails(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with limiter(slow_app, default="1000/hour", storage=redis_server.url) as app:
        await call(app)
        redis_server.stop()
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await call(app))[0])

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(one)
        assert statuses == [200] * 50
        assert len(_log_lines(caplog, "is unreachable")) == 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_trio_uses_limits_sync_storage_in_threads(redis_server: RedisServer) -> None:
    async with limiter(
        slow_app,
        default="10 per 100 days;1000 per 100 days",
        storage=redis_server.url,
        strategy="fixed-window",
    ) as app:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await call(app))[0])

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(one)
        assert statuses.count(200) == 10


def test_limits_are_shared_across_event_loops(redis_server: RedisServer) -> None:
    # Starlette's TestClient runs each `with` block on a new event loop.
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def index(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", index)])
    app.add_middleware(RateLimitMiddleware, default="3/hour", storage=redis_server.url)
    for expected in ([200, 200], [200, 429]):
        with TestClient(app) as client:
            assert [client.get("/").status_code for _ in range(2)] == expected


# -- storage outages --------------------------------------------------------------------------


def _log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "hardenkit.ratelimit" and text in r.getMessage()
    ]


@pytest.mark.parametrize("mode", ["allow", "deny", "memory"])
@pytest.mark.anyio
async def test_redis_killed_mid_test_degrades_as_configured_and_recovers(
    redis_server: RedisServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hardenkit.ratelimit")
    async with limiter(
        ok_app, default="3/hour", storage=redis_server.url, on_storage_error=mode, strategy="fixed-window"
    ) as app:
        assert [(await call(app))[0] for _ in range(2)] == [200, 200]
        assert app.guard.state()["healthy"] is True

        redis_server.stop()
        down = [await call(app) for _ in range(6)]
        statuses = [status for status, _, _ in down]
        assert 500 not in statuses
        if mode == "allow":
            assert statuses == [200] * 6
            assert "ratelimit" not in down[0][1]  # nothing is known, so nothing is claimed
        elif mode == "deny":
            assert statuses == [503] * 6
            status, head, body = down[0]
            assert head["content-type"] == "application/problem+json"
            assert int(head["retry-after"]) >= 1
            assert json.loads(body)["status"] == 503
        else:
            # Per-process limits while Redis is away, from the last count Redis gave (2 of
            # 3 used): the fallback never grants a fresh budget.
            assert statuses == [200, 429, 429, 429, 429, 429]
            assert down[0][1]["x-ratelimit-remaining"] == "0"
        state = app.guard.state()
        assert state["healthy"] is False and state["mode"] == "fallback"
        assert state["on_storage_error"] == mode
        assert isinstance(state["since"], float) and state["since"] <= time.time()
        assert state["storage"] == redis_server.url
        assert len(_log_lines(caplog, "is unreachable")) == 1

        redis_server.start()
        with anyio.fail_after(20):
            while not app.guard.healthy:
                await call(app, client=("198.51.100.1", 1))
                await anyio.sleep(0.05)
        assert len(_log_lines(caplog, "reachable again")) == 1
        assert len(_log_lines(caplog, "is unreachable")) == 1
        assert app.guard.state() == {
            "healthy": True,
            "mode": "primary",
            "on_storage_error": mode,
            "since": None,
            "storage": redis_server.url,
        }
        # Redis restarted empty: the original client starts over, counted in Redis again.
        status, head, _ = await call(app)
        assert status == 200 and head["x-ratelimit-remaining"] == "2"
        assert evalsha_calls(redis_server) >= 1


@pytest.mark.anyio
async def test_storage_is_not_retried_on_every_request_while_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with limiter(ok_app, default="3/hour", storage=redis_server.url, on_storage_error="allow") as app:
        await call(app)
        redis_server.stop()
        attempts = 0
        engine = app._network.current()  # type: ignore[union-attr]
        original = engine.acquire

        async def counting(*args: Any) -> Any:
            nonlocal attempts
            attempts += 1
            return await original(*args)

        engine.acquire = counting  # type: ignore[method-assign]
        for _ in range(50):
            assert (await call(app))[0] == 200
        # The first call and its one retry on a fresh connection; then the back-off holds.
        assert attempts == 2


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.anyio
async def test_a_hanging_storage_times_out_into_the_fallback(
    silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with limiter(
        ok_app,
        default="1/hour",
        storage=f"redis://127.0.0.1:{silent_server}/0",
        storage_timeout=0.2,
        on_storage_error="memory",
    ) as app:
        with anyio.fail_after(10):  # did not hang
            statuses = [(await call(app))[0] for _ in range(3)]
        assert statuses == [200, 429, 429]
        assert len(_log_lines(caplog, "is unreachable (TimeoutError")) == 1


def test_storage_password_is_masked_in_state_and_logs() -> None:
    app = RateLimitMiddleware(ok_app, storage="redis://user:s3cret@127.0.0.1:1/0")
    assert app.guard.state()["storage"] == "redis://user:***@127.0.0.1:1/0"


# -- a fleet: two uvicorn processes, one Redis ----------------------------------------------------


@pytest.mark.slow
def test_two_uvicorn_processes_share_one_limit_exactly(redis_server: RedisServer) -> None:
    # Long clock-aligned windows: the test never straddles a window boundary.
    env = {"REDIS_URL": redis_server.url, "RATE_LIMIT": "50 per 100 days", "EXPORT_LIMIT": "5 per 100 days"}
    with (
        uvicorn_server("ratelimit_redis:app", env=env) as (url_a, _),
        uvicorn_server("ratelimit_redis:app", env=env) as (url_b, _),
    ):
        with httpx2.Client() as client:
            # The example's per-endpoint limit (export: 5/hour) is shared too.
            exports = [client.get(f"{(url_a, url_b)[n % 2]}/export").status_code for n in range(6)]
            assert exports == [200, 200, 200, 200, 200, 429]
            assert {client.get(f"{url_a}/healthz").status_code for _ in range(3)} == {200}  # exempt

        async def hammer() -> list[int]:
            statuses: list[int] = []
            async with httpx2.AsyncClient(base_url=url_a) as a, httpx2.AsyncClient(base_url=url_b) as b:

                async def one(client: httpx2.AsyncClient) -> None:
                    statuses.append((await client.get("/")).status_code)

                async with anyio.create_task_group() as tg:
                    for n in range(80):
                        tg.start_soon(one, a if n % 2 else b)
            return statuses

        statuses = anyio.run(hammer)
        # 50/hour in all, 6 of them used by the export requests above.
        assert statuses.count(200) == 44
        assert statuses.count(429) == 36
        with httpx2.Client() as client:
            refused = client.get(f"{url_b}/")
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
