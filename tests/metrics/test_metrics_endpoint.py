"""The /metrics endpoint (access policy, negotiation), the kit wiring, events, options, imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from metrics_support import call, samples, scrape
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk
from hardenkit._core import kit as kit_module
from hardenkit._core.events import (
    HEALTH_CHECK,
    HEALTH_PROBE,
    RATELIMIT_DECISION,
    RATELIMIT_FALLBACK,
    Events,
    events_of,
)
from hardenkit.errors import ConfigurationError

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token-for-scrapers-0123456789"


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def app_with(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(hk.MetricsMiddleware, **options)
    return app


# -- who may read /metrics -------------------------------------------------------------------


async def test_refused_from_a_public_address_with_a_problem_document() -> None:
    app = hk.harden(Starlette(routes=[Route("/", ok)]), env=False)
    response = await call(app, "/metrics", client=("203.0.113.9", 5000))
    assert response is not None and response.status == 403
    assert response.headers["content-type"] == "application/problem+json"
    document = json.loads(response.body)
    assert document["status"] == 403 and document["request_id"] == response.headers["x-request-id"]
    assert b"http_requests_total" not in response.body


@pytest.mark.parametrize(
    "client", [("127.0.0.1", 1), ("::1", 1), ("10.1.2.3", 1), ("192.168.0.7", 1), ("::ffff:10.0.0.1", 1)]
)
async def test_served_to_loopback_and_private_addresses(client: tuple[str, int]) -> None:
    response = await call(app_with(), "/metrics", client=client)
    assert response is not None and response.status == 200


async def test_served_with_the_token_from_anywhere_and_refused_with_a_wrong_one() -> None:
    app = app_with(token=TOKEN)
    good = await call(
        app, "/metrics", client=("203.0.113.9", 1), headers=[(b"authorization", f"Bearer {TOKEN}".encode())]
    )
    bad = await call(app, "/metrics", client=("203.0.113.9", 1), headers=[(b"authorization", b"Bearer nope")])
    assert good is not None and good.status == 200
    assert bad is not None and bad.status == 403


async def test_an_empty_allow_list_means_token_only() -> None:
    app = app_with(allow=[], token=TOKEN)
    response = await call(app, "/metrics", client=("127.0.0.1", 1))
    assert response is not None and response.status == 403


@pytest.mark.parametrize("header", [b"x-forwarded-for", b"forwarded", b"x-real-ip"])
async def test_a_request_relayed_by_a_proxy_is_not_let_in_by_address(header: bytes) -> None:
    # Behind a proxy on a private network every client looks private.
    response = await call(app_with(), "/metrics", client=("10.0.0.5", 1), headers=[(header, b"203.0.113.9")])
    assert response is not None and response.status == 403
    trusted = await call(
        app_with(trust_forwarded=True), "/metrics", client=("10.0.0.5", 1), headers=[(header, b"x")]
    )
    assert trusted is not None and trusted.status == 200


async def test_no_client_address_is_refused() -> None:
    response = await call(app_with(), "/metrics", client=None)
    assert response is not None and response.status == 403


async def test_only_get_and_head() -> None:
    response = await call(app_with(), "/metrics", method="POST")
    assert response is not None and response.status == 405 and response.headers["allow"] == "GET, HEAD"


async def test_refusals_are_counted() -> None:
    app = app_with()
    await call(app, "/metrics", client=("203.0.113.9", 1))
    assert samples(await scrape(app), "hardenkit_metrics_scrapes_total") == {
        (("result", "refused"),): 1.0,
        (("result", "served"),): 1.0,
    }


async def test_the_exposition_parses_with_prometheus_clients_own_parser() -> None:
    app = app_with()
    await call(app, "/")
    text = await scrape(app)
    assert samples(text, "http_requests_total")


async def test_the_default_registry_is_served_without_families_named_like_ours() -> None:
    from prometheus_client import REGISTRY, Counter

    theirs = Counter("http_requests", "another library's counter", ["handler"])
    mine = Counter("app_logins", "the user's own metric")
    try:
        theirs.labels("/").inc()
        mine.inc()
        app = app_with()
        await call(app, "/")
        text = await scrape(app)
        assert text.count("# TYPE http_requests_total counter") == 1
        assert samples(text, "app_logins_total") == {(): 1.0}
        assert samples(text, "process_resident_memory_bytes")
    finally:
        REGISTRY.unregister(theirs)
        REGISTRY.unregister(mine)


async def test_openmetrics_is_served_when_asked_for() -> None:
    app = app_with()
    await call(app, "/")
    response = await call(
        app, "/metrics", headers=[(b"accept", b"application/openmetrics-text; version=1.0.0")]
    )
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(response.body.decode())}  # type: ignore[no-untyped-call]
    assert "http_requests" in names and "http_request_duration_seconds" in names


async def test_metrics_path_none_serves_nothing_and_counts_the_path() -> None:
    app = app_with(metrics_path=None)
    response = await call(app, "/metrics")
    assert response is not None and response.status == 404


async def test_a_custom_path() -> None:
    app = app_with(metrics_path="/internal/metrics")
    response = await call(app, "/internal/metrics")
    assert response is not None and response.status == 200


# -- kit wiring --------------------------------------------------------------------------------


def test_the_slot_is_just_inside_the_header_contract_and_the_probes() -> None:
    # Probes are answered outside metrics (not traffic); everything else the header contract sees is counted.
    assert kit_module.SLOTS[: kit_module.SLOTS.index("metrics")] == ("headers", "health")
    assert kit_module.SLOTS.index("metrics") < kit_module.SLOTS.index("access_log")
    text = (
        hk.Kit()
        .register(hk.RateLimitMiddleware)
        .register(hk.MetricsMiddleware)
        .register(hk.HeaderContractMiddleware)
        .describe()
    )
    assert [line.split()[0] for line in text.splitlines()[2:-1]] == ["headers", "metrics", "ratelimit"]


def test_metrics_declares_its_path_as_answered() -> None:
    wiring = hk.Wiring()
    hk.MetricsMiddleware.hardenkit_declare({}, wiring)
    assert wiring.is_answered("/metrics")
    other = hk.Wiring()
    hk.MetricsMiddleware.hardenkit_declare({"metrics_path": None}, other)
    assert not other.is_answered("/metrics")


def test_harden_includes_metrics_when_prometheus_client_is_installed() -> None:
    app = hk.harden(Starlette(), env=False)
    assert any(m.cls is hk.MetricsMiddleware for m in app.user_middleware)


def test_harden_leaves_metrics_out_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kit_module, "_installed", lambda module: module != "prometheus_client")
    app = hk.harden(Starlette(), env=False)
    assert not any(m.cls is hk.MetricsMiddleware for m in app.user_middleware)
    with pytest.raises(ConfigurationError, match=r"pip install 'hardenkit\[metrics\]'"):
        hk.harden(Starlette(), env=False, metrics={"token": TOKEN})
    assert hk.harden(Starlette(), env=False, metrics=False) is not None


async def test_options_from_the_environment() -> None:
    kit = hk.Kit.from_env({"HARDENKIT_METRICS_TOKEN": TOKEN, "HARDENKIT_METRICS_ALLOW": ""})
    app = kit.register(hk.MetricsMiddleware).install(Starlette(routes=[Route("/", ok)]))
    refused = await call(app, "/metrics")
    served = await call(app, "/metrics", headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
    assert refused is not None and refused.status == 403
    assert served is not None and served.status == 200


def test_a_bad_option_from_the_environment_names_the_variable() -> None:
    kit = hk.Kit.from_env({"HARDENKIT_METRICS_TOKEN": "short"})
    with pytest.raises(ConfigurationError, match="HARDENKIT_METRICS_TOKEN"):
        kit.register(hk.MetricsMiddleware).install(Starlette())


# -- events from other components ----------------------------------------------------------


class FakeLimiter:
    """A minimal component in the rate limiter's slot emitting through the kit's events."""

    hardenkit_slot: ClassVar[str] = "ratelimit"

    def __init__(self, app: Any, *, kit: hk.Wiring | None = None) -> None:
        self.app = app
        self.events = events_of(kit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/limited":
            self.events.emit(RATELIMIT_DECISION, policy="default", result="limited")
            self.events.emit(RATELIMIT_FALLBACK, mode="memory")
            await PlainTextResponse("slow down", status_code=429)(scope, receive, send)
            return
        self.events.emit(RATELIMIT_DECISION, policy="default", result="allowed")
        await self.app(scope, receive, send)


class FakeProbes:
    hardenkit_slot: ClassVar[str] = "health"

    def __init__(self, app: Any, *, kit: hk.Wiring | None = None) -> None:
        self.app = app
        self.events = events_of(kit)

    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: hk.Wiring) -> None:
        wiring.answer_paths("/readyz", owner="health")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/readyz":
            self.events.emit(HEALTH_CHECK, check="redis", status="fail")
            self.events.emit(HEALTH_PROBE, probe="ready", status="fail")
            await PlainTextResponse("no", status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def test_rate_limit_decisions_fallbacks_and_probe_results_arrive_through_the_wiring() -> None:
    kit = hk.Kit().register(FakeLimiter).register(FakeProbes).register(hk.MetricsMiddleware)
    app = kit.install(Starlette(routes=[Route("/", ok)]))
    for path in ("/", "/", "/limited", "/readyz"):
        await call(app, path)
    text = await scrape(app)
    assert samples(text, "hardenkit_ratelimit_decisions_total") == {
        (("policy", "default"), ("result", "allowed")): 2.0,
        (("policy", "default"), ("result", "limited")): 1.0,
    }
    assert samples(text, "hardenkit_ratelimit_storage_fallbacks_total") == {(("mode", "memory"),): 1.0}
    assert samples(text, "hardenkit_health_probes_total") == {(("probe", "ready"), ("status", "fail")): 1.0}
    assert samples(text, "hardenkit_health_checks_total") == {(("check", "redis"), ("status", "fail")): 1.0}
    # The probe is no traffic; the 429 is.
    assert {dict(k)["status"] for k in samples(text, "http_requests_total")} == {"200", "429"}


def test_events_without_a_listener_cost_nothing_and_a_broken_listener_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()
    events.emit(RATELIMIT_DECISION, policy="p", result="allowed")
    assert not events.listening(RATELIMIT_DECISION)
    calls: list[dict[str, str]] = []

    def broken(fields: dict[str, str]) -> None:
        raise ValueError("bug")

    events.listen(RATELIMIT_DECISION, broken)
    events.listen(RATELIMIT_DECISION, calls.append)
    for _ in range(3):
        events.emit(RATELIMIT_DECISION, policy="p", result="allowed")
    assert len(calls) == 3
    assert len([r for r in caplog.records if "listener" in r.getMessage()]) == 1


def test_one_channel_per_kit_whoever_asks_first() -> None:
    wiring = hk.Wiring()
    assert events_of(wiring) is events_of(wiring)
    assert events_of(None) is not events_of(None)


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics_path": "metrics"}, "metrics_path"),
        ({"metrics_path": "/m?x"}, "metrics_path"),
        ({"allow": ["not-a-network"]}, "allow"),
        ({"allow": "10.0.0.0/8"}, "allow"),
        ({"token": "short"}, "token"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"max_route_labels": 0}, "max_route_labels"),
        ({"buckets": [0.1, -1]}, "buckets"),
        ({"slos": ["api"]}, "slos"),
        ({"multiprocess": "yes"}, "multiprocess"),
        ({"route_template": "path"}, "route_template"),
    ],
)
def test_bad_options_say_what_to_write(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        hk.MetricsMiddleware(PlainTextResponse("ok"), **options)


# -- imports ------------------------------------------------------------------------------------


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "code", ["import hardenkit", "import hardenkit.metrics", "import hardenkit as hk; hk.SLO('a')"]
)
def test_importing_does_not_load_prometheus_client(code: str) -> None:
    modules = _modules_after(code)
    assert not any(m.split(".")[0] in ("prometheus_client", "starlette", "anyio") for m in modules), code


def test_building_the_middleware_loads_it() -> None:
    assert "prometheus_client" in _modules_after(
        "import hardenkit as hk\nhk.MetricsMiddleware(lambda *a: None, multiprocess=False)"
    )


# -- a separate port --------------------------------------------------------------------------------


def test_a_separate_port_serves_the_metrics_and_the_app_path_is_free(tmp_path: Path) -> None:
    import urllib.request

    from support import free_port

    port = free_port()
    kit = hk.Kit().register(hk.MetricsMiddleware, port=port)
    app = kit.install(Starlette(routes=[Route("/", ok)]))
    from starlette.testclient import TestClient

    with TestClient(app) as client:  # lifespan: the kit starts the port's server
        assert client.get("/").status_code == 200
        assert client.get("/metrics").status_code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    assert "http_requests_total" in body
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


def test_a_standalone_middleware_serves_its_port_for_the_lifespan_and_a_busy_port_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket
    import urllib.request

    from starlette.testclient import TestClient

    from support import free_port

    port = free_port()
    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(hk.MetricsMiddleware, port=port)
    with TestClient(app) as client:
        client.get("/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"http_requests_total" in response.read()
    with socket.create_server(("127.0.0.1", 0)) as busy, caplog.at_level("INFO", logger="hardenkit.metrics"):
        taken = busy.getsockname()[1]
        other = Starlette(routes=[Route("/", ok)])
        other.add_middleware(hk.MetricsMiddleware, port=taken)
        with TestClient(other) as client:
            # Another worker holds the port: this one serves the app and says why it has no port.
            assert client.get("/").status_code == 200
    assert any("not bound by this process" in r.getMessage() for r in caplog.records)
