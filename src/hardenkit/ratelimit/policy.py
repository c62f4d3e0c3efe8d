"""Policies and rules: limit strings parsed by ``limits``, path patterns, the breach record.

Imports ``limits`` (and starlette's path compiler) lazily, when options are parsed.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .engine import (
    Decision,
    Window,
)

if TYPE_CHECKING:
    from limits import RateLimitItem
    from starlette.responses import Response
    from starlette.types import Scope

    LimitSpec = str | RateLimitItem | Sequence[str | RateLimitItem]

    KeyFunc = Callable[[Scope], str | None | Awaitable[str | None]]
    CostFunc = Callable[[Scope], int | Awaitable[int]]
    BreachResult = Response | None | Awaitable[Response | None]
    BreachHook = (
        Callable[[Scope, "RateLimitBreach"], BreachResult] | Callable[["RateLimitBreach"], BreachResult]
    )

logger = logging.getLogger("hardenkit.ratelimit")

#: The problem type of draft-ietf-httpapi-ratelimit-headers for a refused request.
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
QUOTA_EXCEEDED_TITLE = "Request cannot be satisfied as assigned quota has been exceeded"

_POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_HEADER_MODES = ("both", "ietf", "x-ratelimit")
_ERROR_MODES = ("allow", "deny", "memory")
_METHOD = re.compile(r"^[A-Z]+(?:,[A-Z]+)*$")
_PROXY_HEADERS = ("auto", "x-forwarded-for", "forwarded")
_WEBSOCKET_METHODS = frozenset({"WEBSOCKET", "WS"})

# Header names this component writes, for CORS exposure and de-duplication.
_IETF_HEADERS = ("RateLimit", "RateLimit-Policy")
_X_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass(frozen=True)
class RateLimitBreach:
    """What ``on_breach`` receives about a refused request."""

    key: str
    policy: str
    violated: tuple[str, ...]
    retry_after: int
    method: str
    path: str


class RateLimitExceeded(Exception):
    """Raised by :func:`rate_limit` checks; RateLimitMiddleware turns it into a 429."""

    def __init__(self, breach: RateLimitBreach, decision: Decision | None, policy: _Policy) -> None:
        super().__init__(f"rate limit {breach.policy!r} exceeded; retry in {breach.retry_after}s")
        self.breach = breach
        self.decision = decision
        self.policy = policy


@dataclass(frozen=True)
class _Policy:
    name: str
    namespace: str
    windows: tuple[Window, ...]
    policy_header: str  # the RateLimit-Policy items, precomputed
    policy_header_bytes: bytes


def _parse_limits(value: object, *, option: str) -> tuple[Any, ...]:
    from limits import RateLimitItem, parse_many

    items: list[RateLimitItem] = []
    values: Iterable[object]
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, RateLimitItem):
        values = [value]
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        raise ConfigurationError(
            f"{option}: expected a limit string like '100/minute' (or '10/second;100/minute'), got {value!r}"
        )
    for part in values:
        if isinstance(part, RateLimitItem):
            items.append(part)
            continue
        if not isinstance(part, str):
            raise ConfigurationError(f"{option}: expected a limit string like '100/minute', got {part!r}")
        try:
            items.extend(parse_many(part))
        except ValueError:
            raise ConfigurationError(
                f"{option}: {part!r} is not a rate limit; write '<count>/<period>' such as "
                "'100/minute', '10/second;1000/hour' or '5 per 10 seconds'"
            ) from None
    if not items:
        raise ConfigurationError(f"{option}: no limit given; write a limit such as '100/minute' or None")
    for item in items:
        if item.amount <= 0:
            raise ConfigurationError(f"{option}: {item} allows nothing; use a rule with None to block-list")
    return tuple(items)


def _make_policy(name: str, namespace: str, items: Sequence[Any]) -> _Policy:
    windows: list[Window] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        label = name if len(items) == 1 else f"{name}-{int(item.get_expiry())}s"
        if label in seen:
            label = f"{label}-{index + 1}"
        seen.add(label)
        windows.append(Window(item, label))
    header = ", ".join(f'"{w.name}";q={w.item.amount};w={w.seconds}' for w in windows)
    return _Policy(name, namespace, tuple(windows), header, header.encode("latin-1"))


@dataclass(frozen=True)
class _Rule:
    text: str
    methods: frozenset[str] | None
    exact: str | None
    regex: re.Pattern[str] | None
    policy: _Policy | None  # None: exempt

    def matches(self, kind: str, method: str, path: str) -> bool:
        if self.methods is not None:
            wanted = "WEBSOCKET" if kind == "websocket" else method
            if wanted not in self.methods:
                return False
        if self.exact is not None:
            return path == self.exact
        assert self.regex is not None  # one of exact/regex is always set
        return self.regex.fullmatch(path) is not None


def _path_matcher(path: str, *, option: str) -> tuple[str | None, re.Pattern[str] | None]:
    if not path.startswith("/"):
        raise ConfigurationError(
            f"{option}: path {path!r} must start with '/', e.g. '/webhooks/*' or 'POST /ai/{{name}}'"
        )
    if "{" in path:
        from starlette.routing import compile_path

        try:
            regex, _, _ = compile_path(path)
        except (ValueError, AssertionError, KeyError) as exc:
            raise ConfigurationError(f"{option}: bad path pattern {path!r}: {exc}") from None
        return None, re.compile(regex.pattern.rstrip("$"))
    if any(char in path for char in "*?["):
        return None, re.compile(fnmatch.translate(path))
    return path, None


def _compile_rule(
    text: object, *, option: str
) -> tuple[frozenset[str] | None, str | None, re.Pattern[str] | None]:
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{option}: a rule pattern must be a string like 'POST /ai/*', got {text!r}")
    method_part, _, path = text.strip().rpartition(" ")
    methods: frozenset[str] | None = None
    if method_part:
        method_part = method_part.strip().upper().replace(" ", "")
        if not _METHOD.match(method_part):
            raise ConfigurationError(
                f"{option}: {text!r}: write an optional method list then a path, e.g. 'POST /ai/*', "
                "'GET,HEAD /export/{name}' or 'WEBSOCKET /ws'"
            )
        methods = frozenset("WEBSOCKET" if m in _WEBSOCKET_METHODS else m for m in method_part.split(","))
    exact, regex = _path_matcher(path, option=f"{option} {text!r}")
    return methods, exact, regex
