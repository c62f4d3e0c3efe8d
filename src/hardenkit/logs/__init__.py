"""Redacted JSON logs: Redactor, RedactingFilter, configure_logging and the access log.

Secrets and personal data never reach a log line::

    import logging
    import hardenkit as hk

    hk.configure_logging(level="INFO", json=True, redact=True)
    logging.getLogger("app").info("login for %s", "alice@example.com")
    # {"timestamp": "...Z", "level": "INFO", "logger": "app", "message": "login for [REDACTED:email]"}

Modules: ``rules``, ``providers``, ``context``, ``catalog`` (the redaction rules),
``engine`` (the scanner), ``gitleaks`` (loading a gitleaks configuration), ``redactor`` (Redactor),
``filters`` (RedactingFilter), ``formatting`` (formatters, configure_logging),
``urls`` (paths and queries redacted as the app decodes them), ``access``
(AccessLogMiddleware), ``files`` and ``rotation`` (LogFileHandler: a log file
shared by many processes; these two load on first use). Nothing here loads
starlette or limits, so scripts can import it; the access log is pure ASGI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import CATEGORIES, DEFAULT_CATEGORIES, OPT_IN_CATEGORIES, is_secret_key, re2_available
from .filters import RedactingFilter
from .formatting import configure_logging
from .redactor import Redactor

if TYPE_CHECKING:
    from .access import AccessLogMiddleware
    from .files import LogFileHandler

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "OPT_IN_CATEGORIES",
    "AccessLogMiddleware",
    "LogFileHandler",
    "RedactingFilter",
    "Redactor",
    "configure_logging",
    "is_secret_key",
    "re2_available",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so importing hardenkit.logs stays light (no filelock, no threads).
    if name in ("AccessLogMiddleware", "LogFileHandler"):
        import importlib

        value = getattr(importlib.import_module(".access" if name[0] == "A" else ".files", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hardenkit.logs' has no attribute {name!r}")
