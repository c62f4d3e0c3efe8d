"""Rate limiting: :class:`RateLimitMiddleware` and the per-endpoint check :func:`rate_limit`.

A request goes through, in order: exempt paths (and paths an outer component
answers, such as health probes), the rules (first match wins, else the default
policy), the client key (``None`` exempts), the ``allow`` list, per-key
overrides, then one check-and-count in the storage. A refused request gets a 429
``application/problem+json`` answer; an admitted one gets the rate-limit headers.

Modules: ``middleware`` (the ASGI middleware), ``policy`` (limit strings, rules,
overrides, the breach record), ``dependency`` (:func:`rate_limit`), ``routes`` (route
buckets, ``key=``/tiers of a check), ``decorator`` (:func:`limited`), ``schema`` (the
429 in FastAPI's OpenAPI: :func:`document_rate_limits`), ``keys``
(client addresses, trusted proxies), ``engine`` (the engine types, limits'
strategies), ``memory`` (the bounded in-process store), ``scripts`` and
``moving`` (the Redis/Valkey Lua scripts), ``clients`` (URIs, bounded pools),
``storage`` (engines per event loop, the outage guard), ``fallback`` (retries,
outages and the fallback budget). May import the shared core and ``limits``
(lazily); no other component.
"""

from __future__ import annotations

from .decorator import limited
from .dependency import rate_limit
from .middleware import RateLimitMiddleware
from .policy import QUOTA_EXCEEDED, RateLimitBreach, RateLimitExceeded
from .schema import document_rate_limits

__all__ = [
    "QUOTA_EXCEEDED",
    "RateLimitBreach",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "document_rate_limits",
    "limited",
    "rate_limit",
]
