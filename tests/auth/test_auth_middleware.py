"""APIKeyMiddleware: answers per role, indistinguishable refusals, bad input, failed attempts."""

from __future__ import annotations

import json
from datetime import timedelta

import anyio
import pytest
from auth_helpers import make_keys, plain_app, protected
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hardenkit.auth import APIKeyMiddleware, KeyHasher, KeyManager, KeyRecord, MemoryKeyStore, generate_key
from hardenkit.auth.keyformat import checksum
from hardenkit.auth.records import utcnow
from hardenkit.errors import ConfigurationError
from support import asgi_request


@pytest.fixture
def keyed() -> tuple[TestClient, dict[str, str]]:
    store, keys = make_keys()
    return TestClient(protected(store)), keys


def test_no_key_gets_401_problem_with_www_authenticate(keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = keyed
    response = client.get("/items")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.json()["title"] == "Unauthorized"


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("readonly", "GET", "/items", 200),
        ("readonly", "GET", "/captures", 200),
        ("readonly", "POST", "/captures", 403),
        ("operator", "POST", "/captures", 200),
        ("admin", "POST", "/captures", 200),  # admin implies operator
        ("operator", "GET", "/admin/users", 403),
        ("readonly", "GET", "/admin/users", 403),
        ("admin", "GET", "/admin/users", 200),
    ],
)
def test_roles_give_200_or_403(
    keyed: tuple[TestClient, dict[str, str]], role: str, method: str, path: str, status: int
) -> None:
    client, keys = keyed
    response = client.request(method, path, headers={"X-API-Key": keys[role]})
    assert response.status_code == status
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"
        assert "www-authenticate" not in response.headers


