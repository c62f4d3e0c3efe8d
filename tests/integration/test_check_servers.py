"""``hardenkit check`` against real servers on loopback: the demo passes, a bare Starlette app fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hardenkit.check import CHECKS
from hardenkit.cli import main
from support import free_port, uvicorn_server, wait_for_port

pytestmark = pytest.mark.slow

PROBES = ("/livez", "/readyz", "/healthz")
DEMO_PATHS = [
    "--path",
    "/",
    "--path",
    "/items/1",
    "--path",
    "/items/99",
    "--path",
    "/stream",
    "--path",
    "/boom",
]


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """``hardenkit demo --port P``, stopped by pid after the module's tests."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDENKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardenkit", "demo", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when the demo hangs
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def bare() -> Iterator[str]:
    with uvicorn_server("integration.check_apps:bare") as (url, _):
        yield url


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    return code, capsys.readouterr().out


def failing(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in document["checks"] if c["status"] == "fail"}


def test_demo_passes_every_check_and_exits_0(demo: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, demo, *DEMO_PATHS, "--format", "json")
    document = json.loads(out)
    assert [c["id"] for c in document["checks"]] == list(CHECKS)
    assert document["endpoints"] == ["GET /", "GET /items/1", "GET /items/99", "GET /stream", "GET /boom"]
    assert document["requests"] >= 15
    passed = {c["id"] for c in document["checks"] if c["status"] == "pass"}
    assert {"request-id-echo", "request-id-invalid", "request-id-unique", "security-headers", "problem-json",
            "probes", "ratelimit-headers", "cors", "server-leak"} <= passed  # fmt: skip
    failed = failing(document)
    assert failed == {} and document["summary"]["ok"] is True
    assert code == 0


