"""API keys and roles: :class:`APIKeyMiddleware`, hashed key stores, rotation, role checks.

Modules: ``keyformat`` (the ``hkey_`` format and its checksum), ``records`` (records, principal,
keyed hashing), ``stores`` (file, env, memory) and ``redis_store`` (Redis), ``manage`` (create,
rotate, revoke, verify), ``rules`` (role rules), ``attempts`` (failed-attempt limiting),
``context`` (principal(), require_roles(), the rate limiter's key), ``middleware``, ``admin`` (the
mountable admin app) and ``matrix`` (the permission matrix), ``openapi`` (the scheme in FastAPI's OpenAPI). May import the shared core, the errors
and :mod:`hardenkit.lock`; starlette at request time; redis.asyncio when a Redis store is used.
"""

from __future__ import annotations

from .admin import admin_app
from .context import AuthError, RoleRequirement, cost_by_role, key_by_principal, principal, require_roles
from .keyformat import KEY_PATTERN, KEY_PREFIX, checksum, generate_key, parse_key
from .manage import KeyManager, authenticate
from .matrix import MatrixRow, permission_matrix, render_markdown
from .middleware import APIKeyMiddleware
from .openapi import document_security
from .records import KeyHasher, KeyRecord, Principal
from .redis_store import RedisKeyStore
from .stores import EnvKeyStore, FileKeyStore, KeyStore, MemoryKeyStore, open_store

__all__ = [
    "KEY_PATTERN",
    "KEY_PREFIX",
    "APIKeyMiddleware",
    "AuthError",
    "EnvKeyStore",
    "FileKeyStore",
    "KeyHasher",
    "KeyManager",
    "KeyRecord",
    "KeyStore",
    "MatrixRow",
    "MemoryKeyStore",
    "Principal",
    "RedisKeyStore",
    "RoleRequirement",
    "admin_app",
    "authenticate",
    "checksum",
    "cost_by_role",
    "document_security",
    "generate_key",
    "key_by_principal",
    "open_store",
    "parse_key",
    "permission_matrix",
    "principal",
    "render_markdown",
    "require_roles",
]
