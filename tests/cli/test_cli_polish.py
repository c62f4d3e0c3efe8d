"""CLI polish: usage on --help, comma-separated list options, the per-process hash key warning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hardenkit.cli import main


def hardenkit(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HARDENKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "hardenkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_demo_help_prints_usage_not_a_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hardenkit demo")
    assert "--port" in out and "--redis" in out
    assert "``" not in out  # no reStructuredText from a module docstring


def test_top_level_help_lists_the_config_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "config" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [["--enable", "ip,email"], ["--enable", "ip", "--enable", "email"], ["--enable", " ip , email "]],
)
def test_list_options_accept_commas_like_the_environment(args: list[str]) -> None:
    result = hardenkit("redact", *args, stdin="from 192.168.1.20 mail a@example.com\n")
    assert result.returncode == 0, result.stderr
    assert "192.168.1.20" not in result.stdout and "a@example.com" not in result.stdout


def test_disable_accepts_commas_too() -> None:
    result = hardenkit("redact", "--disable", "email,ip", stdin="mail a@example.com\n")
    assert result.returncode == 0, result.stderr
    assert "a@example.com" in result.stdout


def test_an_unknown_category_in_a_list_is_still_refused() -> None:
    result = hardenkit("redact", "--enable", "ip,nonsense", stdin="x\n")
    assert result.returncode == 2 and "nonsense" in result.stderr


def test_hash_mode_without_a_key_warns_that_the_key_is_per_process() -> None:
    result = hardenkit("redact", "--mode", "hash", stdin="mail a@example.com\n")
    assert result.returncode == 0
    assert "a@example.com" not in result.stdout
    assert "warning" in result.stderr and "HARDENKIT_REDACT_KEY" in result.stderr
    assert "per process" in result.stderr


def test_hash_mode_with_a_key_is_quiet_and_stable() -> None:
    env = {"HARDENKIT_REDACT_KEY": "k" * 32}
    first = hardenkit("redact", "--mode", "hash", stdin="mail a@example.com\n", env=env)
    second = hardenkit("redact", "--mode", "hash", stdin="mail a@example.com\n", env=env)
    assert first.stderr == "" and first.stdout == second.stdout


def test_mask_mode_does_not_warn() -> None:
    assert hardenkit("redact", stdin="mail a@example.com\n").stderr == ""
