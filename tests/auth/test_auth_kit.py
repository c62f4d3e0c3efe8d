"""APIKeyMiddleware in a kit: its place, per-key limits with the real rate limiter, the redactor."""

from __future__ import annotations

import logging
import re

import pytest
from auth_helpers import make_keys, whoami
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

import hardenkit as hk
from hardenkit.auth import KEY_PATTERN, APIKeyMiddleware, cost_by_role, generate_key, key_by_principal


def app_with(store: object, **ratelimit: object) -> Starlette:
    app = Starlette(routes=[Route("/items", whoami), Route("/docs", whoami)])
    kit = (
        hk.Kit()
        .register(
            hk.RateLimitMiddleware,
            **{"default": "3/minute", "key": key_by_principal, "strategy": "moving-window", **ratelimit},
        )
        .register(APIKeyMiddleware, store=store, public_paths=["/docs"], max_failures=4)
        .register(hk.HeaderContractMiddleware)
        .register(hk.HealthProbeMiddleware)
    )
    installed: Starlette = kit.install(app)
    return installed


def test_auth_sits_just_outside_the_rate_limiter() -> None:
    store, _ = make_keys()
    kit = hk.Kit().register(hk.RateLimitMiddleware).register(APIKeyMiddleware, store=store)
    kit.register(hk.AccessLogMiddleware)
    described = kit.describe()
    assert described.index("AccessLogMiddleware") < described.index("APIKeyMiddleware")
    assert described.index("APIKeyMiddleware") < described.index("RateLimitMiddleware")


def test_each_key_has_its_own_quota_with_the_real_rate_limiter() -> None:
    store, keys = make_keys()
    client = TestClient(app_with(store))
    first = [client.get("/items", headers={"X-API-Key": keys["operator"]}).status_code for _ in range(4)]
    second = [client.get("/items", headers={"X-API-Key": keys["readonly"]}).status_code for _ in range(4)]
    assert first == [200, 200, 200, 429]
    assert second == [200, 200, 200, 429]  # same address, another key: its own quota


def test_a_key_is_limited_across_addresses() -> None:
    store, keys = make_keys()
    app = app_with(store)
    statuses = [
        TestClient(app, client=(f"198.51.100.{i}", 5000))
        .get("/items", headers={"X-API-Key": keys["admin"]})
        .status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_unauthenticated_flood_is_limited_per_address_before_keys_are_checked() -> None:
    store, keys = make_keys()
    client = TestClient(app_with(store), client=("203.0.113.5", 5000))
    statuses = [client.get("/items", headers={"X-API-Key": generate_key()}).status_code for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    # Other addresses are not affected.
    other = TestClient(app_with(store), client=("203.0.113.6", 5000))
    assert other.get("/items", headers={"X-API-Key": keys["admin"]}).status_code == 200


def test_public_paths_are_limited_per_address() -> None:
    store, _ = make_keys()
    client = TestClient(app_with(store))
    assert [client.get("/docs").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_probes_pass_without_a_key() -> None:
    store, _ = make_keys()
    client = TestClient(app_with(store))
    assert client.get("/livez").status_code == 200


def test_refusals_carry_the_request_id() -> None:
    store, _ = make_keys()
    response = TestClient(app_with(store)).get("/items")
    assert response.status_code == 401
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_per_role_tiers_through_cost() -> None:
    store, keys = make_keys()
    client = TestClient(app_with(store, default="4/minute", cost=cost_by_role({"admin": 1, "readonly": 2})))
    admin = [client.get("/items", headers={"X-API-Key": keys["admin"]}).status_code for _ in range(5)]
    reader = [client.get("/items", headers={"X-API-Key": keys["readonly"]}).status_code for _ in range(3)]
    assert admin == [200, 200, 200, 200, 429]
    assert reader == [200, 200, 429]


def test_key_id_reaches_the_access_log_scope_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    store, keys = make_keys()
    seen: list[object] = []

    class Outer:
        """Stands where the access log stands: outside auth, reading the scope after the response."""

        def __init__(self, app: object) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
            await self.app(scope, receive, send)  # type: ignore[operator]
            seen.append(scope.get("hardenkit.key_id"))

    app = Starlette(routes=[Route("/items", whoami)])
    app.add_middleware(APIKeyMiddleware, store=store)
    app.add_middleware(Outer)
    with caplog.at_level(logging.DEBUG):
        TestClient(app).get("/items", headers={"X-API-Key": keys["admin"]})
        TestClient(app).get(
            "/items", headers={"X-API-Key": keys["admin"][:-1] + ("x" if keys["admin"][-1] != "x" else "y")}
        )
    assert seen == [keys["admin"][5:17], None]
    assert keys["admin"] not in caplog.text


def test_redactor_masks_a_key_through_a_custom_pattern() -> None:
    key = generate_key()
    # Not named "hardenkit_api_key": that will be the built-in category once logs/rules.py has the rule.
    redactor = hk.Redactor(patterns={"hardenkit_key_custom": KEY_PATTERN})
    text = f"calling with X-API-Key: {key} failed"
    masked = redactor.redact(text)
    assert key not in masked
    assert key[18:-6] not in masked
    assert re.search(KEY_PATTERN, f"x={key};") is not None


def test_default_redactor_masks_a_hardenkit_key_in_free_text() -> None:
    key = generate_key()
    for text in (f"oops, pasted {key} in a ticket", f'{{"value": "{key}"}}', f"?k={key}&x=1"):
        masked = hk.Redactor().redact(text)
        assert key[18:-6] not in masked and "[REDACTED:hardenkit_api_key]" in masked
    typo = key[:-1] + ("a" if key[-1] != "a" else "b")  # checksum fails: still hidden
    assert key[18:-6] not in hk.Redactor().redact(f"log: {typo}")


def test_pepper_from_the_environment_is_never_shown() -> None:
    kit = hk.Kit(environ={"HARDENKIT_AUTH_PEPPER": "s3cr3t-pepper", "HARDENKIT_AUTH_STORE": "memory"})
    kit.register(APIKeyMiddleware)
    described = kit.describe()
    assert "pepper=" in described
    assert "s3cr3t-pepper" not in described


def test_the_access_log_line_carries_the_key_id_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    store, keys = make_keys()
    app = Starlette(routes=[Route("/items", whoami)])
    kit = hk.Kit().register(APIKeyMiddleware, store=store).register(hk.AccessLogMiddleware)
    client = TestClient(kit.install(app))
    with caplog.at_level(logging.INFO, logger="hardenkit.access"):
        assert client.get("/items", headers={"X-API-Key": keys["admin"]}).status_code == 200
        assert (
            client.get(
                "/items",
                headers={"X-API-Key": keys["admin"][:-1] + ("x" if keys["admin"][-1] != "x" else "y")},
            ).status_code
            == 401
        )
    lines = [r for r in caplog.records if r.name == "hardenkit.access"]
    assert [getattr(r, "key_id", None) for r in lines] == [keys["admin"][5:17], None]
    assert keys["admin"] not in caplog.text