def test_demo_junit_report_for_ci(demo: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "check.xml"
    code, out = check(capsys, demo, *DEMO_PATHS, "--format", "junit", "--output", str(report))
    assert "hardenkit check http://127.0.0.1" in out  # the table still goes to stdout
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == list(CHECKS)
    assert cases["security-headers"].find("failure") is None
    assert cases["hsts"].find("skipped") is not None  # http: no HSTS to judge
    assert int(suite.get("failures", "-1")) == sum(1 for c in cases.values() if c.find("failure") is not None)
    assert code == (1 if int(suite.get("failures", "0")) else 0)


def test_bare_starlette_lists_the_violations_and_exits_1(
    bare: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(capsys, bare, "--path", "/", "--path", "/items", "--format", "json")
    assert code == 1
    failed = failing(json.loads(out))
    assert {"request-id-present", "latency-header", "security-headers", "problem-json", "probes"} <= set(
        failed
    )
    assert any(
        "GET /__hardenkit_check_" in v and "-> 404" in v for v in failed["request-id-present"]["violations"]
    )
    assert any("TRACE / -> 405" in v for v in failed["problem-json"]["violations"])
    assert failed["security-headers"]["detail"].startswith("grade F")
    for check_result in failed.values():
        assert check_result["fix"] and check_result["severity"] == "error"


def test_bare_starlette_table_names_each_failure_and_its_fix(
    bare: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(capsys, bare, "--path", "/", "--color", "never")
    assert code == 1
    assert "FAIL  request-id-present" in out and "fix: serve through hk.HeaderContractMiddleware" in out
    assert "\033[" not in out


def test_burst_without_a_rate_limit_finds_no_429(bare: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, bare, "--path", "/", "--burst", "20", "--format", "json")
    assert failing(json.loads(out))["ratelimit-burst"]["violations"] == ["20 requests in a burst, no 429"]
    assert code == 1


def test_burst_against_the_demo_limit_gets_problem_429s(capsys: pytest.CaptureFixture[str]) -> None:
    # A server of its own: the burst spends the demo's 100/minute quota.
    with uvicorn_server("demo_app:app") as (url, _):
        code, out = check(capsys, url, "--path", "/", "--burst", "120", "--skip", "request-id-present",
                          "--skip", "latency-header", "--format", "json")  # fmt: skip
    document = json.loads(out)
    burst = next(c for c in document["checks"] if c["id"] == "ratelimit-burst")
    assert burst["status"] == "pass", burst
    assert burst["detail"].endswith("of 120 refused")
    assert code == 0, failing(document)


def test_cors_reflection_and_version_leak(capsys: pytest.CaptureFixture[str]) -> None:
    with uvicorn_server("integration.check_apps:leaky") as (url, _):
        code, out = check(capsys, url, "--path", "/", "--format", "json")
    failed = failing(json.loads(out))
    assert "cors" in failed and "server-leak" in failed
    assert any("Express/4.17.1" in v for v in failed["server-leak"]["violations"])
    assert failed["server-leak"]["severity"] == "warning"
    assert code == 1


def test_a_failed_warning_fails_the_run_only_with_strict(capsys: pytest.CaptureFixture[str]) -> None:
    with uvicorn_server("integration.check_apps:leaky") as (url, _):
        common = [
            url,
            "--path",
            "/",
            "--skip",
            "cors",
            "--skip",
            "request-id-present",
            "--skip",
            "latency-header",
            "--skip",
            "problem-json",
        ]
        code, out = check(capsys, *common, "--color", "never")
        assert "WARN  server-leak" in out
        assert code == 0
        strict_code, _ = check(capsys, *common, "--strict")
    assert strict_code == 1


def test_compressed_answers_are_judged_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    with uvicorn_server("integration.check_apps:zipped") as (url, _):
        code, out = check(capsys, url, "--path", "/", "--path", "/boom", "--format", "json")
    problem = next(c for c in json.loads(out)["checks"] if c["id"] == "problem-json")
    assert not any("/boom" in violation for violation in problem["violations"]), problem


def test_openapi_discovery_fills_path_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with uvicorn_server("integration.check_apps:api") as (url, _):
        code, out = check(capsys, url, "--param", "thing_id=42", "--format", "json", "--no-probes")
    document = json.loads(out)
    assert document["endpoints"] == ["GET /things/42", "GET /plain"]
    assert "2 operation(s) from the OpenAPI document" in document["notes"]
    assert code == 1  # a bare FastAPI app keeps none of the contract


def test_openapi_document_from_a_file(bare: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps({"openapi": "3.1.0", "paths": {"/items": {"get": {}, "post": {}}}}))
    code, out = check(capsys, bare, "--openapi", str(document), "--format", "json")
    assert json.loads(out)["endpoints"] == ["GET /items"]  # POST is not a safe method: not called
    assert code == 1


def test_request_budget_bounds_the_run(bare: str, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [arg for index in range(30) for arg in ("--path", f"/p{index}")]
    code, out = check(capsys, bare, *paths, "--max-requests", "20", "--no-openapi", "--format", "json")
    document = json.loads(out)
    assert document["requests"] == 20
    assert any("request budget spent" in note for note in document["notes"])
    assert code == 1


def test_budget_spent_by_the_fixed_probes_says_so(bare: str, capsys: pytest.CaptureFixture[str]) -> None:
    probes = [arg for index in range(15) for arg in ("--probe", f"/probe{index}")]
    code, out = check(capsys, bare, *probes, "--max-requests", "20", "--no-openapi", "--format", "json")
    document = json.loads(out)
    assert document["requests"] == 20
    assert any("before the fixed probes ended" in note for note in document["notes"])
    assert code == 1


def test_nothing_listening_is_a_connection_error_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "check.xml"
    code = main(
        [
            "check",
            f"http://127.0.0.1:{free_port()}",
            "--timeout",
            "2",
            "--format",
            "junit",
            "--output",
            str(report),
        ]
    )
    assert code == 2
    assert "ConnectError" in capsys.readouterr().err
    # The JUnit file CI publishes says why nothing was checked.
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    error = suite.find("testcase/error")
    assert error is not None and "ConnectError" in error.get("message", "")


@pytest.mark.parametrize(
    "args",
    [
        ["ftp://127.0.0.1"],
        ["http://127.0.0.1:1", "--burst", "5000"],
        ["http://127.0.0.1:1", "--path", "nope"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["check", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(str(exc.code))
    assert code == 2


def test_console_script_exit_status(bare: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hardenkit", "check", bare, "--path", "/", "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["summary"]["ok"] is False