def test_bearer_token_is_accepted_and_principal_is_visible_everywhere(
    keyed: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = keyed
    body = client.get("/items", headers={"Authorization": f"Bearer {keys['operator']}"}).json()
    assert body["name"] == "operator-client"
    assert body["roles"] == ["operator", "readonly"]
    assert body["state_matches"] is True
    assert body["scope_key_id"] == body["key_id"] == keys["operator"][5:17]


def test_public_path_needs_no_key(keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = keyed
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.json()["key_id"] is None


def test_deny_unmatched_refuses_paths_no_rule_names() -> None:
    store, keys = make_keys()
    client = TestClient(protected(store, rules=[("GET /items", "*")], deny_unmatched=True))
    assert client.get("/items", headers={"X-API-Key": keys["readonly"]}).status_code == 200
    assert client.get("/captures", headers={"X-API-Key": keys["admin"]}).status_code == 403
    assert client.get("/captures").status_code == 401


def test_unknown_and_wrong_keys_are_indistinguishable(keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = keyed
    real = keys["admin"]
    wrong_secret = generate_key(real[5:17])  # the real id, another secret
    unknown_id = generate_key()
    answers = []
    for key in (wrong_secret, unknown_id):
        response = client.get("/items", headers={"X-API-Key": key})
        body = response.json()
        body.pop("request_id", None)
        answers.append((response.status_code, body, sorted(response.headers.items())))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_unknown_and_wrong_keys_do_the_same_work() -> None:
    store, keys = make_keys()
    calls: list[str] = []
    original_get = store.get

    async def counting_get(key_id: str) -> KeyRecord | None:
        calls.append("lookup")
        return await original_get(key_id)

    store.get = counting_get  # type: ignore[method-assign]
    app = plain_app()
    app.add_middleware(APIKeyMiddleware, store=store)
    client = TestClient(app)
    middleware = client.app.middleware_stack  # type: ignore[attr-defined]
    assert middleware is None  # built on first request
    client.get("/docs")
    auth = client.app.middleware_stack.app  # type: ignore[attr-defined]
    assert isinstance(auth, APIKeyMiddleware)
    original_hash = auth.hasher.hash

    def counting_hash(key: str) -> str:
        calls.append("hmac")
        return original_hash(key)

    auth.hasher.hash = counting_hash  # type: ignore[method-assign]
    traces = []
    for key in (generate_key(keys["admin"][5:17]), generate_key()):
        calls.clear()
        client.get("/items", headers={"X-API-Key": key})
        traces.append(list(calls))
    assert traces[0] == traces[1] == ["lookup", "hmac"]


def test_typo_is_refused_without_a_lookup() -> None:
    store, keys = make_keys()
    looked_up: list[str] = []
    original_get = store.get

    async def counting_get(key_id: str) -> KeyRecord | None:
        looked_up.append(key_id)
        return await original_get(key_id)

    store.get = counting_get  # type: ignore[method-assign]
    client = TestClient(protected(store))
    key = keys["admin"]
    typo = key[:30] + ("a" if key[30] != "a" else "b") + key[31:]
    assert client.get("/items", headers={"X-API-Key": typo}).status_code == 401
    assert looked_up == []
    assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
    assert looked_up == [key[5:17]]


def test_expired_and_revoked_keys_are_refused() -> None:
    store = MemoryKeyStore()
    manager = KeyManager(store)
    past = utcnow() - timedelta(days=2)

    async def setup() -> tuple[str, str]:
        expired, _ = await manager.create("old", ["admin"], expires="1d", now=past)
        revoked, _ = await manager.create("gone", ["admin"])
        await manager.revoke("gone")
        return expired, revoked

    expired, revoked = anyio.run(setup)
    client = TestClient(protected(store))
    for key in (expired, revoked):
        response = client.get("/items", headers={"X-API-Key": key})
        assert response.status_code == 401
        assert response.json()["detail"] == "The API key is not valid."


def test_rotation_grace_is_honoured() -> None:
    store = MemoryKeyStore()
    manager = KeyManager(store)
    long_ago = utcnow() - timedelta(hours=3)

    async def setup() -> tuple[str, str, str, str]:
        old_a, _ = await manager.create("a", ["readonly"], now=long_ago)
        new_a, _ = await manager.rotate("a", grace="1h", now=long_ago)  # grace ended two hours ago
        old_b, _ = await manager.create("b", ["readonly"])
        new_b, _ = await manager.rotate("b", grace="1h")  # grace still running
        return old_a, new_a, old_b, new_b

    old_a, new_a, old_b, new_b = anyio.run(setup)
    client = TestClient(protected(store))
    status = {
        name: client.get("/items", headers={"X-API-Key": key}).status_code
        for name, key in {"old_a": old_a, "new_a": new_a, "old_b": old_b, "new_b": new_b}.items()
    }
    assert status == {"old_a": 401, "new_a": 200, "old_b": 200, "new_b": 200}


def _bad_headers(keys: dict[str, str]) -> dict[str, list[tuple[bytes, bytes]]]:
    good = keys["admin"].encode()
    return {
        "oversized": [(b"x-api-key", b"hkey_" + b"a" * 100_000)],
        "non_ascii": [(b"x-api-key", "hkey_ünïcödé".encode())],
        "latin1_bytes": [(b"x-api-key", b"\xff\xfe" * 40)],
        "many_authorization": [(b"authorization", b"Bearer " + good)] * 50,
        "two_api_keys": [(b"x-api-key", good), (b"x-api-key", good)],
        "key_and_bearer": [(b"x-api-key", good), (b"authorization", b"Bearer " + good)],
        "control_chars": [(b"x-api-key", b"hkey_\x00\r\n")],
        "empty_bearer": [(b"authorization", b"Bearer ")],
        "garbage": [(b"x-api-key", b"not a key at all")],
        "right_length_wrong_checksum": [(b"x-api-key", keys["admin"][:-6].encode() + b"000000")],
    }


@pytest.mark.parametrize(
    "case",
    [
        "oversized",
        "non_ascii",
        "latin1_bytes",
        "many_authorization",
        "two_api_keys",
        "key_and_bearer",
        "control_chars",
        "empty_bearer",
        "garbage",
        "right_length_wrong_checksum",
    ],
)
def test_bad_input_gets_401_never_500(case: str) -> None:
    store, keys = make_keys()
    app = protected(store)
    headers = [(b"host", b"testserver"), *_bad_headers(keys)[case]]
    response = anyio.run(lambda: asgi_request(app, "/items", headers=headers))
    assert response.status == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "www-authenticate" in response.headers


def test_failed_attempts_per_address_get_429_before_any_check() -> None:
    store, keys = make_keys()
    app = protected(store, max_failures=3, failure_window=60)
    attacker = TestClient(app, client=("203.0.113.9", 4000))
    honest = TestClient(app, client=("198.51.100.7", 4000))
    statuses = [attacker.get("/items", headers={"X-API-Key": generate_key()}).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    refused = attacker.get("/items", headers={"X-API-Key": keys["admin"]})  # even a good key: no oracle
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"] == "application/problem+json"
    assert honest.get("/items", headers={"X-API-Key": keys["admin"]}).status_code == 200


def test_good_requests_leave_the_attempt_table_alone() -> None:
    store, keys = make_keys()
    client = TestClient(protected(store))
    for _ in range(20):
        assert client.get("/items", headers={"X-API-Key": keys["readonly"]}).status_code == 200
    auth = client.app.middleware_stack.app  # type: ignore[attr-defined]
    assert isinstance(auth, APIKeyMiddleware)
    assert len(auth.attempts) == 0


def test_attempt_table_is_bounded() -> None:
    from hardenkit.auth.attempts import FailedAttempts

    attempts = FailedAttempts(3, 60, max_clients=100)
    for index in range(1000):
        attempts.failed(f"10.0.{index // 256}.{index % 256}")
    assert len(attempts) == 100


def test_ipv6_clients_are_counted_per_64() -> None:
    store, _ = make_keys()
    app = protected(store, max_failures=2)
    for suffix in ("1", "2", "3"):
        client = TestClient(app, client=(f"2001:db8:1:2::{suffix}", 4000))
        status = client.get("/items", headers={"X-API-Key": generate_key()}).status_code
    assert status == 429


def test_missing_key_is_not_counted_as_a_failed_attempt() -> None:
    store, keys = make_keys()
    client = TestClient(protected(store, max_failures=2))
    for _ in range(5):
        assert client.get("/items").status_code == 401
    assert client.get("/items", headers={"X-API-Key": keys["readonly"]}).status_code == 200


def test_key_from_another_pepper_is_refused() -> None:
    store, keys = make_keys()
    client = TestClient(protected(store, pepper="another pepper"))
    assert client.get("/items", headers={"X-API-Key": keys["admin"]}).status_code == 401


def test_checksum_covers_every_character() -> None:
    key = generate_key()
    body = key[:-6]
    for index in range(5, len(body)):
        changed = body[:index] + ("A" if body[index] != "A" else "B") + body[index + 1 :]
        assert checksum(changed) != key[-6:]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"header": "bad header"}, "valid HTTP header name"),
        ({"header": "Authorization"}, "Bearer"),
        ({"rules": [("FETCH", "admin")]}, "METHOD"),
        ({"rules": [("/x", 3)]}, "role"),
        ({"rules": ["/x"]}, "pair"),
        ({"max_failures": 0}, "max_failures"),
        ({"failure_window": -1}, "failure_window"),
        ({"public_paths": "/docs"}, "list of paths"),
        ({"implies": {"admin": ["bad role!"]}}, "role names"),
        ({"realm": 'a"b'}, "realm"),
        ({"store": "ftp://x"}, "unknown scheme"),
    ],
)
def test_bad_options_raise_configuration_errors(options: dict[str, object], message: str) -> None:
    options.setdefault("store", MemoryKeyStore())
    with pytest.raises(ConfigurationError, match=message):
        APIKeyMiddleware(Starlette(), **options)  # type: ignore[arg-type]


