"""hardenkit in every ASGI framework: Starlette, FastAPI, Litestar, Quart and Django's ASGI handler.

Each framework's app is hardened two ways, ``harden()`` (install on Starlette/FastAPI,
wrap for the others) and an explicit ``Kit.wrap``; every response (200, 404, the
framework's own 500, the middleware's 429, 413) carries the contract headers, the
probes answer before the app, and lifespan works whether the framework supports it
(its own startup runs) or not (Django: the kit answers it).
"""

from __future__ import annotations

from typing import Any

import pytest
from framework_apps import BUILDERS, STARTED
from starlette.testclient import TestClient

import hardenkit as hk

FRAMEWORKS = list(BUILDERS)
MODES = ["harden", "kit_wrap"]


def hardened(framework: str, mode: str, *, limit: str = "100/minute") -> Any:
    app = BUILDERS[framework]()
    if mode == "harden":
        return hk.harden(app, env=False, ratelimit={"default": limit})
    return (
        hk.Kit()
        .register(hk.HealthProbeMiddleware)
        .register(hk.HeaderContractMiddleware)
        .register(hk.RateLimitMiddleware, default=limit)
        .wrap(app)
    )


def assert_contract(response: Any) -> None:
    assert len(response.headers.get_list("x-request-id")) == 1
    assert response.headers["x-latency-ms"].isdigit()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_contract_headers_on_200_404_and_the_frameworks_own_500(framework: str, mode: str) -> None:
    with TestClient(hardened(framework, mode), raise_server_exceptions=False) as client:
        ok = client.get("/", headers={"X-Request-ID": "trace-1"})
        assert (ok.status_code, ok.text) == (200, "ok")
        assert ok.headers["x-request-id"] == "trace-1"
        assert_contract(ok)
        missing = client.get("/nowhere")
        assert missing.status_code == 404
        assert_contract(missing)
        failed = client.get("/boom")
        assert failed.status_code == 500
        assert "kaput" not in failed.text  # no traceback or message leaks
        assert_contract(failed)
        invalid = client.get("/", headers={"X-Request-ID": "bad id\twith spaces"})
        assert invalid.headers["x-request-id"] != "bad id\twith spaces"
        assert_contract(invalid)


def test_probes_answer_before_the_app_with_the_contract_headers(framework: str, mode: str) -> None:
    with TestClient(hardened(framework, mode)) as client:
        for path in ("/livez", "/readyz", "/healthz"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == "application/health+json"
            assert response.json()["status"] == "pass"
            assert_contract(response)
        echoed = client.get("/readyz", headers={"X-Request-ID": "probe-7"})
        assert echoed.headers["x-request-id"] == "probe-7"


def test_lifespan_runs_the_frameworks_own_startup_or_is_answered_by_the_kit(
    framework: str, mode: str
) -> None:
    STARTED.clear()
    with TestClient(hardened(framework, mode)) as client:
        assert client.get("/").text == "ok"
        if framework != "django":  # Django has no lifespan: the kit answers it
            assert STARTED == [framework]


def test_the_middlewares_429_carries_the_contract_in_every_framework(framework: str, mode: str) -> None:
    with TestClient(hardened(framework, mode, limit="2/minute")) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 200]
        limited = client.get("/")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["request_id"] == limited.headers["x-request-id"]
        assert int(limited.headers["retry-after"]) > 0
        assert_contract(limited)
        # Probes are never limited.
        assert client.get("/livez").status_code == 200


def test_harden_limits_request_bodies_in_every_framework(framework: str) -> None:
    with TestClient(hk.harden(BUILDERS[framework](), env=False, body_limit={"max_body_size": 16})) as client:
        response = client.post("/", content=b"x" * 17)
        assert response.status_code == 413
        assert_contract(response)


# The in-handler check (``await hk.rate_limit(...)()``) raises RateLimitExceeded; a
# framework that turns it into its own 500 (Litestar, Quart, Django, FastAPI under
# Kit.wrap) gets that 500 replaced by the middleware's 429.
def test_an_in_handler_limit_answers_429_in_every_framework(framework: str, mode: str) -> None:
    with TestClient(hardened(framework, mode), raise_server_exceptions=False) as client:
        assert client.get("/limited").status_code == 200
        limited = client.get("/limited")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["request_id"] == limited.headers["x-request-id"]
        assert int(limited.headers["retry-after"]) > 0
        assert "ratelimit" in limited.headers
        assert_contract(limited)
        # The next request is the framework's own again (its real 500 stays a 500).
        assert client.get("/").status_code == 200
        assert client.get("/boom").status_code == 500
