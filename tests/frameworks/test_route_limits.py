"""The dependency and decorator forms of the rate limit (issue 14): a bucket per route,
per-user keys read after an auth dependency, tiered limits, the 429 in FastAPI's OpenAPI
schema, and the same under ``Kit.wrap``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from starlette.testclient import TestClient

import hardenkit as hk
from hardenkit.errors import ConfigurationError
from hardenkit.ratelimit import document_rate_limits


def limited_app() -> FastAPI:
    app = FastAPI()

    @app.get("/a", dependencies=[Depends(hk.rate_limit("1/minute"))])
    async def route_a() -> dict[str, str]:
        return {"route": "a"}

    @app.get("/b", dependencies=[Depends(hk.rate_limit("1/minute"))])
    async def route_b() -> dict[str, str]:
        return {"route": "b"}

    return app


def test_each_route_with_a_limit_string_has_its_own_bucket() -> None:
    client = TestClient(hk.harden(limited_app(), env=False))
    assert client.get("/a").status_code == 200
    assert client.get("/b").status_code == 200  # its own bucket, not /a's
    assert client.get("/a").status_code == 429


def test_a_route_with_a_path_parameter_has_one_bucket_and_methods_have_their_own() -> None:
    app = FastAPI()
    limit = hk.rate_limit("2/minute")

    @app.get("/items/{item}", dependencies=[Depends(limit)])
    async def read(item: str) -> dict[str, str]:
        return {"item": item}

    @app.post("/items/{item}", dependencies=[Depends(limit)])
    async def write(item: str) -> dict[str, str]:
        return {"item": item}

    client = TestClient(hk.harden(app, env=False))
    # Another path value is not another bucket: a client cannot multiply its budget.
    assert [client.get(f"/items/{n}").status_code for n in range(3)] == [200, 200, 429]
    assert client.post("/items/1").status_code == 200  # POST is another route


def test_a_named_bucket_is_shared_by_the_routes_that_name_it() -> None:
    app = FastAPI()

    @app.get("/x", dependencies=[Depends(hk.rate_limit("1/minute", bucket="search"))])
    async def x() -> str:
        return "x"

    @app.get("/y", dependencies=[Depends(hk.rate_limit("1/minute", bucket="search"))])
    async def y() -> str:
        return "y"

    client = TestClient(hk.harden(app, env=False))
    assert client.get("/x").status_code == 200
    assert client.get("/y").status_code == 429


def test_the_429_is_in_the_openapi_schema_of_a_limited_route() -> None:
    app = limited_app()

    @app.get("/free")
    async def free() -> str:
        return "free"

    client = TestClient(hk.harden(app, env=False))
    schema = client.get("/openapi.json").json()
    declared = schema["paths"]["/a"]["get"]["responses"]["429"]
    assert "application/problem+json" in declared["content"]
    assert {"Retry-After", "RateLimit"} <= set(declared["headers"])
    assert "429" not in schema["paths"]["/free"]["get"]["responses"]


def test_the_429_is_in_the_schema_of_a_decorated_route_and_of_a_nested_dependency() -> None:
    app = FastAPI()
    check = hk.rate_limit("5/minute")

    async def auth(_: None = Depends(check)) -> str:
        return "user"

    @app.get("/nested")
    async def nested(user: str = Depends(auth)) -> str:
        return user

    @app.get("/decorated")
    @hk.limited("5/minute")
    async def decorated() -> str:
        return "ok"

    @app.get("/own", responses={429: {"description": "slow down"}}, dependencies=[Depends(check)])
    async def own() -> str:
        return "own"

    # Called directly too (the app served by no middleware), and a schema already
    # generated is regenerated.
    assert "429" not in app.openapi()["paths"]["/nested"]["get"]["responses"]
    assert document_rate_limits(app) == 3
    paths = app.openapi()["paths"]
    assert "429" in paths["/nested"]["get"]["responses"]
    assert "429" in paths["/decorated"]["get"]["responses"]
    assert paths["/own"]["get"]["responses"]["429"]["description"] == "slow down"  # the route's own kept


def auth_app(limit: Any) -> FastAPI:
    app = FastAPI()

    async def authenticate(request: Request) -> None:
        user = request.headers.get("x-user")
        request.state.user = user
        request.state.plan = {"ann": "free", "bob": "pro"}.get(user or "", "nonsense")

    @app.get("/me", dependencies=[Depends(authenticate), Depends(limit)])
    async def me() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def user_key(request: Request) -> str | None:
    user: str | None = request.state.user
    return user


def test_a_key_function_reads_what_an_auth_dependency_set() -> None:
    client = TestClient(hk.harden(auth_app(hk.rate_limit("1/minute", key=user_key)), env=False))
    assert client.get("/me", headers={"x-user": "ann"}).status_code == 200
    assert client.get("/me", headers={"x-user": "bob"}).status_code == 200  # another user, another bucket
    assert client.get("/me", headers={"x-user": "ann"}).status_code == 429


def test_an_async_key_function_and_no_user_falls_back_to_the_address() -> None:
    async def key(request: Request) -> str | None:
        return user_key(request)

    client = TestClient(hk.harden(auth_app(hk.rate_limit("1/minute", key=key)), env=False))
    assert client.get("/me").status_code == 200
    assert client.get("/me").status_code == 429  # no user is not "unlimited"
    assert client.get("/me", headers={"x-user": "ann"}).status_code == 200


def test_a_key_function_that_raises_limits_by_the_address(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Request) -> str:
        raise RuntimeError("no session store")

    client = TestClient(hk.harden(auth_app(hk.rate_limit("1/minute", key=broken)), env=False))
    with caplog.at_level(logging.ERROR, logger="hardenkit.ratelimit"):
        assert client.get("/me", headers={"x-user": "ann"}).status_code == 200
        assert client.get("/me", headers={"x-user": "bob"}).status_code == 429
    assert "key function raised" in caplog.text


def plan(request: Request) -> str:
    value: str = request.state.plan
    return value


def test_tiered_limits_from_a_mapping() -> None:
    limit = hk.rate_limit({"free": "1/minute", "pro": "3/minute"}, key=user_key, tier=plan)
    client = TestClient(hk.harden(auth_app(limit), env=False))
    ann = [client.get("/me", headers={"x-user": "ann"}).status_code for _ in range(2)]
    bob = [client.get("/me", headers={"x-user": "bob"}).status_code for _ in range(4)]
    assert ann == [200, 429]
    assert bob == [200, 200, 200, 429]
    limited = client.get("/me", headers={"x-user": "bob"})
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) > 0


def test_an_unknown_tier_gets_the_default_tier_never_no_limit() -> None:
    limit = hk.rate_limit({"pro": "5/minute", "default": "1/minute"}, key=user_key, tier=plan)
    client = TestClient(hk.harden(auth_app(limit), env=False))
    assert client.get("/me", headers={"x-user": "eve"}).status_code == 200  # plan "nonsense"
    assert client.get("/me", headers={"x-user": "eve"}).status_code == 429


def test_a_limit_that_is_a_function_of_the_key() -> None:
    async def limit_of(key: str) -> str:
        return "2/minute" if key == "u:bob" else "1/minute"

    client = TestClient(hk.harden(auth_app(hk.rate_limit(limit_of, key=user_key)), env=False))
    assert [client.get("/me", headers={"x-user": "ann"}).status_code for _ in range(2)] == [200, 429]
    assert [client.get("/me", headers={"x-user": "bob"}).status_code for _ in range(3)] == [200, 200, 429]


def test_the_dependency_form_under_kit_wrap() -> None:
    kit = (
        hk.Kit().register(hk.HeaderContractMiddleware).register(hk.RateLimitMiddleware, default="100/minute")
    )
    with TestClient(kit.wrap(limited_app()), raise_server_exceptions=False) as client:
        assert client.get("/a").status_code == 200
        limited = client.get("/a")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["request_id"] == limited.headers["x-request-id"]
        assert client.get("/b").status_code == 200
        assert "429" in client.get("/openapi.json").json()["paths"]["/a"]["get"]["responses"]


def test_the_decorator_form_on_async_and_sync_endpoints() -> None:
    app = FastAPI()

    @app.get("/async/{name}")
    @hk.limited("1/minute")
    async def hello(name: str, loud: bool = False) -> str:
        return name.upper() if loud else name

    @app.get("/sync")
    @hk.limited("1/minute")
    def blocking() -> str:
        return "sync"

    client = TestClient(hk.harden(app, env=False))
    assert client.get("/async/ann", params={"loud": "true"}).json() == "ANN"  # parameters still injected
    assert client.get("/async/bob").status_code == 429
    assert client.get("/sync").json() == "sync"
    refused = client.get("/sync")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"


def test_named_policies_and_cost_still_work() -> None:
    app = FastAPI()

    @app.get("/ai", dependencies=[Depends(hk.rate_limit("ai"))])
    async def ai() -> str:
        return "ai"

    @app.get("/heavy", dependencies=[Depends(hk.rate_limit("4/minute", cost=3))])
    async def heavy() -> str:
        return "heavy"

    client = TestClient(hk.harden(app, env=False, ratelimit={"policies": {"ai": "1/minute"}}))
    assert [client.get("/ai").status_code for _ in range(2)] == [200, 429]
    assert [client.get("/heavy").status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({"free": "1/minute"},), {}, "needs tier="),
        (("1/minute",), {"tier": plan}, "tier= goes with a mapping"),
        (({"free": "ten per minute"},), {"tier": plan}, "rate_limit"),
        (("1/minute",), {"key": "user"}, "key must be a function"),
        (("1/minute",), {"bucket": "not a name"}, "bucket must be a name"),
        ((42,), {}, "expected a policy name"),
    ],
)
def test_bad_arguments_fail_at_start_up(args: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        hk.rate_limit(*args, **kwargs)
    with pytest.raises(ConfigurationError, match=message):
        hk.limited(*args, **kwargs)


@pytest.mark.filterwarnings("ignore:.*deprecated inferred style")
def test_litestar_routes_have_their_own_buckets_and_take_the_decorator() -> None:
    from litestar import Litestar, get

    @get("/a/{item:int}", media_type="text/plain")
    async def route_a(item: int) -> str:
        await hk.rate_limit("1/minute")()
        return str(item)

    @get("/b", media_type="text/plain")
    @hk.limited("1/minute")
    async def route_b() -> str:
        return "b"

    client = TestClient(hk.harden(Litestar([route_a, route_b], logging_config=None), env=False))
    assert client.get("/a/1").text == "1"
    assert client.get("/a/2").status_code == 429  # one bucket for the route, not per value
    assert client.get("/b").status_code == 200
    refused = client.get("/b")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"


def test_quart_endpoints_named_apart_with_bucket() -> None:
    from quart import Quart

    app = Quart(__name__)

    @app.get("/x")
    async def x() -> str:
        await hk.rate_limit("1/minute", bucket="x")()
        return "x"

    @app.get("/y")
    async def y() -> str:
        await hk.rate_limit("1/minute", bucket="y")()
        return "y"

    client = TestClient(hk.harden(app, env=False), raise_server_exceptions=False)
    assert [client.get("/x").status_code, client.get("/y").status_code] == [200, 200]
    assert [client.get("/x").status_code, client.get("/y").status_code] == [429, 429]
