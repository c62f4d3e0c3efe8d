"""MetricsMiddleware: what is counted, under which labels, with which status."""

from __future__ import annotations

import logging
import random
import string
from typing import Any

import anyio
import pytest
from fastapi import APIRouter, FastAPI
from metrics_support import call, requests_by, samples, scrape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

import hardenkit as hk
from hardenkit.metrics.labels import OVERFLOW, UNMATCHED
from support import RedisServer, free_port

pytestmark = pytest.mark.anyio


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def echo(request: Request) -> Response:
    return PlainTextResponse(await request.body())


def starlette_app(**options: Any) -> Any:
    users = [Route("/things/{thing_id}", ok), Route("/", ok)]
    app = Starlette(
        routes=[
            Route("/", ok),
            Route("/items/{item_id:int}", ok),
            Route("/boom", boom),
            Route("/echo", echo, methods=["POST"]),
            Mount("/users/{user_id}", routes=users),
            Mount("/v1", routes=[Mount("/orgs/{org}", routes=[Route("/repos/{repo}", ok)])]),
            Mount("/static", app=PlainTextResponse("static file")),
        ]
    )
    app.add_middleware(hk.MetricsMiddleware, **options)
    return app


# -- route templates ---------------------------------------------------------------------------


async def test_starlette_routes_are_labelled_by_template_never_by_raw_path() -> None:
    app = starlette_app()
    for path in ("/", "/items/1", "/items/2", "/items/300", "/nope", "/nope/again"):
        await call(app, path)
    by_route = requests_by(await scrape(app), "route", "status")
    assert by_route == {("/", "200"): 1, ("/items/{item_id}", "200"): 3, (UNMATCHED, "404"): 2}


async def test_mounts_with_parameters_are_turned_back_into_templates() -> None:
    app = starlette_app()
    for path in ("/users/1/things/2", "/users/9/things/8", "/v1/orgs/acme/repos/x", "/v1/orgs/b/repos/y"):
        response = await call(app, path)
        assert response is not None and response.status == 200
    await call(app, "/users/5/missing")
    await call(app, "/static/app.js")
    by_route = requests_by(await scrape(app), "route", "status")
    # The static mount's own answer differs across starlette versions (200 on 1.x, 404 on 0.40);
    # what is tested is its label, a template.
    static = {key: value for key, value in by_route.items() if key[0] == "/static/{path}"}
    assert sum(static.values()) == 1
    import starlette

    # A miss inside a mount keeps the mount's template on starlette 1.x; 0.40 reports no partial
    # match for it, so it is the one bounded "<unmatched>" label there.
    missing = "/users/{user_id}/{path}" if int(starlette.__version__.split(".")[0]) >= 1 else "<unmatched>"
    assert {key: value for key, value in by_route.items() if key not in static} == {
        ("/users/{user_id}/things/{thing_id}", "200"): 2,
        ("/v1/orgs/{org}/repos/{repo}", "200"): 2,
        (missing, "404"): 1,
    }


async def test_a_root_path_prefix_is_not_part_of_the_template() -> None:
    app = starlette_app()
    await call(app, "/items/7", root_path="/api")
    await call(app, "/users/3/things/4", root_path="/api")
    assert requests_by(await scrape(app), "route") == {
        ("/items/{item_id}",): 1,
        ("/users/{user_id}/things/{thing_id}",): 1,
    }


