"""``hardenkit check https://...``: HSTS and TLS checks against uvicorn with a self-signed certificate made here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hardenkit.cli import main
from support import uvicorn_server
from support_tls import make_certificate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    return {"good": make_certificate(folder, days=90), "expiring": make_certificate(folder, days=5)}


def https_server(app: str, cert: tuple[Path, Path]) -> Any:
    return uvicorn_server(app, extra_args=("--ssl-certfile", str(cert[0]), "--ssl-keyfile", str(cert[1])))


@pytest.fixture(scope="module")
def demo_https(certificates: dict[str, tuple[Path, Path]]) -> Iterator[str]:
    with https_server("demo_app:app", certificates["good"]) as (url, _):
        yield url.replace("http://", "https://")


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code = main(["check", *args, "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    return code, {c["id"]: c for c in document["checks"]}


def test_hardened_service_over_https_passes_hsts_and_tls(
    demo_https: str, certificates: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = run_json(capsys, demo_https, "--path", "/", "--cacert", str(certificates["good"][0]))
    assert checks["hsts"]["status"] == "pass"
    assert checks["tls-version"]["status"] == "pass"
    assert checks["tls-version"]["detail"].startswith(("negotiated TLSv1.2", "negotiated TLSv1.3"))
    assert checks["tls-certificate"]["status"] == "pass"
    assert (
        "(89 days)" in checks["tls-certificate"]["detail"]
        or "(90 days)" in checks["tls-certificate"]["detail"]
    )


def test_unverifiable_certificate_is_a_connection_error(
    demo_https: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", demo_https, "--path", "/"]) == 2
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err


def test_bare_service_over_https_lacks_hsts_and_its_certificate_expires(
    certificates: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    with https_server("integration.check_apps:bare", certificates["expiring"]) as (url, _):
        # --insecure: the certificate is not verified, its expiry is read all the same.
        code, checks = run_json(capsys, url.replace("http://", "https://"), "--path", "/", "--insecure")
    assert code == 1
    assert checks["hsts"]["status"] == "fail"
    assert any("no Strict-Transport-Security" in v for v in checks["hsts"]["violations"])
    assert checks["tls-version"]["status"] == "pass"
    assert checks["tls-certificate"]["status"] == "fail"
    assert "within 14 days" in checks["tls-certificate"]["violations"][0]
