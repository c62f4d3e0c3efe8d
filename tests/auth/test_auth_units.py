"""The small parts: rule patterns, the attempt counter, the key format, records, the CLI in-process."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from hardenkit.auth import KeyRecord, generate_key, parse_key
from hardenkit.auth.attempts import FailedAttempts, client_address
from hardenkit.auth.records import parse_duration, utcnow
from hardenkit.auth.rules import ANY_ROLE, DENY, PUBLIC, RoleRules, compile_pattern
from hardenkit.cli import main
from hardenkit.errors import ConfigurationError


@pytest.mark.parametrize(
    ("pattern", "method", "path", "matches"),
    [
        ("/admin/*", "GET", "/admin", True),
        ("/admin/*", "GET", "/admin/users/1", True),
        ("/admin/*", "GET", "/administrator", False),
        ("/files*", "GET", "/filesystem", True),
        ("GET /items/{id}", "GET", "/items/42", True),
        ("GET /items/{id}", "HEAD", "/items/42", True),
        ("GET /items/{id}", "GET", "/items/42/parts", False),
        ("GET /items/{id}", "DELETE", "/items/42", False),
        ("GET,DELETE /items/{id}", "DELETE", "/items/42", True),
        ("* /x", "PATCH", "/x", True),
        ("/static/{rest:path}", "GET", "/static/a/b.css", True),
        ("post /captures", "POST", "/captures", True),
        ("/a.b", "GET", "/aXb", False),  # a dot is a dot, not "any character"
    ],
)
def test_rule_patterns(pattern: str, method: str, path: str, matches: bool) -> None:
    rules = RoleRules([(pattern, "admin")])
    assert (rules.required(method, path) == ("admin",)) is matches


@pytest.mark.parametrize("pattern", ["", "GET", "GET items", "G3T /x", "/a//b", "/a b", 42])
def test_bad_rule_patterns_are_refused(pattern: object) -> None:
    with pytest.raises(ConfigurationError):
        compile_pattern(pattern, option="rules[0]")


def test_rule_targets() -> None:
    rules = RoleRules(
        {"/public": None, "/any": "*", "/either": ("billing", "admin"), "/set": {"b", "a"}},
        public_paths=["/docs"],
    )
    assert rules.required("GET", "/public") is PUBLIC
    assert rules.required("GET", "/docs") is PUBLIC
    assert rules.required("GET", "/any") == ANY_ROLE
    assert rules.required("GET", "/either") == ("billing", "admin")
    assert rules.required("GET", "/set") == ("a", "b")
    assert rules.required("GET", "/elsewhere") == ANY_ROLE
    assert RoleRules([], deny_unmatched=True).required("GET", "/elsewhere") is DENY
    with pytest.raises(ConfigurationError):
        RoleRules([("/x", ())])


def test_attempt_window_expires() -> None:
    now = [1000.0]
    attempts = FailedAttempts(2, 10)
    attempts._clock = lambda: now[0]
    attempts.failed("a")
    attempts.failed("a")
    assert attempts.retry_after("a") == 10
    now[0] += 4.5
    assert attempts.retry_after("a") == 6
    now[0] += 6
    assert attempts.retry_after("a") == 0
    assert len(attempts) == 0
    attempts.failed("a")  # a new window
    assert attempts.retry_after("a") == 0


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (("192.0.2.1", 1), "192.0.2.1"),
        (("2001:db8::1", 1), "2001:db8::/64"),
        (("not:an:ip:::x", 1), "not:an:ip:::x"),
        (None, "unknown"),
        (("", 1), "unknown"),
    ],
)
def test_client_address(client: object, expected: str) -> None:
    assert client_address({"client": client}) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_failures": True}, "max_failures"),
        ({"window": 0}, "failure_window"),
        ({"max_clients": 0}, "max_clients"),
    ],
)
def test_attempt_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FailedAttempts(**options)  # type: ignore[arg-type]


def test_key_format_edges() -> None:
    assert parse_key("") is None
    assert parse_key("x" * 67) is None
    key = generate_key("abcdefabcdef")
    assert key.startswith("hkey_abcdefabcdef_")
    with pytest.raises(ValueError):
        generate_key("UPPER")
    assert len({generate_key() for _ in range(200)}) == 200


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("24h", 86400), ("15m", 900), ("30", 30), ("2w", 1209600), (1.5, 1.5)],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text, option="x").total_seconds() == seconds


@pytest.mark.parametrize("text", ["soon", "-1d", "1y", "999999999d", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_duration(text, option="expires")  # type: ignore[arg-type]


def test_records_round_trip_and_refuse_damage() -> None:
    now = utcnow().replace(microsecond=0)
    record = KeyRecord("abcdefabcdef", "ci", ("operator",), "a" * 64, now, expires=now + timedelta(days=1))
    assert KeyRecord.from_dict(record.to_dict()) == record
    assert record.state(now) == "active"
    assert record.state(now + timedelta(days=2)) == "expired"
    assert record.with_changes(revoked=now).state(now) == "revoked"
    for damage in ({"hash": "short"}, {"roles": "admin"}, {"created": 5}):
        with pytest.raises(ValueError):
            KeyRecord.from_dict({**record.to_dict(), **damage})


def test_cli_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ["--store", str(tmp_path / "keys.json")]
    assert main(["keys", *store, "create", "--name", "ci", "--role", "operator", "--expires", "30d"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", *store, "list"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["NAME", "ID", "ROLES", "STATE", "CREATED", "EXPIRES"]
    assert key[5:17] in table
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert main(["keys", *store, "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["roles"] == ["operator"]
    assert main(["keys", *store, "rotate", "ci", "--grace", "0s"]) == 0
    new_key = capsys.readouterr().out.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(key))
    assert main(["keys", *store, "verify"]) == 1
    assert "expired" in capsys.readouterr().err
    assert main(["keys", *store, "revoke", "ci"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(new_key))
    assert main(["keys", *store, "verify"]) == 1
    assert main(["keys", *store, "list", "--json"]) == 0
    states = sorted(r["state"] for r in json.loads(capsys.readouterr().out))
    assert states == ["revoked", "revoked"]  # revoke covers every key of the name, retired ones too
    (tmp_path / "bad.json").write_text("[1]")
    assert main(["keys", "--store", str(tmp_path / "bad.json"), "list"]) == 78
    assert "not a hardenkit key file" in capsys.readouterr().err


def test_auth_matrix_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tiny_app.py").write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.responses import PlainTextResponse\n"
        "from starlette.routing import Route\n"
        "import hardenkit as hk\n"
        "async def ok(request):\n"
        "    return PlainTextResponse('ok')\n"
        "app = Starlette(routes=[Route('/x', ok), Route('/y', hk.require_roles('admin').wrap(ok))])\n"
        "app.add_middleware(hk.APIKeyMiddleware, store='memory', public_paths=['/x'])\n"
    )
    assert main(["auth", "matrix", "tiny_app:app", "--app-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| GET | `/x` | public | - |" in out
    assert "| GET | `/y` | roles | admin |" in out