async def test_fastapi_routers_and_path_parameters() -> None:
    router = APIRouter(prefix="/orders")

    @router.get("/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    app = FastAPI()
    app.include_router(router)

    @app.get("/users/{user_id}/cart")
    async def cart(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    app.add_middleware(hk.MetricsMiddleware)
    for path in ("/orders/1", "/orders/2", "/users/a/cart", "/orders/not-a-number"):
        await call(app, path)
    assert requests_by(await scrape(app), "route", "status") == {
        ("/orders/{order_id}", "200"): 2,
        ("/users/{user_id}/cart", "200"): 1,
        ("/orders/{order_id}", "422"): 1,
    }


async def test_a_method_the_route_does_not_take_is_counted_on_its_template() -> None:
    app = starlette_app()
    await call(app, "/items/3", method="DELETE")
    assert requests_by(await scrape(app), "method", "route", "status") == {
        ("DELETE", "/items/{item_id}", "405"): 1
    }


async def test_ten_thousand_random_paths_leave_the_label_count_bounded() -> None:
    app = starlette_app()
    rng = random.Random(16)
    for _ in range(10_000):
        path = "/" + "".join(rng.choices(string.ascii_letters + string.digits, k=12))
        await call(app, path)
    text = await scrape(app)
    assert requests_by(text, "route") == {(UNMATCHED,): 10_000}
    assert len(samples(text, "http_request_duration_seconds_count")) == 1


async def test_the_label_cap_sends_new_values_to_one_overflow_label() -> None:
    # A resolver that (wrongly) returns raw paths: the cap still bounds the series.
    app = starlette_app(route_template=lambda scope: scope["path"], max_route_labels=50)
    for index in range(500):
        await call(app, f"/items/{index}")
    routes = requests_by(await scrape(app), "route")
    assert len(routes) == 51
    assert routes[(OVERFLOW,)] == 450


async def test_a_resolver_that_finds_nothing_gives_the_unmatched_label() -> None:
    app = starlette_app(route_template=lambda scope: None)
    await call(app, "/items/1")
    assert requests_by(await scrape(app), "route") == {(UNMATCHED,): 1}


async def test_a_refusal_before_routing_still_gets_the_routes_template() -> None:
    # The limiter answers before the router runs: the template is matched for the label,
    # a method the route does not take included (the router's "partial" match).
    app = hk.harden(starlette_app_plain(), env=False, ratelimit={"default": "1/minute"})
    for method in ("GET", "GET", "DELETE"):
        await call(app, "/items/5", method=method, client=("10.0.0.9", 1))
    await call(app, "/nowhere", client=("10.0.0.9", 1))
    assert requests_by(await scrape(app), "method", "route", "status") == {
        ("GET", "/items/{item_id}", "200"): 1,
        ("GET", "/items/{item_id}", "429"): 1,
        ("DELETE", "/items/{item_id}", "429"): 1,
        ("GET", UNMATCHED, "429"): 1,
    }


async def test_a_refusal_before_routing_inside_a_mount() -> None:
    inner = Starlette(routes=[Route("/things/{thing_id}", ok)])
    app = hk.harden(
        Starlette(routes=[Mount("/users/{user_id}", app=inner)]), env=False, ratelimit={"default": "1/minute"}
    )
    for _ in range(2):
        await call(app, "/users/1/things/2", client=("10.0.0.9", 1))
    assert requests_by(await scrape(app), "route", "status") == {
        ("/users/{user_id}/things/{thing_id}", "200"): 1,
        ("/users/{user_id}/things/{thing_id}", "429"): 1,
    }


async def test_any_asgi_app_without_routes_counts_under_one_label() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = hk.Kit().register(hk.MetricsMiddleware).wrap(plain)
    for index in range(20):
        await call(app, f"/x/{index}")
    assert requests_by(await scrape(app), "route", "status") == {(UNMATCHED, "200"): 20}


async def test_unknown_methods_are_one_label() -> None:
    app = starlette_app()
    for method in ("FOO", "BAR", "get", "X" * 50):
        await call(app, "/", method=method)
    assert requests_by(await scrape(app), "method") == {("OTHER",): 4}


# -- final statuses ----------------------------------------------------------------------------


async def test_an_exception_is_counted_as_500_and_goes_on() -> None:
    app = starlette_app()
    with pytest.raises(RuntimeError):
        await call(app, "/boom")
    assert requests_by(await scrape(app), "route", "status") == {("/boom", "500"): 1}


async def test_a_client_that_disconnects_before_the_response_is_counted_as_499() -> None:
    async def waits(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # the client went away: nothing to answer

    app = hk.MetricsMiddleware(waits)
    assert await call(app, "/slow", disconnect=True) is None
    assert requests_by(await scrape(app), "status") == {("499",): 1}


async def test_a_cancelled_request_is_counted_as_499() -> None:
    started = anyio.Event()

    async def hangs(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    app = hk.MetricsMiddleware(hangs)
    async with anyio.create_task_group() as tg:
        tg.start_soon(call, app, "/hang")
        await started.wait()
        tg.cancel_scope.cancel()
    assert requests_by(await scrape(app), "status") == {("499",): 1}


async def test_an_app_that_returns_without_answering_is_counted_as_500() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    app = hk.MetricsMiddleware(silent)
    await call(app, "/")
    assert requests_by(await scrape(app), "status") == {("500",): 1}


async def test_harden_counts_429_413_and_500_with_the_status_really_sent() -> None:
    app = hk.harden(
        starlette_app_plain(), env=False, ratelimit={"default": "3/minute"}, body_limit={"max_body_size": 8}
    )
    statuses = [(await call(app, "/items/1", client=("10.0.0.1", 1))) for _ in range(4)]
    assert [r.status for r in statuses if r is not None] == [200, 200, 200, 429]
    big = await call(app, "/echo", method="POST", body=b"x" * 64, client=("10.0.0.2", 1))
    assert big is not None and big.status == 413
    with pytest.raises(RuntimeError):
        await call(app, "/boom", client=("10.0.0.3", 1))
    by = requests_by(await scrape(app), "route", "status")
    assert by == {
        ("/items/{item_id}", "200"): 3,
        ("/items/{item_id}", "429"): 1,
        ("/echo", "413"): 1,
        ("/boom", "500"): 1,
    }


def starlette_app_plain() -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id:int}", ok),
            Route("/echo", echo, methods=["POST"]),
            Route("/boom", boom),
        ]
    )


@pytest.mark.parametrize("mode", ["memory", "deny"])
async def test_429_and_503_while_the_redis_storage_is_down_are_counted(mode: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = hk.harden(
        starlette_app_plain(),
        env=False,
        ratelimit={"default": "2/minute", "storage": dead, "on_storage_error": mode, "storage_timeout": 0.5},
    )
    statuses = []
    for _ in range(3):
        response = await call(app, "/items/1", client=("10.0.0.1", 1))
        assert response is not None
        statuses.append(response.status)
    expected = [200, 200, 429] if mode == "memory" else [503, 503, 503]
    assert statuses == expected
    by = requests_by(await scrape(app), "status")
    assert by == {(str(s),): float(statuses.count(s)) for s in set(statuses)}


@pytest.mark.redis
async def test_429_from_the_memory_fallback_after_a_real_redis_goes_down_is_counted(
    redis_server: RedisServer,
) -> None:
    app = hk.harden(
        starlette_app_plain(),
        env=False,
        ratelimit={"default": "2/minute", "storage": redis_server.url, "on_storage_error": "memory"},
    )
    first = await call(app, "/items/1", client=("10.0.0.1", 1))
    redis_server.stop()
    after = [await call(app, "/items/1", client=("10.0.0.1", 1)) for _ in range(3)]
    statuses = [r.status for r in (first, *after) if r is not None]
    # Redis counted one; the fallback carries that count (never a fresh budget): one more passes, then 429.
    assert statuses == [200, 200, 429, 429]
    assert requests_by(await scrape(app), "route", "status") == {
        ("/items/{item_id}", "200"): 2,
        ("/items/{item_id}", "429"): 2,
    }


# -- what is not traffic -----------------------------------------------------------------------


async def test_probes_and_scrapes_are_not_counted_as_traffic() -> None:
    app = hk.harden(starlette_app_plain(), env=False)
    for path in ("/livez", "/readyz", "/healthz", "/metrics", "/items/1"):
        response = await call(app, path)
        assert response is not None and response.status == 200, path
    assert requests_by(await scrape(app), "route") == {("/items/{item_id}",): 1}


async def test_metrics_is_neither_rate_limited_nor_access_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = hk.harden(starlette_app_plain(), env=False, ratelimit={"default": "2/minute"})
    with caplog.at_level(logging.INFO, logger="hardenkit.access"):
        statuses = [(await call(app, "/metrics")) for _ in range(10)]
    assert all(r is not None and r.status == 200 for r in statuses)
    assert not [r for r in caplog.records if r.name == "hardenkit.access"]


async def test_in_flight_goes_up_during_a_request_and_back_down() -> None:
    seen: list[float] = []
    holder: list[Any] = []

    async def app_(scope: Any, receive: Any, send: Any) -> None:
        text = holder[0].render()[0].decode()
        seen.append(sum(samples(text, "http_requests_in_flight").values()))
        await PlainTextResponse("ok")(scope, receive, send)

    app = hk.MetricsMiddleware(app_)
    holder.append(app)
    await call(app, "/")
    assert seen == [1.0]
    assert sum(samples(await scrape(app), "http_requests_in_flight").values()) == 0.0


async def test_sizes_and_latency_are_recorded_per_route() -> None:
    app = starlette_app()
    await call(app, "/echo", method="POST", body=b"hello world")
    text = await scrape(app)
    assert samples(text, "http_request_size_bytes_sum") == {(("route", "/echo"),): 11.0}
    assert samples(text, "http_response_size_bytes_sum") == {(("route", "/echo"),): 11.0}
    assert samples(text, "http_request_duration_seconds_count") == {(("route", "/echo"),): 1.0}


async def test_slo_latency_thresholds_become_exact_buckets() -> None:
    app = starlette_app(slos=[hk.SLO("api", latency_ms=42)])
    await call(app, "/")
    buckets = samples(await scrape(app), "http_request_duration_seconds_bucket")
    assert (("le", "0.042"), ("route", "/")) in buckets
    assert (("le", "0.1"), ("route", "/")) in buckets


async def test_slos_from_the_environment_get_exact_buckets_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENKIT_SLO_CHECKOUT", "objective=0.995,latency_ms=250")
    app = starlette_app()
    await call(app, "/")
    assert (("le", "0.25"), ("route", "/")) in samples(
        await scrape(app), "http_request_duration_seconds_bucket"
    )
    monkeypatch.setenv("HARDENKIT_SLO_CHECKOUT", "objective=0.995,latency_ms=42")
    app = starlette_app()
    await call(app, "/")
    assert (("le", "0.042"), ("route", "/")) in samples(
        await scrape(app), "http_request_duration_seconds_bucket"
    )


async def test_process_cpu_memory_and_fds_are_exposed() -> None:
    text = await scrape(starlette_app())
    for name in (
        "hardenkit_process_cpu_seconds",
        "hardenkit_process_resident_memory_bytes",
        "hardenkit_process_open_fds",
    ):
        assert list(samples(text, name).values())[0] > 0, name
    assert samples(text, "process_resident_memory_bytes")  # the client's own process collector
