"""Kept for code written against the old docs: the context variable lives in :mod:`hardenkit.headers`."""

from __future__ import annotations

from ._core.context import REQUEST_ID, request_id

__all__ = ["REQUEST_ID", "request_id"]
