"""The TLS probe: the protocol a service negotiates, whether it refuses TLS 1.1 and older, the certificate's expiry.

A handshake is not HTTP, so the standard library's ssl does it (in a worker
thread: the calls block). With ``--insecure`` the certificate is not verified and
ssl does not decode it; its expiry is then read with ``cryptography`` when that
is installed.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["TlsInfo", "probe_tls"]


@dataclass
class TlsInfo:
    version: str | None = None  # "TLSv1.3"
    refuses_old: bool | None = None  # None: could not tell (this machine's OpenSSL cannot offer TLS 1.1)
    not_after: datetime | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def _not_after(tls: ssl.SSLSocket, info: TlsInfo) -> datetime | None:
    decoded = tls.getpeercert()
    if decoded and "notAfter" in decoded:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(str(decoded["notAfter"])), tz=timezone.utc)
    der = tls.getpeercert(binary_form=True)
    try:
        from cryptography import x509
    except ImportError:
        info.notes.append(
            "certificate expiry not read: unverified certificate and no 'cryptography' installed"
        )
        return None
    if der is None:  # pragma: no cover - a TLS server always sends a certificate here
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _accepts_old_protocol(host: str, port: int, timeout: float) -> bool | None:
    if not getattr(ssl, "HAS_TLSv1_1", False):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        # Offering the deprecated protocols is the point of this probe: silence Python's warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        # Old protocols need old ciphers; without this OpenSSL 3 refuses on our side.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return None
    try:
        with _handshake(host, port, context, timeout):
            return True
    except (ssl.SSLError, OSError):
        return False


def probe_tls(host: str, port: int, *, cafile: str | None, insecure: bool, timeout: float) -> TlsInfo:
    info = TlsInfo()
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with _handshake(host, port, context, timeout) as tls:
            info.version = tls.version()
            info.not_after = _not_after(tls, info)
    except (ssl.SSLError, OSError) as exc:
        info.error = f"{type(exc).__name__}: {exc}"
        return info
    refused = _accepts_old_protocol(host, port, timeout)
    info.refuses_old = None if refused is None else not refused
    if refused is None:
        info.notes.append("TLS 1.1 refusal not tested: this machine's OpenSSL cannot offer TLS 1.1")
    return info
