from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hardenkit as hk
from hardenkit._core.config import EnvParser, env_bool, env_float, env_int, env_list, env_optional, env_str
from hardenkit._core.kit import SLOTS, Wiring, after, before

# -- small components of the tests' own ----------------------------------------------


class Tracer:
    """Records the order in which layers see a request, via a header list in scope."""

    name: ClassVar[str] = "tracer"

    def __init__(self, app: ASGIApp, *, label: str = "") -> None:
        self.app = app
        self.label = label or type(self).name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("trace", []).append(self.label)
        await self.app(scope, receive, send)


def slot_tracer(slot: str) -> type[Tracer]:
    class SlotTracer(Tracer):
        hardenkit_slot: ClassVar[str] = slot
        name: ClassVar[str] = slot

        def __init__(self, app: ASGIApp, *, kit: Wiring | None = None, label: str = "") -> None:
            super().__init__(app, label=label)
            self.kit = kit

    SlotTracer.__qualname__ = f"Tracer[{slot}]"
    return SlotTracer


class Probe:
    """A component that answers its own path, like the health probes do."""

    hardenkit_slot: ClassVar[str] = "health"
    hardenkit_env_name: ClassVar[str] = "PROBE"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "path": env_str,
        "delay": env_float,
        "enabled": env_bool,
        "retries": env_int,
        "tags": env_list,
        "limit": env_optional(env_int),
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str = "/probe",
        delay: float = 0.0,
        enabled: bool = True,
        retries: int = 1,
        tags: list[str] | None = None,
        limit: int | None = 5,
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self.path = path
        self.options = {"delay": delay, "enabled": enabled, "retries": retries, "tags": tags, "limit": limit}
        self.shutdowns = 0
        if kit is not None:
            kit.provide("probe.instance", self)
            kit.on_shutdown(self.shutdown)

    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: Wiring) -> None:
        wiring.answer_paths(options.get("path", "/probe"), owner="probe")
        wiring.expose_headers("X-Probe")

    async def shutdown(self) -> None:
        self.shutdowns += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            await PlainTextResponse("probe ok", headers={"X-Probe": "1"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Counter:
    """A rate-limit-like component that skips paths answered by outer components."""

    hardenkit_slot: ClassVar[str] = "ratelimit"
    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp, *, kit: Wiring | None = None) -> None:
        self.app = app
        self.kit = kit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (self.kit and self.kit.is_answered(scope["path"])):
            Counter.seen.append(scope["path"])
        await self.app(scope, receive, send)


async def trace_endpoint(request: Request) -> Response:
    return JSONResponse({"trace": request.scope.get("trace", [])})


def make_app() -> Starlette:
    return Starlette(routes=[Route("/", trace_endpoint), Route("/probe", trace_endpoint)])


# -- ordering ------------------------------------------------------------------------


def test_install_orders_slots_canonically_whatever_the_register_order() -> None:
    tracers = {slot: slot_tracer(slot) for slot in SLOTS}
    for order in (
        list(SLOTS),
        list(reversed(SLOTS)),
        ["ratelimit", "health", "body_limit", "metrics", "timeout", "auth", "headers", "access_log"],
    ):
        kit = hk.Kit()
        for slot in order:
            kit.register(tracers[slot])
        client = TestClient(kit.install(make_app()))
        assert client.get("/").json()["trace"] == list(SLOTS), order


def test_install_returns_the_app_and_wrap_returns_a_new_app() -> None:
    app = make_app()
    assert hk.Kit().register(slot_tracer("headers")).install(app) is app


def test_registering_same_class_again_replaces_options() -> None:
    tracer = slot_tracer("headers")
    kit = hk.Kit().register(tracer, label="first").register(tracer, label="second")
    assert kit.options(tracer) == {"label": "second"}
    client = TestClient(kit.install(make_app()))
    assert client.get("/").json()["trace"] == ["second"]


def test_two_classes_in_one_slot_is_an_error() -> None:
    kit = hk.Kit().register(slot_tracer("headers"))
    with pytest.raises(hk.ConfigurationError, match="slot 'headers' already holds"):
        kit.register(slot_tracer("headers"))


def test_other_middleware_gets_explicit_or_known_places() -> None:
    class Inner(Tracer):
        name = "inner"

    class Outer(Tracer):
        name = "outer"

    class BeforeLimit(Tracer):
        name = "before-ratelimit"

    class AfterHeaders(Tracer):
        name = "after-headers"

    kit = (
        hk.Kit()
        .register(Inner)  # unknown middleware: just outside the app
        .register_at(before("ratelimit"), BeforeLimit)
        .register(slot_tracer("ratelimit"))
        .register_at("outermost", Outer)
        .register(slot_tracer("headers"))
        .register_at(after("headers"), AfterHeaders)
        .register(slot_tracer("health"))
    )
    client = TestClient(kit.install(make_app()))
    assert client.get("/").json()["trace"] == [
        "outer", "headers", "after-headers", "health", "before-ratelimit", "ratelimit", "inner",
    ]  # fmt: skip


def test_register_takes_before_and_after_keywords_for_placement() -> None:
    class Audit(Tracer):
        name = "audit"

    Audit.__qualname__ = "Audit"
    kit = (
        hk.Kit()
        .register(slot_tracer("ratelimit"))
        .register(Audit, before="ratelimit")
        .register(slot_tracer("headers"))
        .register(GZipMiddleware, minimum_size=10, after="headers")
    )
    assert repr(kit) == "<Kit Tracer[headers] > GZipMiddleware > Audit > Tracer[ratelimit] > app>"
    client = TestClient(kit.install(make_app()))
    assert client.get("/").json()["trace"] == ["headers", "audit", "ratelimit"]
    with pytest.raises(hk.ConfigurationError, match="not both"):
        hk.Kit().register(Audit, before="ratelimit", after="headers")
    with pytest.raises(hk.ConfigurationError, match="is not known"):
        hk.Kit().register(Audit, after="nowhere")


def test_a_class_with_its_own_before_option_keeps_it() -> None:
    class Windowed:
        def __init__(self, app: ASGIApp, *, before: int = 0) -> None:
            self.app, self.before = app, before

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)

    kit = hk.Kit().register(Windowed, before=5)
    assert kit.options(Windowed) == {"before": 5}


