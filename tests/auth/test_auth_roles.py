"""require_roles() in FastAPI (and its OpenAPI), in Starlette routes and ASGI apps; principal()."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from auth_helpers import make_keys
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import hardenkit as hk
from hardenkit.auth import APIKeyMiddleware, Principal, RoleRequirement
from hardenkit.errors import ConfigurationError


def fastapi_app() -> tuple[FastAPI, dict[str, str]]:
    store, keys = make_keys()
    app = FastAPI()

    @app.get("/reports")
    async def reports(who: Principal = Depends(hk.require_roles("readonly"))) -> dict[str, Any]:
        return {"name": who.name}

    @app.post("/captures", dependencies=[Depends(hk.require_roles("operator"))])
    async def capture() -> dict[str, Any]:
        found = hk.principal()
        return {"by": found.name if found else None}

    @app.delete("/users/{user}", dependencies=[Depends(hk.require_roles("admin"))])
    def delete_user(user: str) -> dict[str, Any]:  # a sync endpoint: principal() in its worker thread
        found = hk.principal()
        return {"deleted": user, "by": found.name if found else None}

    @app.get("/open")
    async def open_route() -> dict[str, Any]:
        return {"ok": True}

    app.add_middleware(APIKeyMiddleware, store=store, public_paths=["/open", "/openapi.json", "/docs"])
    return app, keys


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("readonly", "GET", "/reports", 200),
        ("readonly", "POST", "/captures", 403),
        ("operator", "POST", "/captures", 200),
        ("operator", "DELETE", "/users/bob", 403),
        ("admin", "DELETE", "/users/bob", 200),
        (None, "GET", "/reports", 401),
        (None, "GET", "/open", 200),
    ],
)
def test_fastapi_dependency_gives_401_403_200(role: str | None, method: str, path: str, status: int) -> None:
    app, keys = fastapi_app()
    headers = {"X-API-Key": keys[role]} if role else {}
    response = TestClient(app).request(method, path, headers=headers)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"
    if status == 200 and role == "admin":
        assert response.json() == {"deleted": "bob", "by": "admin-client"}


def test_role_check_on_a_public_path_asks_for_a_key() -> None:
    store, keys = make_keys()
    app = FastAPI()

    @app.get("/maybe", dependencies=[Depends(hk.require_roles("readonly"))])
    async def maybe() -> dict[str, Any]:
        return {}

    app.add_middleware(APIKeyMiddleware, store=store, public_paths=["/maybe"])
    response = TestClient(app).get("/maybe")
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


def test_openapi_shows_the_security_scheme_on_protected_routes_only() -> None:
    app, _ = fastapi_app()
    schema = TestClient(app).get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {k: v for k, v in schemes["APIKey"].items() if k != "description"} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert "Bearer" in schemes["APIKey"]["description"]
    assert {"APIKey": []} in schema["paths"]["/reports"]["get"]["security"]
    assert {"APIKey": []} in schema["paths"]["/captures"]["post"]["security"]
    assert "security" not in schema["paths"]["/open"]["get"]
    # The security parameters are not shown as ordinary header parameters.
    assert all(p["name"] != "X-API-Key" for p in schema["paths"]["/reports"]["get"].get("parameters", []))


async def starlette_report(request: Request) -> PlainTextResponse:
    return PlainTextResponse("report")


def starlette_sync(request: Request) -> PlainTextResponse:
    return PlainTextResponse("sync")


async def raw_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("asgi")(scope, receive, send)


def test_starlette_routes_and_asgi_apps_are_protected_by_wrap() -> None:
    store, keys = make_keys()
    app = Starlette(
        routes=[
            Route("/report", hk.require_roles("operator").wrap(starlette_report)),
            Route("/sync", hk.require_roles("admin").wrap(starlette_sync)),
            Mount("/raw", hk.require_roles("admin").wrap(raw_asgi)),
        ]
    )
    app.add_middleware(APIKeyMiddleware, store=store)
    client = TestClient(app)

    def get(path: str, role: str) -> int:
        return client.get(path, headers={"X-API-Key": keys[role]}).status_code

    assert (get("/report", "readonly"), get("/report", "operator")) == (403, 200)
    assert (get("/sync", "operator"), get("/sync", "admin")) == (403, 200)
    assert (get("/raw/x", "operator"), get("/raw/x", "admin")) == (403, 200)


def test_require_roles_outside_the_middleware_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="outside a request handled by APIKeyMiddleware"):
        anyio.run(hk.require_roles("admin"))


def test_require_roles_without_roles_needs_any_valid_key() -> None:
    requirement = hk.require_roles()
    assert isinstance(requirement, RoleRequirement) and requirement.roles == ()
    with pytest.raises(ConfigurationError):
        hk.require_roles("not a role!")


def test_principal_is_none_outside_a_request() -> None:
    assert hk.principal() is None


def test_custom_role_ladder() -> None:
    store, keys = make_keys()
    app = Starlette(routes=[Route("/x", starlette_report)])
    app.add_middleware(APIKeyMiddleware, store=store, rules=[("/x", "operator")], implies={})
    client = TestClient(app)
    # Without the ladder, admin no longer implies operator.
    assert client.get("/x", headers={"X-API-Key": keys["admin"]}).status_code == 403
    assert client.get("/x", headers={"X-API-Key": keys["operator"]}).status_code == 200


def test_require_roles_in_a_starlette_app_does_not_import_fastapi() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hardenkit as hk\n"
        "requirement = hk.require_roles('admin')\n"
        "assert 'fastapi' not in sys.modules, 'fastapi imported'\n"
        "assert type(requirement).__name__ == 'RoleRequirement'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_kit_reads_the_store_from_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "keys.json"
    from hardenkit.auth import FileKeyStore, KeyManager

    key, _ = anyio.run(lambda: KeyManager(FileKeyStore(path)).create("ci", ["readonly"]))
    kit = hk.Kit(environ={"HARDENKIT_AUTH_STORE": str(path), "HARDENKIT_AUTH_MAX_FAILURES": "2"})
    app = kit.register(APIKeyMiddleware).install(Starlette(routes=[Route("/x", starlette_report)]))
    client = TestClient(app)
    assert client.get("/x", headers={"X-API-Key": key}).status_code == 200
    with pytest.raises(ConfigurationError, match="HARDENKIT_AUTH_NOPE"):
        hk.Kit(environ={"HARDENKIT_AUTH_NOPE": "1"}).register(APIKeyMiddleware, store="memory").describe()


def test_document_security_marks_routes_protected_by_rules() -> None:
    from hardenkit.auth import document_security

    store, _ = make_keys()
    app = FastAPI()

    @app.get("/reports")
    async def reports() -> dict[str, Any]:
        return {}

    @app.get("/open")
    async def open_route() -> dict[str, Any]:
        return {}

    app.add_middleware(
        APIKeyMiddleware, store=store, header="X-Service-Key", public_paths=["/open", "/openapi.json"]
    )
    document_security(app)
    schema = TestClient(app).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKey"]["name"] == "X-Service-Key"
    assert schema["paths"]["/reports"]["get"]["security"] == [{"APIKey": []}]
    assert "security" not in schema["paths"]["/open"]["get"]
    assert app.openapi() is app.openapi()  # built once
