"""Role rules: which roles may call which method and path, matched on the routed path.

A rule is ``(pattern, roles)``. The pattern is ``"[METHOD[,METHOD...]] /path"``: no method means every
method, ``GET`` also covers ``HEAD``; in the path, ``{name}`` matches one segment and a trailing ``*``
matches the rest (``/admin/*`` matches ``/admin`` and everything below it). ``roles`` is one role, a
tuple of roles (any of them is enough), ``"*"`` (any valid key) or ``None`` (public: no key needed).
The first matching rule wins; a path matched by no rule needs a valid key, with any role, unless
``deny_unmatched=True`` asks to refuse it (403).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from .records import check_roles

__all__ = ["ANY_ROLE", "DENY", "PUBLIC", "RoleRule", "RoleRules", "compile_pattern"]

PUBLIC: tuple[str, ...] | None = None
ANY_ROLE: tuple[str, ...] = ()
#: Marker for "no rule matched and deny_unmatched is on".
DENY = ("\x00deny",)
_METHOD = re.compile(r"^(?:[A-Z]+|\*)$")
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}")


def compile_pattern(pattern: object, *, option: str) -> tuple[frozenset[str] | None, re.Pattern[str]]:
    """(methods or None for all, the path regex) of ``"[METHODS] /path"``."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigurationError(
            f"{option}: expected a pattern such as 'POST /captures' or '/admin/*', got {pattern!r}"
        )
    text = pattern.strip()
    methods: frozenset[str] | None = None
    if not text.startswith("/"):
        head, _, text = text.partition(" ")
        text = text.strip()
        names = {name.strip().upper() for name in head.split(",") if name.strip()}
        if not names or not all(_METHOD.match(name) for name in names) or not text.startswith("/"):
            raise ConfigurationError(
                f"{option}: {pattern!r} must be '[METHOD[,METHOD]] /path' (for example 'POST /captures')"
            )
        if "*" not in names:
            methods = frozenset(names | ({"HEAD"} if "GET" in names else set()))
    if "//" in text or any(ord(ch) < 0x21 for ch in text):
        raise ConfigurationError(f"{option}: path {text!r} must be a plain path like '/items/{{id}}'")
    tail = text.endswith("*")
    body = text[:-1] if tail else text
    pieces: list[str] = []
    last = 0
    for match in _PARAM.finditer(body):
        pieces.append(re.escape(body[last : match.start()]))
        pieces.append(r"(?:.+)" if match.group(0).endswith(":path}") else r"[^/]+")
        last = match.end()
    pieces.append(re.escape(body[last:]))
    regex = "".join(pieces)
    if tail:
        regex = regex.rstrip("/") + r"(?:/.*)?" if body.endswith("/") else regex + r".*"
    return methods, re.compile(regex)


@dataclass(frozen=True)
class RoleRule:
    pattern: str
    methods: frozenset[str] | None
    regex: re.Pattern[str]
    roles: tuple[str, ...] | None

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and self.regex.fullmatch(path) is not None


def _roles_of(value: object, *, option: str) -> tuple[str, ...] | None:
    if value is None:
        return PUBLIC
    if value == "*":
        return ANY_ROLE
    if isinstance(value, str):
        return check_roles(value, option=option)
    if isinstance(value, (set, frozenset)) and value:
        return check_roles(sorted(value), option=option)
    if isinstance(value, (list, tuple)) and value:
        return check_roles(value, option=option)
    raise ConfigurationError(
        f"{option}: expected a role, a tuple of roles, '*' or None (public), got {value!r}"
    )


class RoleRules:
    """The compiled rules and public paths of one middleware."""

    def __init__(
        self,
        rules: Sequence[tuple[str, object]] | Mapping[str, object] | None,
        *,
        public_paths: Iterable[str] = (),
        deny_unmatched: bool = False,
    ) -> None:
        items = list(rules.items()) if isinstance(rules, Mapping) else list(rules or ())
        compiled: list[RoleRule] = []
        for index, public in enumerate(public_paths):
            methods, regex = compile_pattern(public, option=f"public_paths[{index}]")
            compiled.append(RoleRule(str(public), methods, regex, PUBLIC))
        for index, pair in enumerate(items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ConfigurationError(
                    f"rules[{index}]: expected a (pattern, roles) pair such as ('POST /captures', 'operator'), got {pair!r}"
                )
            pattern, roles = pair
            methods, regex = compile_pattern(pattern, option=f"rules[{index}]")
            compiled.append(
                RoleRule(str(pattern), methods, regex, _roles_of(roles, option=f"rules[{index}]"))
            )
        self.rules = tuple(compiled)
        self.deny_unmatched = bool(deny_unmatched)

    def required(self, method: str, path: str) -> tuple[str, ...] | None:
        """None (public), () (any valid key), the roles (any of), or :data:`DENY`."""
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.roles
        return DENY if self.deny_unmatched else ANY_ROLE