def test_known_starlette_middleware_default_places() -> None:
    kit = (
        hk.Kit()
        .register(GZipMiddleware, minimum_size=10)
        .register(TrustedHostMiddleware, allowed_hosts=["testserver"])
        .register(hk.HeaderContractMiddleware)
        .register(slot_tracer("ratelimit"))
    )
    text = kit.describe()
    lines = [line.strip() for line in text.splitlines()]
    order = [line.split()[-1].split("(")[0] for line in lines[2:-1]]
    assert order == [
        "HeaderContractMiddleware",
        "TrustedHostMiddleware",
        "GZipMiddleware",
        "Tracer[ratelimit]",
    ]
    client = TestClient(kit.install(make_app()))
    rejected = client.get("/", headers={"Host": "evil.example"})
    assert rejected.status_code == 400
    assert "x-request-id" in rejected.headers  # TrustedHost sits inside the header contract


def test_bad_place_is_a_configuration_error() -> None:
    with pytest.raises(hk.ConfigurationError, match="before:<slot>"):
        hk.Kit().register_at("beside:headers", Tracer)
    with pytest.raises(hk.ConfigurationError):
        before("nowhere")
    with pytest.raises(hk.ConfigurationError):
        hk.Kit().register(42)  # type: ignore[arg-type]


def test_kit_option_is_reserved_for_components() -> None:
    with pytest.raises(hk.ConfigurationError, match="'kit' is set by the kit"):
        hk.Kit().register(slot_tracer("headers"), kit=Wiring())


def test_describe_and_repr_show_the_final_stack() -> None:
    kit = hk.Kit().register(slot_tracer("ratelimit"), label="rl").register(hk.HeaderContractMiddleware)
    assert repr(kit) == "<Kit HeaderContractMiddleware > Tracer[ratelimit] > app>"
    text = kit.describe()
    assert text.index("HeaderContractMiddleware") < text.index("Tracer[ratelimit](label='rl')")
    assert text.splitlines()[-1].strip() == "app"
    assert repr(hk.Kit()) == "<Kit (empty) > app>"


def test_unregister() -> None:
    tracer = slot_tracer("headers")
    kit = hk.Kit().register(tracer).unregister(tracer)
    assert tracer not in kit
    assert TestClient(kit.install(make_app())).get("/").json()["trace"] == []


# -- wiring ----------------------------------------------------------------------------


def test_components_tell_each_other_answered_paths() -> None:
    Counter.seen.clear()
    kit = hk.Kit().register(Counter).register(Probe)
    client = TestClient(kit.install(make_app()))
    assert client.get("/probe").text == "probe ok"
    assert client.get("/").status_code == 200
    assert Counter.seen == ["/"]


def test_answered_paths_follow_the_options() -> None:
    Counter.seen.clear()
    client = TestClient(hk.Kit().register(Counter).register(Probe, path="/alive").install(make_app()))
    client.get("/alive")
    client.get("/probe")
    assert Counter.seen == ["/probe"]


