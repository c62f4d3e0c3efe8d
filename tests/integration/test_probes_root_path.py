"""Probes under a real ``uvicorn --root-path /api``: the app's own paths, not the prefixed ones."""

from __future__ import annotations

import httpx2
import pytest

from support import uvicorn_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("app", ["integration.health_app:app", "integration.nolifespan_app:app"])
def test_probes_answer_under_uvicorn_root_path(app: str) -> None:
    with uvicorn_server(app, extra_args=("--root-path", "/api")) as (base, _):
        for path in ("/livez", "/readyz", "/healthz"):
            response = httpx2.get(f"{base}{path}", timeout=10)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == "application/health+json"
            assert response.json()["status"] == "pass"
        assert httpx2.get(f"{base}/", timeout=10).text == "fast"
