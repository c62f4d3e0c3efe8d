"""The TLS probe against real TLS servers on loopback (Python's ssl in a thread): which protocols they accept."""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardenkit.check.tls import probe_tls
from support_tls import make_certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"), days=30)


def _serve(context: ssl.SSLContext) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():  # bounded by the fixture's stop
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(1)
                    tls.recv(1)
            except OSError:
                pass  # refused handshakes and closed probes are the point
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.fixture
def modern_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # TLS 1.2 at the least, Python's default
    context.load_cert_chain(*certificate)
    yield from _serve(context)


@pytest.fixture
def permissive_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(*certificate)
    yield from _serve(context)


def test_a_modern_server_refuses_tls_1_1(modern_server: int, certificate: tuple[Path, Path]) -> None:
    info = probe_tls("127.0.0.1", modern_server, cafile=str(certificate[0]), insecure=False, timeout=5)
    assert info.error is None and info.version in ("TLSv1.2", "TLSv1.3")
    assert info.not_after is not None
    if not getattr(ssl, "HAS_TLSv1_1", False):  # pragma: no cover - an OpenSSL built without it
        assert info.refuses_old is None
        return
    assert info.refuses_old is True


def test_a_server_that_still_accepts_tls_1_1_is_caught(
    permissive_server: int, certificate: tuple[Path, Path]
) -> None:
    info = probe_tls("127.0.0.1", permissive_server, cafile=str(certificate[0]), insecure=False, timeout=5)
    assert info.error is None
    if not getattr(ssl, "HAS_TLSv1_1", False):  # pragma: no cover - an OpenSSL built without it
        pytest.skip("this machine's OpenSSL cannot offer TLS 1.1")
    assert info.refuses_old is False


def test_an_unknown_certificate_is_a_handshake_error(modern_server: int) -> None:
    info = probe_tls("127.0.0.1", modern_server, cafile=None, insecure=False, timeout=5)
    assert info.error is not None and "CERTIFICATE_VERIFY_FAILED" in info.error
