"""Probes answered by the health component carry the header contract too (issue 13: every response)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.testclient import TestClient

import hardenkit as hk


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_probe_answers_under_harden_carry_the_request_id_and_latency(path: str) -> None:
    client = TestClient(hk.harden(Starlette(), env=False))
    response = client.get(path, headers={"X-Request-ID": "probe-7"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.headers["x-request-id"] == "probe-7"
    assert int(response.headers["x-latency-ms"]) >= 0
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_generated_id_is_unique_per_probe() -> None:
    client = TestClient(hk.harden(Starlette(), env=False))
    ids = {client.get("/livez").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_probes_still_skip_the_access_log_and_the_rate_limit() -> None:
    app = hk.harden(Starlette(), env=False, ratelimit={"default": "1/minute"})
    client = TestClient(app)
    assert client.get("/").status_code == 404  # spends the one request the policy allows
    assert client.get("/").status_code == 429
    for _ in range(3):
        assert client.get("/livez").status_code == 200


def test_trusted_host_never_refuses_a_probe_sent_to_the_pod_address() -> None:
    # A kubelet probes http://<pod-ip>:port/livez; TrustedHost sits inside the probes.
    kit = hk.Kit().register(TrustedHostMiddleware, allowed_hosts=["api.example.com"])
    kit.register(hk.HealthProbeMiddleware).register(hk.HeaderContractMiddleware)
    client = TestClient(kit.install(Starlette()), base_url="http://10.1.2.3:8000")
    assert client.get("/livez").status_code == 200
    assert client.get("/").status_code == 400
