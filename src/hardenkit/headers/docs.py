"""Where an app serves its interactive API docs: the only pages whose CSP is relaxed.

FastAPI's Swagger UI and ReDoc pages load their script, styles and fonts from a
CDN and run an inline script; under the ``api`` preset's ``default-src 'none'``
they are blank. Relaxing every path under ``/docs`` and ``/redoc`` would give
``'unsafe-inline'`` and a CDN to pages the app never meant as docs (or to any
path at all when the app serves no docs), so only the exact pages the app
serves get :data:`DOCS_HEADERS`: read from a FastAPI app's ``docs_url``,
``redoc_url`` and ``swagger_ui_oauth2_redirect_url`` (custom ones such as
``/api/docs`` included), or listed by the user. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core.config import env_list
from ..errors import ConfigurationError

__all__ = [
    "DOCS_CSP",
    "DOCS_HEADERS",
    "check_docs_paths",
    "env_docs_paths",
    "find_docs_app",
    "served_docs_paths",
]

#: What Swagger UI and ReDoc, as FastAPI serves them, need and nothing more.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)

#: Overrides applied over the preset on the docs pages (COEP would block the CDN's files).
DOCS_HEADERS: dict[str, str | None] = {
    "Content-Security-Policy": DOCS_CSP,
    "Cross-Origin-Embedder-Policy": None,
}

_MISSING = object()
# How far down the ``.app`` chain of a Kit.wrap'ed stack to look for the app itself.
_MAX_HOPS = 64


def served_docs_paths(app: object) -> frozenset[str] | None:
    """The docs pages ``app`` serves, as route paths, when it is a FastAPI app; None otherwise.

    FastAPI serves Swagger UI at ``docs_url`` (plus its OAuth2 redirect page) and
    ReDoc at ``redoc_url`` only when ``openapi_url`` is set too.
    """
    try:
        openapi_url = getattr(app, "openapi_url", _MISSING)
        docs_url = getattr(app, "docs_url", _MISSING)
        redoc_url = getattr(app, "redoc_url", _MISSING)
        oauth2_url = getattr(app, "swagger_ui_oauth2_redirect_url", None)
    except Exception:  # a property that raises: not an app we can read
        return None
    for value in (openapi_url, docs_url, redoc_url):
        if value is not None and not isinstance(value, str):
            return None  # not FastAPI (or _MISSING)
    paths: set[str] = set()
    if isinstance(openapi_url, str) and openapi_url:
        if isinstance(docs_url, str) and docs_url:
            paths.add(docs_url)
            if isinstance(oauth2_url, str) and oauth2_url:
                paths.add(oauth2_url)
        if isinstance(redoc_url, str) and redoc_url:
            paths.add(redoc_url)
    return frozenset(paths)


def find_docs_app(app: object) -> object | None:
    """The FastAPI app at the end of ``app``'s ``.app`` chain (``Kit.wrap(fastapi_app)``), if any.

    Under ``app.add_middleware`` the chain ends at the router instead; the app is
    then read from ``scope["app"]`` at request time.
    """
    seen: set[int] = set()
    current: Any = app
    for _ in range(_MAX_HOPS):
        if current is None or id(current) in seen:
            return None
        seen.add(id(current))
        if served_docs_paths(current) is not None:
            return current  # type: ignore[no-any-return]
        try:
            current = getattr(current, "app", None)
        except Exception:
            return None
    return None


def check_docs_paths(value: object) -> frozenset[str]:
    """Validate the ``docs_paths`` option given as a list: exact paths starting with '/'."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"docs_paths: write 'auto' (read FastAPI's docs_url/redoc_url), a list of paths such as "
            f"['/api/docs'], or None; got {value!r}"
        )
    paths = list(value)
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or any(ch in path for ch in "?# "):
            raise ConfigurationError(f"docs_paths: {path!r} must be a path starting with '/' (no query)")
    return frozenset(paths)


def env_docs_paths(text: str) -> str | list[str]:
    """``HARDENKIT_HEADERS_DOCS_PATHS``: ``auto``, or a comma-separated list of paths (``none``: off)."""
    return "auto" if text.strip().lower() == "auto" else env_list(text)
