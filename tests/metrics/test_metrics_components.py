"""The real rate limiter and health probes reporting through the kit's events.

The emitting lines belong to the ratelimit and health packages (added after the
metrics branch is merged); until a package emits, its test skips, saying so.
"""

from __future__ import annotations

import inspect

import pytest
from metrics_support import call, samples, scrape
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import hardenkit as hk
from hardenkit.health import Check
from support import free_port

pytestmark = pytest.mark.anyio


def _emits(middleware: type) -> bool:
    module = inspect.getmodule(middleware)
    return module is not None and "events_of" in inspect.getsource(module)


async def test_rate_limit_decisions_and_fallbacks_from_the_real_limiter() -> None:
    if not _emits(hk.RateLimitMiddleware):
        pytest.skip("hardenkit.ratelimit does not emit through hardenkit._core.events yet")
    app = hk.harden(
        Starlette(routes=[Route("/", PlainTextResponse("ok"))]),
        env=False,
        ratelimit={
            "default": "2/minute",
            "storage": f"redis://127.0.0.1:{free_port()}/0",
            "on_storage_error": "memory",
        },
    )
    for _ in range(3):
        await call(app, "/")
    text = await scrape(app)
    assert samples(text, "hardenkit_ratelimit_decisions_total") == {
        (("policy", "default"), ("result", "allowed")): 2.0,
        (("policy", "default"), ("result", "limited")): 1.0,
    }
    assert samples(text, "hardenkit_ratelimit_storage_fallbacks_total") == {(("mode", "memory"),): 3.0}


async def test_probe_and_check_results_from_the_real_probes() -> None:
    if not _emits(hk.HealthProbeMiddleware):
        pytest.skip("hardenkit.health does not emit through hardenkit._core.events yet")
    app = hk.harden(
        Starlette(routes=[Route("/", PlainTextResponse("ok"))]),
        env=False,
        ratelimit=False,
        health={"checks": [Check("db", lambda: False)]},
    )
    await call(app, "/readyz")
    await call(app, "/livez")
    text = await scrape(app)
    assert samples(text, "hardenkit_health_probes_total") == {
        (("probe", "ready"), ("status", "fail")): 1.0,
        (("probe", "live"), ("status", "pass")): 1.0,
    }
    assert samples(text, "hardenkit_health_checks_total") == {(("check", "db"), ("status", "fail")): 1.0}
    assert not samples(text, "http_requests_total")  # probes are not traffic
