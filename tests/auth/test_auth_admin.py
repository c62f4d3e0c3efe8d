"""The mountable admin app and the permission matrix (module and CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from auth_helpers import make_keys, protected
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hardenkit.auth import APIKeyMiddleware, admin_app
from hardenkit.auth.matrix import MatrixRow, permission_matrix, render_markdown
from hardenkit.cli import main


def admin_client() -> tuple[TestClient, dict[str, str]]:
    store, keys = make_keys()
    app = Starlette(routes=[Mount("/admin/keys", admin_app(store))])
    app.add_middleware(APIKeyMiddleware, store=store)
    return TestClient(app), keys


def test_admin_app_needs_the_admin_role() -> None:
    client, keys = admin_client()
    assert client.get("/admin/keys/").status_code == 401
    assert client.get("/admin/keys/", headers={"X-API-Key": keys["operator"]}).status_code == 403
    listed = client.get("/admin/keys/", headers={"X-API-Key": keys["admin"]})
    assert listed.status_code == 200
    assert sorted(r["name"] for r in listed.json()) == ["admin-client", "operator-client", "readonly-client"]
    assert all("hash" not in r for r in listed.json())


def test_admin_app_creates_rotates_and_revokes() -> None:
    client, keys = admin_client()
    admin = {"X-API-Key": keys["admin"]}
    created = client.post(
        "/admin/keys/", headers=admin, json={"name": "bot", "roles": ["readonly"], "expires": "1d"}
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    key = created.json()["key"]
    assert client.get("/admin/keys/", headers={"X-API-Key": key}).status_code == 403  # readonly
    rotated = client.post("/admin/keys/bot/rotate", headers=admin, json={"grace": "0s"})
    assert rotated.status_code == 200
    assert client.get("/admin/keys/", headers={"X-API-Key": key}).status_code == 401  # no grace
    assert client.post("/admin/keys/bot/revoke", headers=admin).status_code == 200
    assert client.get("/admin/keys/", headers={"X-API-Key": rotated.json()["key"]}).status_code == 401


def test_admin_app_answers_bad_input_with_problems() -> None:
    client, keys = admin_client()
    admin = {"X-API-Key": keys["admin"]}
    cases = [
        (client.post("/admin/keys/", headers=admin, content=b"{not json"), 400),
        (client.post("/admin/keys/", headers=admin, json=[1, 2]), 400),
        (client.post("/admin/keys/", headers=admin, json={"name": "x"}), 400),
        (client.post("/admin/keys/", headers=admin, json={"name": 5, "roles": ["r"]}), 400),
        (client.post("/admin/keys/", headers=admin, json={"name": "admin-client", "roles": ["r"]}), 409),
        (client.post("/admin/keys/nobody/rotate", headers=admin), 404),
        (client.post("/admin/keys/nobody/revoke", headers=admin), 404),
        (client.post("/admin/keys/", headers=admin, content=b"x" * 20_000), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"


def test_permission_matrix_of_rules_and_route_checks() -> None:
    store, _ = make_keys()
    rows = permission_matrix(protected(store))
    assert MatrixRow("POST", "/captures", "roles", ("admin", "operator")) in rows
    assert MatrixRow("GET", "/admin/users", "roles", ("admin",)) in rows
    assert MatrixRow("GET", "/docs", "public", ()) in rows
    assert MatrixRow("GET", "/items", "any key", ("admin", "operator", "readonly")) in rows
    table = render_markdown(rows)
    assert table.splitlines()[0] == "| method | path | access | roles |"
    denied = permission_matrix(protected(store, rules=[("GET /items", "*")], deny_unmatched=True))
    assert MatrixRow("POST", "/captures", "denied", ()) in denied


def test_auth_matrix_cli_prints_the_table(tmp_path: Path) -> None:
    (tmp_path / "matrix_app.py").write_text(
        "from fastapi import Depends, FastAPI\n"
        "import hardenkit as hk\n"
        "app = FastAPI()\n"
        "@app.post('/captures', dependencies=[Depends(hk.require_roles('operator'))])\n"
        "async def capture() -> dict: return {}\n"
        "app.add_middleware(hk.APIKeyMiddleware, store='memory', public_paths=['/docs', '/openapi.json'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "hardenkit", "auth", "matrix", "matrix_app:app", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"method": "POST", "path": "/captures", "access": "roles", "roles": ["admin", "operator"]} in rows


def test_auth_matrix_cli_reports_a_bad_target(capsys: object) -> None:
    assert main(["auth", "matrix", "nocolon"]) == 2
    assert main(["auth", "matrix", "no_such_module_here:app"]) == 2