def test_store_lookup_failure_is_503_not_500() -> None:
    from hardenkit.errors import StorageUnavailable

    class DownStore(MemoryKeyStore):
        async def get(self, key_id: str) -> KeyRecord | None:
            raise StorageUnavailable("down")

    app = plain_app()
    app.add_middleware(APIKeyMiddleware, store=DownStore())
    response = TestClient(app).get("/items", headers={"X-API-Key": generate_key()})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_hasher_compares_against_a_dummy_when_the_record_is_missing() -> None:
    hasher = KeyHasher("pepper")
    key = generate_key()
    assert hasher.matches(key, hasher.hash(key))
    assert not hasher.matches(key, None)
    assert not hasher.matches(key, hasher.hash(generate_key()))
    assert json.dumps(hasher.fingerprint)


def test_websocket_needs_a_key() -> None:
    from starlette.routing import WebSocketRoute
    from starlette.testclient import WebSocketDenialResponse
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        from hardenkit.auth import principal

        found = principal()
        await websocket.send_text(found.name if found else "nobody")
        await websocket.close()

    store, keys = make_keys()
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    app.add_middleware(APIKeyMiddleware, store=store)
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"X-API-Key": keys["readonly"]}) as ws:
        assert ws.receive_text() == "readonly-client"
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/ws"):
            pass  # pragma: no cover - refused before accept
    assert denied.value.status_code == 401


