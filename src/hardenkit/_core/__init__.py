"""The shared core: :class:`Kit`, :class:`Wiring`, :func:`harden`, and what every component uses.

Modules: ``kit`` (registration, canonical order, the kit root, harden()),
``config`` (option and environment-variable parsing), ``context`` (the request-id
context variable), ``problem`` (RFC 9457 problem+json answers), ``paths`` (the
path a request is routed on), ``lifespan`` (the lifespan protocol, answered for
apps that do not support it), ``events`` (the channel through which
components report to metrics). The core imports
the standard library, starlette's responses and :mod:`hardenkit.errors`; it never
imports a component (harden() names them as "module:Class" strings, loaded on use).
"""

from __future__ import annotations

from .context import REQUEST_ID, request_id
from .kit import SLOTS, Kit, Wiring, harden

__all__ = ["REQUEST_ID", "SLOTS", "Kit", "Wiring", "harden", "request_id"]
