"""A Redis key store shared by two real uvicorn processes: a revoke on one is refused on the other."""

from __future__ import annotations

import time

import anyio
import httpx2
import pytest

from hardenkit.auth import KeyManager, RedisKeyStore
from support import RedisServer, uvicorn_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def _create(url: str, name: str, role: str) -> str:
    store = RedisKeyStore(url)
    try:
        key, _ = await KeyManager(store).create(name, [role])
    finally:
        await store.aclose()
    return key


def test_revoke_on_one_process_is_refused_on_the_other(redis_server: RedisServer) -> None:
    admin_key = anyio.run(_create, redis_server.url, "ops", "admin")
    client_key = anyio.run(_create, redis_server.url, "ci", "readonly")
    env = {"AUTH_APP_STORE": redis_server.url, "AUTH_APP_CACHE_TTL": "1"}
    with (
        uvicorn_server("auth_app:app", env=env, extra_args=("--app-dir", "tests/integration")) as (one, _),
        uvicorn_server("auth_app:app", env=env, extra_args=("--app-dir", "tests/integration")) as (two, _),
        httpx2.Client(timeout=10) as http,
    ):
        for base in (one, two):
            response = http.get(f"{base}/whoami", headers={"X-API-Key": client_key})
            assert response.status_code == 200
            assert response.json()["name"] == "ci"
        pids = {
            http.get(f"{base}/whoami", headers={"X-API-Key": client_key}).json()["pid"] for base in (one, two)
        }
        assert len(pids) == 2

        # The readonly key may not use the admin app; the admin key may.
        assert http.post(f"{one}/admin/keys/ci/revoke", headers={"X-API-Key": client_key}).status_code == 403
        revoked = http.post(f"{one}/admin/keys/ci/revoke", headers={"X-API-Key": admin_key})
        assert revoked.status_code == 200, revoked.text

        assert http.get(f"{one}/whoami", headers={"X-API-Key": client_key}).status_code == 401
        # The other process refuses it within its cache_ttl (1 s here); bounded wait, never a sleep-and-hope.
        deadline = time.monotonic() + 10
        status = 200
        while time.monotonic() < deadline:
            status = http.get(f"{two}/whoami", headers={"X-API-Key": client_key}).status_code
            if status == 401:
                break
            time.sleep(0.1)
        assert status == 401
        assert http.get(f"{two}/whoami", headers={"X-API-Key": admin_key}).status_code == 200

        # A key created through the admin app on one process works on the other.
        created = http.post(
            f"{two}/admin/keys/",
            headers={"X-API-Key": admin_key},
            json={"name": "new", "roles": ["readonly"]},
        )
        assert created.status_code == 201, created.text
        assert http.get(f"{one}/whoami", headers={"X-API-Key": created.json()["key"]}).json()["name"] == "new"


def test_a_key_quota_is_shared_by_the_fleet_and_other_keys_keep_theirs(redis_server: RedisServer) -> None:
    first = anyio.run(_create, redis_server.url, "first", "readonly")
    second = anyio.run(_create, redis_server.url, "second", "readonly")
    env = {"AUTH_APP_STORE": redis_server.url, "AUTH_APP_RATE": "4/minute"}
    with (
        uvicorn_server("auth_app:app", env=env, extra_args=("--app-dir", "tests/integration")) as (one, _),
        uvicorn_server("auth_app:app", env=env, extra_args=("--app-dir", "tests/integration")) as (two, _),
        httpx2.Client(timeout=10) as http,
    ):
        statuses = [
            http.get(f"{base}/whoami", headers={"X-API-Key": first}).status_code for base in (one, two) * 3
        ]
        assert statuses.count(200) == 4 and statuses.count(429) == 2
        assert statuses[-2:] == [429, 429]
        assert http.get(f"{one}/whoami", headers={"X-API-Key": second}).status_code == 200
