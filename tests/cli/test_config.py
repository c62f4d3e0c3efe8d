"""``hardenkit config APP``: the effective configuration of harden(), secrets redacted."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hardenkit.cli import main


def app_module(tmp_path: Path, body: str) -> str:
    name = f"cfg_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(body, encoding="utf-8")
    return name


HARDENED = """
from starlette.applications import Starlette
import hardenkit as hk

app = hk.harden(Starlette(), env=False, headers={"security_headers": "web"}, ratelimit={"default": "7/minute"})
"""

PLAIN = """
from starlette.applications import Starlette

app = Starlette()
"""


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))
    status = main(["config", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_kit_an_app_was_hardened_with_is_shown_with_its_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = app_module(tmp_path, HARDENED)
    status, out, _ = run([f"{name}:app"], capsys, monkeypatch, tmp_path)
    assert status == 0
    assert f"the kit installed on {name}:app" in out
    lines = out.splitlines()
    layers = [line.split() for line in lines if line.startswith("  ") and not line.startswith("      ")]
    assert layers[-1] == ["app"]
    order = [layer[1] for layer in layers[:-1]]
    assert order == [
        "HeaderContractMiddleware",
        "HealthProbeMiddleware",
        "MetricsMiddleware",  # the test extra installs prometheus_client
        "AccessLogMiddleware",
        "TimeoutMiddleware",
        "RateLimitMiddleware",
        order[-1],  # starlette's RequestBodyLimitMiddleware, or hardenkit's on starlette < 1.0
    ]
    assert "security_headers = 'web'    [explicit]" in out
    assert "default = '7/minute'    [explicit]" in out
    assert "live_path = '/livez'    [default]" in out


def test_an_app_not_hardened_shows_what_harden_would_install_from_the_environment_and_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = app_module(tmp_path, PLAIN)
    (tmp_path / "prod.env").write_text(
        "HARDENKIT_RATELIMIT_DEFAULT=5/second\nHARDENKIT_HEADERS_SECURITY_HEADERS=strict\n", encoding="utf-8"
    )
    monkeypatch.setenv("HARDENKIT_RATELIMIT_STORAGE", "redis://:hunter2@127.0.0.1:6379/0")
    monkeypatch.setenv("HARDENKIT_HEADERS_SECURITY_HEADERS", "web")
    status, out, _ = run([f"{name}:app", "--env-file", "prod.env"], capsys, monkeypatch, tmp_path)
    assert status == 0
    assert "what harden() installs" in out
    assert "hunter2" not in out
    assert "storage = 'redis://:[REDACTED" in out and "[HARDENKIT_RATELIMIT_STORAGE (environment)]" in out
    # harden()'s own default for the rate limit is explicit code; the file does not override it,
    # but the file's header preset applies where the environment has none... the environment wins here.
    assert "security_headers = 'web'    [HARDENKIT_HEADERS_SECURITY_HEADERS (environment)]" in out


def test_the_env_file_source_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("# x\nHARDENKIT_HEADERS_SECURITY_HEADERS=strict\n", encoding="utf-8")
    monkeypatch.delenv("HARDENKIT_HEADERS_SECURITY_HEADERS", raising=False)
    status, out, _ = run(["--env-file", ".env", "--json"], capsys, monkeypatch, tmp_path)
    assert status == 0
    document = json.loads(out)
    headers = next(layer for layer in document["layers"] if layer["class"] == "HeaderContractMiddleware")
    assert headers["options"]["security_headers"] == {
        "value": "'strict'",
        "source": "HARDENKIT_HEADERS_SECURITY_HEADERS (.env, line 2)",
    }


def test_secret_named_options_are_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
from starlette.applications import Starlette
import hardenkit as hk

class Auth:
    hardenkit_slot = "ratelimit"
    def __init__(self, app, *, api_key="s3cr3t-default", password=None, kit=None):
        self.app = app
    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)

app = hk.Kit().register(Auth, password="p4ssw0rd").install(Starlette())
"""
    name = app_module(tmp_path, body)
    status, out, _ = run([f"{name}:app"], capsys, monkeypatch, tmp_path)
    assert status == 0
    assert "s3cr3t" not in out and "p4ssw0rd" not in out
    assert "api_key = [REDACTED]    [default]" in out and "password = [REDACTED]    [explicit]" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "MODULE:ATTRIBUTE"),
        ("no_such_module_x:app", "cannot load"),
        ("json:nothing", "cannot load"),
    ],
)
def test_a_bad_target_is_a_clear_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    message: str,
) -> None:
    status, _, err = run([target], capsys, monkeypatch, tmp_path)
    assert status == 2 and message in err


def test_a_bad_env_file_value_is_reported_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("HARDENKIT_HEADERS_SERVER_TIMING=maybe\n", encoding="utf-8")
    monkeypatch.delenv("HARDENKIT_HEADERS_SERVER_TIMING", raising=False)
    status, _, err = run(["--env-file", ".env"], capsys, monkeypatch, tmp_path)
    assert status == 2 and ".env, line 1" in err


def test_help_is_usage_and_the_console_script_runs_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hardenkit.cli import main; sys.exit(main(sys.argv[1:]))",
            "config",
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: hardenkit config")


def test_a_wrapped_app_shows_its_kit_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
import hardenkit as hk

async def raw(scope, receive, send):
    pass

app = hk.harden(raw, env=False, access_log=False, ratelimit={"default": "9/hour"})
"""
    name = app_module(tmp_path, body)
    status, out, _ = run([f"{name}:app"], capsys, monkeypatch, tmp_path)
    assert status == 0 and f"the kit installed on {name}:app" in out
    assert "AccessLogMiddleware" not in out
    assert "default = '9/hour'    [explicit]" in out
    assert "BodyLimitMiddleware" in out  # hardenkit's own for a wrapped app
    assert "max_body_size = 1048576    [harden() default]" in out
