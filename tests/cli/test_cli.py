from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx2 as httpx
import pytest

import hardenkit as hk
from hardenkit.cli import main
from support import free_port, wait_for_port


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hardenkit {hk.__version__}"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_unknown_command_is_an_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_console_script_module_entry() -> None:
    result = subprocess.run([sys.executable, "-m", "hardenkit", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("hardenkit ")


def test_demo_without_uvicorn_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; from hardenkit.cli import main; sys.exit(main(['demo']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'hardenkit[demo]'" in result.stderr


@pytest.mark.slow
def test_demo_serves_the_hardened_demo_app_on_loopback() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDENKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardenkit", "demo", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            ok = client.get("/items/1", headers={"X-Request-ID": "demo-1"})
            assert ok.status_code == 200 and ok.json()["name"] == "hammer"
            assert ok.headers["x-request-id"] == "demo-1"
            assert client.get("/stream").text.count("chunk") == 5
            assert client.get("/readyz").status_code == 200
            # Last: after an unhandled exception uvicorn closes that keep-alive connection.
            boom = client.get("/boom")
            assert boom.status_code == 500
            assert boom.headers["content-type"] == "application/problem+json"
            assert boom.json()["request_id"] == boom.headers["x-request-id"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure being tested
            proc.kill()
            out, err = proc.communicate()
            pytest.fail("demo did not stop on SIGINT")
    assert f"http://127.0.0.1:{port}" in out.decode()
    assert "curl" in out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