def test_exposed_headers_are_merged_into_cors() -> None:
    kit = (
        hk.Kit()
        .register(CORSMiddleware, allow_origins=["https://app.example"], expose_headers=["X-Own"])
        .register(hk.HeaderContractMiddleware)
        .register(Probe)
    )
    client = TestClient(kit.install(make_app()))
    response = client.get("/", headers={"Origin": "https://app.example"})
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-own", "x-request-id", "x-latency-ms", "x-probe"} <= exposed
    assert "x-request-id" in response.headers


def test_shutdown_hooks_and_provided_values_through_lifespan() -> None:
    app = make_app()
    hk.Kit().register(Probe).install(app)
    with TestClient(app) as client:
        client.get("/")
        wiring = _find_wiring(app)
        probe = wiring.get("probe.instance")
        assert isinstance(probe, Probe) and probe.shutdowns == 0
    assert probe.shutdowns == 1


def test_failing_hook_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    wiring = Wiring()

    def bad() -> None:
        raise RuntimeError("hook broke")

    async def good() -> None:
        calls.append("good")

    wiring.on_shutdown(bad)
    wiring.on_shutdown(good)
    wiring.on_startup(lambda: calls.append("sync-startup"))
    import anyio

    anyio.run(wiring.run_startup)
    anyio.run(wiring.run_shutdown)
    assert calls == ["sync-startup", "good"]
    assert any("hook broke" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_wiring_rejects_relative_paths_and_supports_prefixes() -> None:
    wiring = Wiring()
    with pytest.raises(hk.ConfigurationError):
        wiring.answer_paths("livez", owner="x")
    wiring.answer_paths("/internal/", owner="x", prefix=True)
    assert wiring.is_answered("/internal/metrics")
    assert not wiring.is_answered("/internals")
    assert "/internal/" in wiring.answered_prefixes
    assert "Wiring(" in repr(wiring)


def _find_wiring(app: Starlette) -> Wiring:
    for middleware in app.user_middleware:
        if "wiring" in middleware.kwargs:
            wiring = middleware.kwargs["wiring"]
            assert isinstance(wiring, Wiring)
            return wiring
    raise AssertionError("no kit root installed")


# -- wrap ------------------------------------------------------------------------------


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI 3 app with no framework at all."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"bare " + ",".join(scope.get("trace", [])).encode()})


def test_wrap_any_asgi_app() -> None:
    kit = hk.Kit().register(slot_tracer("ratelimit")).register(hk.HeaderContractMiddleware).register(Probe)
    wrapped = kit.wrap(bare_asgi)
    with TestClient(wrapped) as client:
        response = client.get("/")
        assert response.text == "bare ratelimit"
        assert "x-request-id" in response.headers
        assert client.get("/probe").text == "probe ok"


def test_install_rejects_non_starlette_and_wrap_rejects_non_callable() -> None:
    with pytest.raises(hk.ConfigurationError, match=r"kit\.wrap"):
        hk.Kit().install(bare_asgi)
    with pytest.raises(hk.ConfigurationError):
        hk.Kit().wrap("not an app")  # type: ignore[arg-type]


def test_kit_root_passes_lifespan_messages(tmp_path: Any) -> None:
    messages: list[str] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_spy(message: Message) -> None:
            messages.append(message["type"])
            await send(message)

        await bare_asgi(scope, receive, send_spy)

    with TestClient(hk.Kit().wrap(recorder)):
        pass
    assert messages == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# -- environment -----------------------------------------------------------------------


def test_from_env_reads_variables_and_explicit_options_win() -> None:
    env = {
        "HARDENKIT_PROBE_PATH": "/ping",
        "HARDENKIT_PROBE_DELAY": "1.5",
        "HARDENKIT_PROBE_ENABLED": "no",
        "HARDENKIT_PROBE_RETRIES": "3",
        "HARDENKIT_PROBE_TAGS": "a, b,,c",
        "HARDENKIT_PROBE_LIMIT": "none",
        "UNRELATED": "x",
    }
    kit = hk.Kit.from_env(env).register(Probe, retries=9)
    app = kit.install(make_app())
    with TestClient(app) as client:
        assert client.get("/ping").text == "probe ok"
        probe = _find_wiring(app).get("probe.instance")
    assert probe.options == {
        "delay": 1.5,
        "enabled": False,
        "retries": 9,
        "tags": ["a", "b", "c"],
        "limit": None,
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HARDENKIT_PROBE_DELAY", "soon"),
        ("HARDENKIT_PROBE_DELAY", "nan"),
        ("HARDENKIT_PROBE_ENABLED", "maybe"),
        ("HARDENKIT_PROBE_RETRIES", "1.5"),
        ("HARDENKIT_PROBE_COLOUR", "blue"),
    ],
)
def test_from_env_bad_value_names_the_variable(variable: str, value: str) -> None:
    kit = hk.Kit.from_env({variable: value}).register(Probe)
    with pytest.raises(hk.ConfigurationError, match=variable):
        kit.install(make_app())


