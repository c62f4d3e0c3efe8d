"""``env_file=".env"``: HARDENKIT_* lines read under the environment, errors with file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import hardenkit as hk
from hardenkit._core.dotenv import read_env_file


async def home(request: Request) -> Response:
    return PlainTextResponse("ok")


def make_app() -> Starlette:
    return Starlette(routes=[Route("/", home)])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_subset_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# comment\n"
        "\n"
        "HARDENKIT_A=plain value   # inline comment\n"
        "export HARDENKIT_B=exported\n"
        'HARDENKIT_C="double \\"quoted\\" # not a comment\\n"  # comment\n'
        "HARDENKIT_D='single # kept \\n as written'\n"
        "HARDENKIT_E=\n"
        "  HARDENKIT_F = spaced\n"
        "HARDENKIT_G=a#b\n"
        "DATABASE_URL=postgres://ignored\n",
    )
    values = {name: item.value for name, item in read_env_file(path).items()}
    assert values == {
        "HARDENKIT_A": "plain value",
        "HARDENKIT_B": "exported",
        "HARDENKIT_C": 'double "quoted" # not a comment\n',
        "HARDENKIT_D": "single # kept \\n as written",
        "HARDENKIT_E": "",
        "HARDENKIT_F": "spaced",
        "HARDENKIT_G": "a#b",
    }
    assert read_env_file(path)["HARDENKIT_B"].line == 4


def test_other_applications_lines_are_left_alone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'PRIVATE_KEY="-----BEGIN KEY-----\nMIIB...\n-----END KEY-----"\nURL=${HOST}/x\nHARDENKIT_A=1\n',
    )
    assert {name: item.value for name, item in read_env_file(path).items()} == {"HARDENKIT_A": "1"}


def test_a_missing_file_is_skipped(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / "nope.env") == {}
    kit = hk.Kit.from_env({}, env_file=tmp_path / "nope.env").register(hk.HeaderContractMiddleware)
    assert kit.environ == {}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('HARDENKIT_A="open', "double quote is not closed"),
        ("HARDENKIT_A='open", "single quote is not closed"),
        ("HARDENKIT_A='x' y", "after the closing quote"),
        ("HARDENKIT_A", "expected NAME=VALUE"),
    ],
)
def test_a_hardenkit_line_that_does_not_parse_names_the_file_and_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write(tmp_path, f"# first\n{line}\n")
    with pytest.raises(hk.ConfigurationError, match=rf"\.env, line 2: .*{reason}"):
        read_env_file(path)


def test_the_file_configures_harden_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "HARDENKIT_HEADERS_SECURITY_HEADERS=web\nHARDENKIT_HEADERS_REQUEST_ID_HEADER=X-From-File\n",
    )
    monkeypatch.delenv("HARDENKIT_HEADERS_SECURITY_HEADERS", raising=False)
    monkeypatch.setenv("HARDENKIT_HEADERS_REQUEST_ID_HEADER", "X-From-Env")
    response = TestClient(hk.harden(make_app(), env_file=path)).get("/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"  # from the file
    assert "x-from-env" in response.headers and "x-from-file" not in response.headers
    # Without env_file the file is not read.
    response = TestClient(hk.harden(make_app())).get("/")
    assert response.headers["x-frame-options"] == "DENY"


def test_keyword_options_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "HARDENKIT_HEADERS_SECURITY_HEADERS=web\n")
    app = hk.harden(make_app(), env=False, env_file=path, headers={"security_headers": "strict"})
    assert TestClient(app).get("/").headers["cross-origin-embedder-policy"] == "require-corp"


def test_env_false_with_a_file_reads_the_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "HARDENKIT_HEADERS_SECURITY_HEADERS=web\n")
    monkeypatch.setenv("HARDENKIT_HEADERS_LATENCY_HEADER", "none")
    response = TestClient(hk.harden(make_app(), env=False, env_file=path)).get("/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "x-latency-ms" in response.headers  # the process environment was not read


def test_a_bad_value_in_the_file_is_reported_with_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# settings\nHARDENKIT_HEADERS_SERVER_TIMING=maybe\n")
    with pytest.raises(hk.ConfigurationError) as caught:
        hk.harden(make_app(), env=False, env_file=path)
    message = str(caught.value)
    assert f"{path}, line 2" in message and "HARDENKIT_HEADERS_SERVER_TIMING='maybe'" in message


def test_an_unknown_variable_in_the_file_is_reported_with_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "HARDENKIT_HEADERS_COLOUR=blue\n")
    with pytest.raises(hk.ConfigurationError, match=r"\.env, line 1: HARDENKIT_HEADERS_COLOUR"):
        hk.harden(make_app(), env=False, env_file=path)


def test_a_value_the_component_refuses_names_the_variable_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\nHARDENKIT_HEADERS_REQUEST_ID_HEADER=bad header\n")
    with pytest.raises(
        hk.ConfigurationError, match=r"HARDENKIT_HEADERS_REQUEST_ID_HEADER='bad header' \(.*\.env, line 3\)"
    ):
        hk.Kit.from_env({}, env_file=path).register(hk.HeaderContractMiddleware).wrap(make_app())


def test_kit_from_env_reads_the_file_and_tells_where_each_variable_came_from(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "HARDENKIT_HEADERS_SECURITY_HEADERS=web\nHARDENKIT_HEADERS_SERVER_TIMING=1\n")
    kit = hk.Kit.from_env({"HARDENKIT_HEADERS_SERVER_TIMING": "0"}, env_file=str(path))
    assert kit.environ == {
        "HARDENKIT_HEADERS_SECURITY_HEADERS": f"{path}, line 1",
        "HARDENKIT_HEADERS_SERVER_TIMING": "environment",
    }
    kit.register(hk.HeaderContractMiddleware)
    response = TestClient(kit.install(make_app())).get("/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN" and "server-timing" not in response.headers
    assert "HARDENKIT_HEADERS_SECURITY_HEADERS" not in os.environ  # never copied into the environment


def test_unreadable_and_oversized_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(hk.ConfigurationError, match="cannot be read"):
        read_env_file(tmp_path)  # a directory
    big = tmp_path / "big.env"
    big.write_bytes(b"#" * 1_048_577)
    with pytest.raises(hk.ConfigurationError, match="larger than"):
        read_env_file(big)
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"HARDENKIT_A=caf\xe9\n")
    with pytest.raises(hk.ConfigurationError, match="not UTF-8"):
        read_env_file(latin)


def test_harden_defaults_yield_to_variables_and_code_wins_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # harden()'s own "100/minute" is a default: a variable (or the file) replaces it.
    path = write(tmp_path, "HARDENKIT_RATELIMIT_DEFAULT=2/minute\n")
    client = TestClient(hk.harden(make_app(), env=False, env_file=path))
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    monkeypatch.setenv("HARDENKIT_RATELIMIT_DEFAULT", "1/minute")
    client = TestClient(hk.harden(make_app(), env_file=path))
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    client = TestClient(hk.harden(make_app(), env_file=path, ratelimit={"default": "3/minute"}))
    assert [client.get("/").status_code for _ in range(4)] == [200, 200, 200, 429]
