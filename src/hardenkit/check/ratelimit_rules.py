"""Rate-limit headers, parsed and cross-checked.

Both forms in use: the IETF draft's ``RateLimit-Policy: "default";q=100;w=60`` and
``RateLimit: "default";r=99;t=30`` (structured-field lists; the earlier draft's
``RateLimit: limit=100, remaining=99, reset=30`` dictionary too), and the
de-facto ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` integers. Written here
because no library in the dependency set parses structured fields, and the
subset these headers use is small: items with integer or string parameters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Observation

__all__ = ["parse_items", "ratelimit_violations"]

_KEY = r"[a-z*][a-z0-9_\-.*]*"
_ITEM = re.compile(
    rf'\s*(?:"((?:[^"\\]|\\.)*)"|({_KEY}))((?:\s*;\s*{_KEY}(?:=(?:-?\d+|"(?:[^"\\]|\\.)*"|{_KEY}))?)*)\s*$',
    re.I,
)
_PARAM = re.compile(rf'\s*;\s*({_KEY})(?:=(-?\d+|"(?:[^"\\]|\\.)*"|{_KEY}))?', re.I)


def _split(value: str) -> list[str]:
    """Top-level comma-separated members (commas inside quotes kept)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_items(value: str) -> list[tuple[str, dict[str, str]]] | None:
    """A structured-field list of items with parameters, or None when it does not parse."""
    items: list[tuple[str, dict[str, str]]] = []
    for member in _split(value):
        match = _ITEM.match(member)
        if match is None:
            return None
        name = match.group(1) if match.group(1) is not None else match.group(2)
        params = {key.lower(): val or "" for key, val in _PARAM.findall(match.group(3))}
        items.append((name, params))
    return items


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if re.fullmatch(r"\d+", text) else None


def _ietf(obs: Observation, problems: list[str]) -> tuple[dict[str, int], list[int]]:
    """Quotas by policy name, and every remaining value, from the IETF headers."""
    quotas: dict[str, int] = {}
    remaining: list[int] = []
    policy = obs.header("ratelimit-policy")
    if policy is not None:
        items = parse_items(policy)
        if items is None:
            problems.append(f"RateLimit-Policy {policy!r} is not a structured-field list")
        else:
            for name, params in items:
                quota, window = _int(params.get("q")), params.get("w")
                if quota is None:
                    problems.append(f"RateLimit-Policy item {name!r} has no integer q (quota)")
                else:
                    quotas[name] = quota
                if window is not None and not (_int(window) or 0) > 0:
                    problems.append(f"RateLimit-Policy item {name!r}: w={window} is not a positive integer")
    limit = obs.header("ratelimit")
    if limit is None:
        return quotas, remaining
    if re.search(r"\blimit\s*=", limit, re.I):  # the earlier draft's dictionary form
        fields = dict(
            (key.strip().lower(), val.strip()) for key, _, val in (p.partition("=") for p in limit.split(","))
        )
        values = {key: _int(fields.get(key)) for key in ("limit", "remaining", "reset")}
        if None in values.values():
            problems.append(f"RateLimit {limit!r}: limit, remaining and reset must be integers")
        elif (values["remaining"] or 0) > (values["limit"] or 0):
            problems.append(f"RateLimit {limit!r}: remaining exceeds the limit")
        else:
            remaining.append(values["remaining"] or 0)
        return quotas, remaining
    items = parse_items(limit)
    if items is None:
        problems.append(f"RateLimit {limit!r} is not a structured-field list")
        return quotas, remaining
    for name, params in items:
        left, reset = _int(params.get("r")), _int(params.get("t"))
        if left is None or ("t" in params and reset is None):
            problems.append(f"RateLimit item {name!r}: r (and t) must be non-negative integers")
            continue
        remaining.append(left)
        if name in quotas and left > quotas[name]:
            problems.append(f"RateLimit item {name!r}: r={left} exceeds the policy's q={quotas[name]}")
        elif policy is not None and quotas and name not in quotas:
            problems.append(f"RateLimit item {name!r} has no RateLimit-Policy item of that name")
    return quotas, remaining


def ratelimit_violations(obs: Observation) -> list[str] | None:
    """What is wrong with a response's rate-limit headers; None when it has none."""
    names = {name for name, _ in obs.headers}
    if not names & {
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    }:
        return None
    problems: list[str] = []
    quotas, remaining = _ietf(obs, problems)
    x_names = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
    if names & set(x_names):
        raw = {name: obs.header(name) for name in x_names}
        # Some services append the window ("100, 100;w=60"): the first number is the limit.
        limit = (
            _int((raw["x-ratelimit-limit"] or "").split(",")[0].split(";")[0])
            if raw["x-ratelimit-limit"]
            else None
        )
        left = _int(raw["x-ratelimit-remaining"])
        if raw["x-ratelimit-limit"] is None or raw["x-ratelimit-remaining"] is None:
            problems.append("X-RateLimit-Limit and X-RateLimit-Remaining must come together")
        elif limit is None or left is None:
            problems.append(
                f"X-RateLimit-Limit {raw['x-ratelimit-limit']!r} / -Remaining {raw['x-ratelimit-remaining']!r} "
                "must be non-negative integers"
            )
        elif left > limit:
            problems.append(f"X-RateLimit-Remaining {left} exceeds X-RateLimit-Limit {limit}")
        else:
            if quotas and limit not in quotas.values():
                problems.append(
                    f"X-RateLimit-Limit {limit} matches no RateLimit-Policy quota {sorted(quotas.values())}"
                )
            if remaining and left not in remaining:
                problems.append(
                    f"X-RateLimit-Remaining {left} matches no RateLimit remaining value {remaining}"
                )
        if raw["x-ratelimit-reset"] is not None and _int(raw["x-ratelimit-reset"]) is None:
            problems.append(f"X-RateLimit-Reset {raw['x-ratelimit-reset']!r} is not a non-negative integer")
    return problems