def test_from_env_header_contract_variables() -> None:
    env = {"HARDENKIT_HEADERS_LATENCY_HEADER": "none", "HARDENKIT_HEADERS_SECURITY_HEADERS": "web"}
    client = TestClient(hk.Kit.from_env(env).register(hk.HeaderContractMiddleware).install(make_app()))
    headers = client.get("/").headers
    assert "x-latency-ms" not in headers
    assert headers["x-frame-options"] == "SAMEORIGIN"
    with pytest.raises(hk.ConfigurationError, match="HARDENKIT_HEADERS_SECURITY_HEADERS"):
        hk.Kit.from_env({"HARDENKIT_HEADERS_SECURITY_HEADERS": "loose"}).register(
            hk.HeaderContractMiddleware
        ).install(make_app())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HARDENKIT_HEADERS_LATENCY_HEADER", "X Bad Name"),
        ("HARDENKIT_HEADERS_HSTS", "max-age=1\x07"),
        ("HARDENKIT_HEADERS_REQUEST_ID_HEADER", "X-Request-ID\r"),
    ],
)
def test_from_env_value_refused_by_the_component_names_the_variable(variable: str, value: str) -> None:
    kit = hk.Kit.from_env({variable: value}).register(hk.HeaderContractMiddleware)
    with pytest.raises(hk.ConfigurationError, match=variable):
        kit.install(make_app())
    with pytest.raises(hk.ConfigurationError, match=variable):
        kit.wrap(bare_asgi)


def test_from_env_refused_value_is_not_blamed_when_an_explicit_option_wins() -> None:
    kit = hk.Kit.from_env({"HARDENKIT_HEADERS_LATENCY_HEADER": "X Bad"}).register(
        hk.HeaderContractMiddleware, latency_header="X-Time"
    )
    assert "x-time" in TestClient(kit.install(make_app())).get("/").headers


def test_plain_kit_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENKIT_PROBE_PATH", "/ping")
    client = TestClient(hk.Kit().register(Probe).install(make_app()))
    assert client.get("/probe").text == "probe ok"


# -- harden ----------------------------------------------------------------------------


def test_harden_installs_the_default_set() -> None:
    app = hk.harden(make_app(), env=False)
    response = TestClient(app).get("/nowhere")
    assert response.status_code == 404
    assert "x-request-id" in response.headers and "x-latency-ms" in response.headers


def test_harden_limits_request_bodies_with_starlettes_middleware() -> None:
    async def upload(request: Request) -> Response:
        return PlainTextResponse(str(len(await request.body())))

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    client = TestClient(hk.harden(app, env=False))
    assert client.post("/upload", content=b"x" * 1000).text == "1000"
    too_big = client.post("/upload", content=b"x" * (1_048_576 + 1))
    assert too_big.status_code == 413
    assert "x-request-id" in too_big.headers and "x-latency-ms" in too_big.headers
    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    client = TestClient(hk.harden(app, env=False, body_limit={"max_body_size": 10}))
    assert client.post("/upload", content=b"x" * 11).status_code == 413


def test_harden_overrides_and_leaving_out() -> None:
    app = hk.harden(make_app(), env=False, headers={"security_headers": "web"})
    assert TestClient(app).get("/").headers["x-frame-options"] == "SAMEORIGIN"
    app = hk.harden(make_app(), env=False, headers=False)
    assert "x-request-id" not in TestClient(app).get("/").headers
    with pytest.raises(hk.ConfigurationError, match="unknown component"):
        hk.harden(make_app(), cache={"ttl": 1})
    with pytest.raises(hk.ConfigurationError):
        hk.harden(make_app(), headers="web")  # type: ignore[arg-type]


def test_harden_reads_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENKIT_HEADERS_REQUEST_ID_HEADER", "X-Trace-ID")
    response = TestClient(hk.harden(make_app())).get("/")
    assert "x-trace-id" in response.headers


def test_harden_wraps_plain_asgi_apps() -> None:
    response = TestClient(hk.harden(bare_asgi, env=False)).get("/")
    assert response.text.startswith("bare") and "x-request-id" in response.headers
