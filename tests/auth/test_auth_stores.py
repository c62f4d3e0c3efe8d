"""Key stores: the file (no secret in it, hot reload, damage), the environment, Redis (real server)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
import pytest
from auth_helpers import protected
from starlette.testclient import TestClient

from hardenkit.auth import EnvKeyStore, FileKeyStore, KeyManager, RedisKeyStore, generate_key, open_store
from hardenkit.auth.stores import MemoryKeyStore
from hardenkit.errors import ConfigurationError, StorageUnavailable
from support import RedisServer


def test_key_file_never_contains_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    manager = KeyManager(FileKeyStore(path))
    created, _ = anyio.run(lambda: manager.create("ci", ["operator"], expires="90d"))
    rotated, _ = anyio.run(lambda: manager.rotate("ci", grace="24h"))
    texts = [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    assert texts  # the file and its backups
    for key in (created, rotated):
        secret = key[18:-6]
        for text in texts:
            assert key not in text
            assert secret not in text
            assert key[18:40] not in text  # not even a fragment of the secret
    data = json.loads(path.read_text())
    assert data["format"] == "hardenkit-keys/1"
    assert all(
        set(record) >= {"id", "hash", "roles", "created", "expires"} for record in data["keys"].values()
    )


def test_hot_reload_picks_up_a_revoke_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    writer = KeyManager(FileKeyStore(path))
    key, _ = anyio.run(lambda: writer.create("ci", ["readonly"]))
    client = TestClient(protected(FileKeyStore(path, reload_interval=0)))
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
    anyio.run(lambda: writer.revoke("ci"))  # another process's CLI, in effect: a separate store object
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 401
    new_key, _ = anyio.run(lambda: writer.create("ci", ["readonly"]))
    assert client.get("/items", headers={"X-API-Key": new_key}).status_code == 200


def test_reload_interval_bounds_how_often_the_file_is_looked_at(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    writer = KeyManager(FileKeyStore(path))
    key, _ = anyio.run(lambda: writer.create("ci", ["readonly"]))
    client = TestClient(protected(FileKeyStore(path, reload_interval=3600)))
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
    anyio.run(lambda: writer.revoke("ci"))
    # Within the interval the snapshot stands (the documented propagation bound).
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 200


def test_damaged_file_keeps_the_last_good_keys_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    writer = KeyManager(FileKeyStore(path, reload_interval=0))
    key, _ = anyio.run(lambda: writer.create("ci", ["readonly"]))
    client = TestClient(protected(FileKeyStore(path, reload_interval=0)))
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
    for backup in tmp_path.glob("keys.json.*"):
        backup.unlink()
    path.write_text('{"format": "something else"}')
    with caplog.at_level(logging.ERROR, logger="hardenkit.auth"):
        for _ in range(3):
            assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
            os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000))
    assert len([r for r in caplog.records if "cannot be used" in r.message]) == 1


def test_file_written_with_another_pepper_is_reported(tmp_path: Path) -> None:
    from hardenkit.auth import KeyHasher

    path = tmp_path / "keys.json"
    anyio.run(lambda: KeyManager(FileKeyStore(path), KeyHasher("one")).create("a", ["readonly"]))
    other = KeyManager(FileKeyStore(path), KeyHasher("two"))
    with pytest.raises(ConfigurationError, match="another pepper"):
        anyio.run(lambda: other.create("b", ["readonly"]))


def test_create_refuses_a_duplicate_name_and_rotate_an_unknown_one() -> None:
    manager = KeyManager(MemoryKeyStore())
    anyio.run(lambda: manager.create("ci", ["readonly"]))
    with pytest.raises(ConfigurationError, match="already exists"):
        anyio.run(lambda: manager.create("ci", ["readonly"]))
    with pytest.raises(ConfigurationError, match="no active key"):
        anyio.run(lambda: manager.rotate("nobody"))
    with pytest.raises(ConfigurationError, match="no unrevoked key"):
        anyio.run(lambda: manager.revoke("nobody"))
    with pytest.raises(ConfigurationError, match="at least one role"):
        anyio.run(lambda: manager.create("x", []))
    with pytest.raises(ConfigurationError, match="duration"):
        anyio.run(lambda: manager.create("y", ["readonly"], expires="soon"))


def test_env_store_reads_hash_lines_and_is_read_only() -> None:
    manager = KeyManager(MemoryKeyStore())
    key, record = anyio.run(lambda: manager.create("svc", ["operator", "readonly"], expires="30d"))
    assert record.expires is not None
    line = (
        f"id={record.key_id};hash={record.hash};roles=operator,readonly;expires={record.expires.isoformat()}"
    )
    store = EnvKeyStore({"HARDENKIT_APIKEY_SVC": line, "UNRELATED": "x"})
    client = TestClient(protected(store))
    body = client.get("/captures", headers={"X-API-Key": key}).json()
    assert body["name"] == "svc"
    with pytest.raises(ConfigurationError, match="read-only"):
        anyio.run(lambda: KeyManager(store).revoke("svc"))
    with pytest.raises(ConfigurationError, match="HARDENKIT_APIKEY_BAD"):
        EnvKeyStore({"HARDENKIT_APIKEY_BAD": "id=abc"})
    assert key not in line


def test_open_store_understands_its_descriptions(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path / "k.json")), FileKeyStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisKeyStore)
    assert isinstance(open_store("memory"), MemoryKeyStore)
    assert isinstance(open_store("env"), EnvKeyStore)
    with pytest.raises(ConfigurationError):
        open_store("")


# -- Redis (a real redis-server) -------------------------------------------------------


@pytest.mark.redis
def test_redis_store_create_verify_rotate_revoke(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisKeyStore(redis_server.url, cache_ttl=0)
        manager = KeyManager(store)
        try:
            key, _ = await manager.create("fleet", ["operator"])
            assert (await manager.verify(key))[1] == "ok"
            new, _ = await manager.rotate("fleet", grace="1h")
            assert (await manager.verify(key))[1] == "ok"
            assert (await manager.verify(new))[1] == "ok"
            await manager.revoke("fleet")
            assert (await manager.verify(new))[1] == "revoked"
            assert (await manager.verify(generate_key()))[1] == "unknown"
            assert len(await manager.list()) == 2
        finally:
            await store.aclose()

    anyio.run(scenario)


@pytest.mark.redis
def test_redis_store_cache_bounds_revoke_propagation(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        writer = KeyManager(RedisKeyStore(redis_server.url))
        reader = RedisKeyStore(redis_server.url, cache_ttl=0.2)
        key, record = await writer.create("fleet", ["operator"])
        assert (await reader.get(record.key_id)) is not None
        await writer.revoke("fleet")
        cached = await reader.get(record.key_id)
        assert cached is not None and cached.revoked is None  # still cached
        await anyio.sleep(0.3)
        fresh = await reader.get(record.key_id)
        assert fresh is not None and fresh.revoked is not None
        await reader.aclose()
        await writer.store.aclose()

    anyio.run(scenario)


async def _create_in_redis(url: str) -> str:
    store = RedisKeyStore(url)
    try:
        key, _ = await KeyManager(store).create("ci", ["readonly"])
    finally:
        await store.aclose()
    return key


@pytest.mark.redis
def test_redis_down_answers_503_then_recovers(redis_server: RedisServer) -> None:
    store = RedisKeyStore(redis_server.url, cache_ttl=0, timeout=0.3)
    key = anyio.run(_create_in_redis, redis_server.url)
    with TestClient(protected(store)) as client:  # one event loop; the lifespan closes the store
        assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
        redis_server.stop()
        response = client.get("/items", headers={"X-API-Key": key})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        redis_server.start()
        # The server came back empty (no persistence): the key is unknown now, a 401, not a 503.
        assert client.get("/items", headers={"X-API-Key": key}).status_code == 401


@pytest.mark.redis
def test_redis_lookup_failure_raises_storage_unavailable() -> None:
    async def scenario() -> None:
        store = RedisKeyStore("redis://127.0.0.1:1/0", timeout=0.2)
        with pytest.raises(StorageUnavailable):
            await store.get("abcdefabcdef")
        await store.aclose()

    anyio.run(scenario)


def test_a_new_key_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    anyio.run(lambda: KeyManager(FileKeyStore(path)).create("ci", ["readonly"]))
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)  # an operator's choice is kept by later writes
    anyio.run(lambda: KeyManager(FileKeyStore(path)).create("cd", ["readonly"]))
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_missing_key_file_refuses_every_key_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = generate_key()
    client = TestClient(protected(FileKeyStore(tmp_path / "absent.json", reload_interval=0)))
    with caplog.at_level(logging.WARNING, logger="hardenkit.auth"):
        for _ in range(3):
            assert client.get("/items", headers={"X-API-Key": key}).status_code == 401
    assert len([r for r in caplog.records if "does not exist" in r.message]) == 1


def test_middleware_without_a_store_says_what_to_write() -> None:
    from starlette.applications import Starlette

    from hardenkit.auth import APIKeyMiddleware

    with pytest.raises(ConfigurationError, match="HARDENKIT_AUTH_STORE"):
        APIKeyMiddleware(Starlette())


@pytest.mark.redis
def test_cli_manages_keys_in_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hardenkit", "keys", "--store", redis_server.url, *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)

    created = run("create", "--name", "fleet", "--role", "operator")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert run("verify", stdin=key).returncode == 0
    assert json.loads(run("list", "--json").stdout)[0]["name"] == "fleet"
    assert run("revoke", "fleet").returncode == 0
    assert run("verify", stdin=key).returncode == 1


def test_concurrent_first_requests_wait_for_the_first_load(tmp_path: Path) -> None:
    from support import asgi_request

    path = tmp_path / "keys.json"
    key, _ = anyio.run(lambda: KeyManager(FileKeyStore(path)).create("ci", ["readonly"]))
    app = protected(FileKeyStore(path))
    statuses: list[int] = []

    async def one() -> None:
        response = await asgi_request(app, "/items", headers=[(b"host", b"t"), (b"x-api-key", key.encode())])
        statuses.append(response.status)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)

    anyio.run(scenario)
    assert statuses == [200] * 20