def test_rules_match_the_routed_path_under_a_root_path() -> None:
    store, keys = make_keys()
    client = TestClient(protected(store), root_path="/api")
    assert client.post("/api/captures", headers={"X-API-Key": keys["readonly"]}).status_code == 403
    assert client.post("/api/captures", headers={"X-API-Key": keys["operator"]}).status_code == 200
    assert client.get("/api/docs").status_code == 200


def test_a_broken_client_function_still_counts_failures_by_address() -> None:
    def broken(scope: object) -> str:
        raise RuntimeError("boom")

    store, _ = make_keys()
    client = TestClient(protected(store, client=broken, max_failures=1))
    statuses = [client.get("/items", headers={"X-API-Key": generate_key()}).status_code for _ in range(2)]
    assert statuses == [401, 429]


def test_role_check_error_after_the_response_started_is_not_hidden() -> None:
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    import hardenkit as hk

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> object:
            yield b"partial"
            await hk.require_roles("admin")()

        return StreamingResponse(body())  # type: ignore[arg-type]

    store, keys = make_keys()
    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(APIKeyMiddleware, store=store)
    with pytest.raises(BaseException) as raised:
        TestClient(app).get("/stream", headers={"X-API-Key": keys["readonly"]})
    # Older starlette/anyio wrap it in an exception group: look inside.
    errors: list[BaseException] = [raised.value]
    while errors and not any("roles: admin" in str(e) for e in errors):
        errors = [inner for e in errors for inner in getattr(e, "exceptions", ())]
    assert errors, raised.value


def test_principal_does_not_leak_into_the_next_request_of_the_same_task() -> None:
    store, keys = make_keys()
    app = protected(store)

    async def scenario() -> list[object]:
        refused = await asgi_request(
            app, "/admin/users", headers=[(b"host", b"t"), (b"x-api-key", keys["readonly"].encode())]
        )
        public = await asgi_request(app, "/docs", headers=[(b"host", b"t")])
        allowed = await asgi_request(
            app, "/items", headers=[(b"host", b"t"), (b"x-api-key", keys["admin"].encode())]
        )
        after = await asgi_request(app, "/docs", headers=[(b"host", b"t")])
        return [
            refused.status,
            json.loads(public.body)["key_id"],
            allowed.status,
            json.loads(after.body)["key_id"],
        ]

    assert anyio.run(scenario) == [403, None, 200, None]
