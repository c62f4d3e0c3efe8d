"""The ``hardenkit check`` command line: httpx only when a check runs, usage errors, the install hint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hardenkit.check import CHECKS
from hardenkit.cli import main


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import hardenkit",
        "import hardenkit.check",
        "from hardenkit.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass",
    ],
)
def test_httpx_is_imported_only_when_a_check_runs(code: str) -> None:
    assert not any(name == "httpx" or name.startswith("httpx.") for name in _modules_after(code))


def test_without_httpx_the_command_says_what_to_install() -> None:
    code = "import sys; sys.modules['httpx'] = None; from hardenkit.cli import main; sys.exit(main(['check', 'http://127.0.0.1:1']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'hardenkit[check]'" in result.stderr


def test_help_lists_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(check_id in out for check_id in CHECKS)
    assert "exit status: 0" in out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["http://127.0.0.1:1", "--format", "xml"],
        ["http://127.0.0.1:1", "--skip", "no-such-check"],
        ["http://127.0.0.1:1", "--param", "novalue"],
        ["http://127.0.0.1:1", "--concurrency", "many"],
    ],
)
def test_argparse_usage_errors_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", *args])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://127.0.0.1"], "not an http(s) URL"),
        (["http://127.0.0.1:1", "--burst", "5000"], "--burst must be between 1 and 1000"),
        (["http://127.0.0.1:1", "--burst", "185"], "leaves too little of --max-requests"),
        (["http://127.0.0.1:1", "--path", "items"], "must start with '/'"),
        (["http://127.0.0.1:1", "--concurrency", "0"], "--concurrency"),
        (["http://127.0.0.1:1", "--max-requests", "5"], "--max-requests"),
        (["http://127.0.0.1:1", "--timeout", "0"], "--timeout"),
        (["https://127.0.0.1:1", "--cacert", "/nonexistent/ca.pem"], "--cacert"),
        (["http://127.0.0.1:1", "--openapi", "no/such/openapi.json"], "cannot read a JSON OpenAPI document"),
    ],
)
def test_unusable_options_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *args, "--timeout", "2"] if "--timeout" not in args else ["check", *args]) == 2
    assert message in capsys.readouterr().err
