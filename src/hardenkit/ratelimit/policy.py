"""Policies and rules: limit strings parsed by ``limits``, path patterns, the breach record.

Imports ``limits`` (and starlette's path compiler) lazily, when options are parsed.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .engine import Decision, Window
from .keys import parse_ip, safe_key

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

#: The largest limit a window may have (the Redis scripts count in 40-bit fields).
MAX_AMOUNT = 2**39 - 1

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
        if item.amount > MAX_AMOUNT:
            raise ConfigurationError(
                f"{option}: {item} is more than the storages can count ({MAX_AMOUNT} per window); "
                "write a smaller limit, or None for no limit"
            )
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
        if "GET" in methods:
            # Starlette (like HTTP itself) serves HEAD with the GET endpoint: a GET rule
            # that did not cover HEAD could be walked around.
            methods |= {"HEAD"}
    exact, regex = _path_matcher(path, option=f"{option} {text!r}")
    return methods, exact, regex


def parse_overrides(
    overrides: Mapping[str, LimitSpec | Mapping[str, LimitSpec | None] | None] | None,
    policies: Mapping[str, _Policy],
) -> dict[str, dict[str, _Policy | None]]:
    """``overrides`` as {stored client key: {policy name or "*": policy or None (exempt)}}."""
    parsed: dict[str, dict[str, _Policy | None]] = {}
    if overrides is None:
        return parsed
    if not isinstance(overrides, Mapping):
        raise ConfigurationError(
            "overrides: expected a mapping of client key to limit, e.g. {'partner-key': '1000/minute'}"
        )
    for client, spec in overrides.items():
        if not isinstance(client, str) or not client:
            raise ConfigurationError(f"overrides: keys must be non-empty strings, got {client!r}")
        per_policy: dict[str, _Policy | None] = {}
        if spec is None:
            per_policy = {"*": None}  # exempt from every policy, rules' own limits included
        elif isinstance(spec, Mapping):
            for name, limit in spec.items():
                if name != "default" and name not in policies:
                    raise ConfigurationError(
                        f"overrides[{client!r}]: no policy named {name!r}; known: default, "
                        f"{', '.join(sorted(policies))}"
                    )
                per_policy[name] = (
                    None
                    if limit is None
                    else _make_policy(
                        name, name, _parse_limits(limit, option=f"overrides[{client!r}][{name!r}]")
                    )
                )
        else:
            per_policy["default"] = _make_policy(
                "default", "default", _parse_limits(spec, option=f"overrides[{client!r}]")
            )
        parsed[safe_key(client)] = per_policy
    return parsed


def _is_response(value: object) -> bool:
    from starlette.responses import Response

    return isinstance(value, Response)


def _takes_one_argument(func: Callable[..., Any]) -> bool:
    """True if ``func`` can only be called with one positional argument."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    return len(positional) == 1


def _install_hint(scheme: str) -> str:
    """What to install for a storage scheme's client library (limits' async storages)."""
    if scheme.startswith("valkey"):
        return "pip install valkey"
    if scheme.startswith("memcached"):
        return "pip install memcachio"
    if scheme.startswith("mongodb"):
        return "pip install motor"
    return "pip install 'hardenkit[redis]'"


def _looks_like_network(text: str) -> bool:
    text = text.strip()
    if "/" in text:
        return True
    return parse_ip(text) is not None and text.count(":") != 1
