"""The redaction engine behind :class:`hardenkit.logs.Redactor` (standard library only).

Log content is attacker-controlled, so the engine is built to stay linear:

* every pattern is written in the common subset of Python's ``re`` and RE2
  (no look-around, no back-references, bounded repetition only), so the same
  rule table runs on both engines and gives the same answers;
* a cheap prefilter decides which rules can match a line at all: with
  google-re2 installed one ``RE2::Set`` pass over the text; without it, literal
  substring checks (C speed) before a rule's regex is run;
* boundary checks, checksums (Luhn, mod-97) and key-name checks run in Python on
  the few candidates, never as regex look-arounds that would backtrack;
* the tail of a long token is swallowed by an anchored, deterministic
  ``re.match`` instead of an unbounded repetition inside the pattern.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from ..errors import ConfigurationError
from .catalog import CATEGORIES, DEFAULT_CATEGORIES, OPT_IN_CATEGORIES, RULES
from .context import KeyKind, _normalise_key, is_secret_key, key_kind
from .rules import _DIGITS, _MARK, Rule, _bounded, _check_group1, _plain, re2_available

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "OPT_IN_CATEGORIES",
    "RULES",
    "Engine",
    "Mode",
    "RedactionEngine",
    "is_secret_key",
    "re2_available",
]

Mode = Literal["mask", "hash", "partial"]
Engine = Literal["auto", "re2", "re"]


class _Match(Protocol):
    def span(self, group: int = 0) -> tuple[int, int]: ...
    def group(self, group: int = 0) -> str | None: ...


class _Pattern(Protocol):
    def search(self, text: str, pos: int = ...) -> Any: ...


class _Spans:
    """A match found by RE2 on ASCII bytes (offsets are the text's): what checks read of a match."""

    __slots__ = ("_spans", "_text")

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self._text = text
        self._spans = spans

    def span(self, group: int = 0) -> tuple[int, int]:
        return self._spans[group]

    def start(self, group: int = 0) -> int:
        return self._spans[group][0]

    def end(self, group: int = 0) -> int:
        return self._spans[group][1]

    def group(self, group: int = 0) -> str | None:
        start, end = self._spans[group]
        return None if start < 0 else self._text[start:end]


_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    regex: _Pattern
    extend: re.Pattern[str] | None
    literals: tuple[str, ...]
    #: RE2's own matcher, called on ASCII bytes without the wrapper's per-call re-encoding.
    raw: Any = None
    #: The Python-re twin (None for a user's rule only RE2 compiles).
    pure: re.Pattern[str] | None = None


class RedactionEngine:
    """Compiled rules for one configuration; ``redact`` is safe to call from many threads."""

    def __init__(
        self,
        *,
        mode: Mode = "mask",
        categories: Iterable[str] | None = None,
        enable: Iterable[str] = (),
        disable: Iterable[str] = (),
        patterns: Mapping[str, str] | None = None,
        keys: Iterable[str] = (),
        key: str | bytes | None = None,
        engine: Engine = "auto",
        rules: Iterable[Rule] = (),
    ) -> None:
        extra_rules = list(rules)
        if mode not in ("mask", "hash", "partial"):
            raise ConfigurationError(
                f"Redactor: mode={mode!r} is not known; write 'mask', 'hash' or 'partial'"
            )
        self.mode: Mode = mode
        known = set(CATEGORIES)
        chosen = set(DEFAULT_CATEGORIES if categories is None else _strings(categories, "categories"))
        for option, names in (("categories", chosen), ("enable", set(_strings(enable, "enable")))):
            unknown = sorted(names - known)
            if unknown:
                raise ConfigurationError(
                    f"Redactor: {option} has unknown categories {unknown}; known: {', '.join(CATEGORIES)}"
                )
        chosen |= set(enable)
        off = set(_strings(disable, "disable"))
        own = {category for rule in extra_rules if isinstance(rule, Rule) for category in rule.categories}
        unknown_off = sorted(off - known - set(patterns or {}) - own)
        if unknown_off:
            raise ConfigurationError(
                f"Redactor: disable has unknown categories {unknown_off}; known: {', '.join(CATEGORIES)}"
            )
        chosen -= off
        self.categories: frozenset[str] = frozenset(chosen)
        keys = _strings(keys, "keys")
        self.extra_keys: frozenset[str] = frozenset(_normalise_key(name) for name in keys)
        if any(not name for name in self.extra_keys):
            raise ConfigurationError("Redactor: keys must be non-empty names such as 'pin' or 'otp'")

        if key is None:
            env_key = os.environ.get("HARDENKIT_REDACT_KEY")
            key = env_key if env_key else None
        if isinstance(key, str):
            key = key.encode("utf-8")
        if key is not None and not isinstance(key, bytes):
            raise ConfigurationError("Redactor: key must be str or bytes (or set HARDENKIT_REDACT_KEY)")
        # Without a configured key the tokens still correlate inside this process.
        self._hmac_key: bytes = key if key else _process_key()

        if engine not in ("auto", "re2", "re"):
            raise ConfigurationError(f"Redactor: engine={engine!r} is not known; write 'auto', 're2' or 're'")
        re2_module: Any = None
        if engine in ("auto", "re2"):
            try:
                re2_module = importlib.import_module("re2")
            except ImportError:
                if engine == "re2":
                    raise ConfigurationError(
                        "Redactor: engine='re2' needs google-re2; pip install 'hardenkit[re2]' "
                        "or write engine='auto'"
                    ) from None
                re2_module = None
        self.engine_name: str = "re2" if re2_module is not None else "re"

        self.custom_patterns: dict[str, str] = {}
        table = [rule for rule in RULES if self.categories.intersection(rule.categories)]
        if self.extra_keys:
            table = [_with_extra_keys(rule, keys) if rule.name == "key_value" else rule for rule in table]
        for name, pattern in (patterns or {}).items():
            if not isinstance(name, str) or not _CUSTOM_NAME.match(name):
                raise ConfigurationError(
                    f"Redactor: custom pattern name {name!r} must be a short lower-case word such as 'employee_id'"
                )
            if name in known:
                raise ConfigurationError(
                    f"Redactor: custom pattern {name!r} has the name of a built-in category; choose another name"
                )
            if name in off:
                continue
            try:
                groups = re.compile(pattern).groups
            except (re.error, TypeError) as exc:
                raise ConfigurationError(f"Redactor: pattern {name!r} does not compile: {exc}") from None
            table.append(
                Rule(
                    f"custom:{name}", (name,), pattern, check=_check_group1(name) if groups else _plain(name)
                )
            )
            self.categories |= {name}
            self.custom_patterns[name] = pattern

        # Users' own rules run first: they name what they find before a built-in rule does.
        ordered: list[Rule] = []
        for rule in extra_rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError(
                    f"Redactor: rules takes Rule objects (e.g. from load_gitleaks()), got {rule!r}"
                )
            if not off.intersection(rule.categories):
                ordered.append(rule)
                self.categories |= set(rule.categories)
        ordered.extend(table)
        self.extra_rules: tuple[Rule, ...] = tuple(extra_rules)

        self._pem = "private_key" in self.categories
        self._compiled: list[_Compiled] = []
        self._key_cache: dict[str, bool] = {}
        self._kind_cache: dict[str, KeyKind] = {}
        self._set: Any = None
        self._raw_set: Any = None
        self._solo_set: Any = None  # a second, small RE2::Set for the rules marked solo
        self._raw_solo: Any = None
        self._solo_index: list[int] = []
        self._set_index: list[int] = []  # set id -> index in _compiled
        self._always: list[int] = []  # rules the prefilter cannot vouch for
        self._anchor: Any = None
        for rule in ordered:
            regex: _Pattern
            try:
                pure: re.Pattern[str] | None = re.compile(_sre_pattern(rule))
            except re.error:
                pure = None
            raw: Any = None
            if re2_module is not None:
                try:
                    regex = re2_module.compile(rule.pattern)
                    raw = getattr(regex, "_regexp", None)
                except re2_module.error:
                    if pure is None:
                        raise ConfigurationError(
                            f"Redactor: rule {rule.name!r} compiles neither in RE2 nor in Python's re"
                        ) from None
                    # A custom pattern outside RE2's syntax (look-around...): Python's re.
                    regex = re.compile(rule.pattern)
            elif pure is None:
                raise ConfigurationError(
                    f"Redactor: rule {rule.name!r} needs RE2 syntax; pip install 'hardenkit[re2]'"
                )
            else:
                regex = pure
            literals = tuple(lit.lower() for lit in rule.literals) if rule.icase else rule.literals
            extend = re.compile(rule.extend) if rule.extend else None
            self._compiled.append(_Compiled(rule, regex, extend, literals, raw, pure))
        if re2_module is not None:
            self._anchor = getattr(getattr(re2_module, "_Anchor", None), "UNANCHORED", None)
            options = re2_module.Options()
            options.max_mem = 64 << 20  # a Set of ~200 prefilters must not run out of DFA memory
            rset = re2_module.Set.SearchSet(options)
            solo_set = re2_module.Set.SearchSet(options)
            for index, compiled in enumerate(self._compiled):
                pre = _prefilter_regex(compiled.rule)
                if compiled.rule.solo:
                    solo_set.Add(pre)
                    self._solo_index.append(index)
                    continue
                try:
                    rset.Add(pre)
                except re2_module.error:
                    self._always.append(index)
                    continue
                self._set_index.append(index)
            rset.Compile()
            self._set = rset
            if self._solo_index:
                solo_set.Compile()
                self._solo_set = solo_set
                self._raw_solo = getattr(solo_set, "_set", None)
            # The wrapper re-encodes str on every call; ASCII bytes go to RE2 directly.
            self._raw_set = getattr(rset, "_set", None)
        # Python-re prefilters (rules without literal triggers), for might_contain.
        self._pre: dict[str, re.Pattern[str]] = {
            compiled.rule.name: _python_prefilter(compiled.rule) for compiled in self._compiled
        }
        self._needs_lower = any(c.rule.icase and c.literals for c in self._compiled)
        # Each distinct literal once, with the rules it triggers (the pure-Python prefilter).
        case: dict[str, list[int]] = {}
        icase: dict[str, list[int]] = {}
        for index, compiled in enumerate(self._compiled):
            for literal in compiled.literals:
                (icase if compiled.rule.icase else case).setdefault(literal, []).append(index)
        self._case_literals = [(literal, tuple(indices)) for literal, indices in case.items()]
        self._icase_literals = [(literal, tuple(indices)) for literal, indices in icase.items()]

    # -- the public operations -------------------------------------------------------
    def covers(self, other: RedactionEngine) -> bool:
        """True when this engine finds everything ``other`` finds (same or more rules)."""
        return (
            self.categories >= other.categories
            and self.extra_keys >= other.extra_keys
            and self.custom_patterns.items() >= other.custom_patterns.items()
            and set(self.extra_rules) >= set(other.extra_rules)
        )

    def secret_key(self, name: str) -> bool:
        # _key_cache (name -> bool) is read directly by the log filter's fast path.
        cache = self._key_cache
        known = cache.get(name)
        if known is None:
            known = self.key_kind(name) in ("secret", "auth")
            if len(cache) >= 4096:  # key names are few; bound the cache anyway
                cache.clear()
            cache[name] = known
        return known

    def key_kind(self, name: str) -> KeyKind:
        """How ``name`` makes its value secret (see :func:`.context.key_kind`), cached."""
        cache = self._kind_cache
        if name in cache:
            return cache[name]
        known = key_kind(name, self.extra_keys)
        if len(cache) >= 4096:
            cache.clear()
        cache[name] = known
        return known

    def candidates(self, text: str, data: bytes | None = None) -> list[_Compiled]:
        """The rules that may match ``text`` (the prefilter); ``data``: its ASCII bytes."""
        if self._set is not None and (data is not None or _utf8_ok(text)):
            if data is None and text.isascii():
                data = text.encode("ascii")
            raw_set = self._raw_set
            if data is not None and raw_set is not None:
                hits = raw_set.Match(data)
            else:
                hits = self._set.Match(data if data is not None else text)
            index = self._set_index
            extra = self._always
            solo_set = self._solo_set
            if solo_set is not None:
                raw_solo = self._raw_solo
                solo_hits = (
                    raw_solo.Match(data)
                    if data is not None and raw_solo is not None
                    else solo_set.Match(data if data is not None else text)
                )
                if solo_hits:
                    extra = [*extra, *(self._solo_index[i] for i in solo_hits)]
            if not extra:
                if not hits:
                    return []
                if len(hits) == 1:
                    return [self._compiled[index[hits[0]]]]
                return [self._compiled[i] for i in sorted(index[i] for i in hits)]
            chosen = sorted({index[i] for i in hits or ()}.union(extra))
            return [self._compiled[i] for i in chosen]
        lowered = text.lower() if self._needs_lower else text
        hit: set[int] = set()
        for literal, indices in self._case_literals:
            if literal in text:
                hit.update(indices)
        for literal, indices in self._icase_literals:
            if literal in lowered:
                hit.update(indices)
        pre = self._pre
        return [
            compiled
            for index, compiled in enumerate(self._compiled)
            if index in hit or (not compiled.literals and pre[compiled.rule.name].search(text) is not None)
        ]

    def might_contain(self, text: str) -> bool:
        """Cheap check: False means :meth:`redact` would return ``text`` unchanged."""
        if self._pem and "-----BEGIN" in text:
            return True
        if self._set is not None and _utf8_ok(text):
            return bool(self._always) or bool(self.candidates(text))
        for compiled in self.candidates(text):
            # Literal triggers already matched; a rule without them must show its prefix.
            if (compiled.literals and compiled.rule.pre is None) or self._pre[compiled.rule.name].search(
                text
            ):
                return True
        return False

    def redact(self, text: str) -> str:
        if self._pem and "-----BEGIN" in text:
            text = self._redact_pem(text)
        return self._run(text, None)

    def findings(self, text: str) -> list[tuple[str, str, str]]:
        """``(rule id, category, value)`` for each value :meth:`redact` would replace, rule by rule."""
        found: list[tuple[str, str, str]] = []
        if self._pem and "-----BEGIN" in text:
            text = self._redact_pem(text)
        self._run(text, found)
        return found

    # -- internals -------------------------------------------------------------------
    def _run(self, text: str, found: list[tuple[str, str, str]] | None) -> str:
        # ASCII text goes to RE2 as bytes, encoded once per change rather than once per call.
        data = text.encode("ascii") if self._anchor is not None and text.isascii() else None
        for compiled in self.candidates(text, data):
            changed = self._apply(compiled, text, found, data)
            if changed is not text:
                text = changed
                data = text.encode("ascii") if data is not None and text.isascii() else None
        return text

    def _searcher(self, compiled: _Compiled, text: str, data: bytes | None = None) -> Callable[[int], Any]:
        """``search(pos)`` for one rule on one text: RE2 on ASCII bytes, else Python's re twin."""
        raw = compiled.raw
        if raw is not None and self._anchor is not None and (data is not None or text.isascii()):
            if data is None:
                data = text.encode("ascii")
            size = len(data)
            anchor = self._anchor
            match = raw.Match

            def search_raw(pos: int) -> Any:
                spans = match(anchor, data, pos, size)
                return None if spans[0][0] < 0 else _Spans(text, spans)

            return search_raw
        regex: Any = compiled.pure if compiled.pure is not None else compiled.regex
        return lambda pos: regex.search(text, pos)

    def _apply(
        self,
        compiled: _Compiled,
        text: str,
        found: list[tuple[str, str, str]] | None = None,
        data: bytes | None = None,
    ) -> str:
        rule = compiled.rule
        check = rule.check or _plain(rule.categories[0])
        raw = compiled.raw if data is not None and self._anchor is not None else None
        search = self._searcher(compiled, text, data) if raw is None else None
        raw_match = raw.Match if raw is not None else None
        anchor = self._anchor
        pieces: list[str] = []
        cursor = 0
        pos = 0
        size = len(text)
        before = rule.before
        while pos <= size:
            if raw_match is not None:
                spans = raw_match(anchor, data, pos, size)
                if spans[0][0] < 0:
                    break
                m: Any = _Spans(text, spans)
                start, end = spans[0]
            else:
                assert search is not None
                m = search(pos)
                if m is None:
                    break
                start, end = m.span()
            pos = end if end > start else start + 1
            if start < cursor:
                continue
            if before and start > 0 and text[start - 1] in before and rule.group == 0 and not rule.inside:
                if rule.guard:
                    pos = _next_start(text, start, before)
                continue
            verdict = check(text, m, self)
            if verdict is None:
                continue
            category, value_start, value_end = verdict
            if category not in self.categories or value_start < cursor:
                continue
            if compiled.extend is not None and value_end == end:
                grown = compiled.extend.match(text, value_end)
                if grown is not None:
                    value_end = grown.end()
            if not _bounded(text, value_start, value_end, rule):
                if rule.guard:
                    # Python's re (with the guard's look-behind) goes on with the next start
                    # the guard allows, even inside this match; RE2 must look there too, or the
                    # engines disagree and a second pass finds what the first skipped.
                    pos = _next_start(text, start, before)
                continue
            value = text[value_start:value_end]
            if value.startswith(_MARK):
                continue
            pieces.append(text[cursor:value_start])
            pieces.append(self.token(category, value))
            if found is not None:
                found.append((rule.name, category, value))
            cursor = value_end
            if pos < cursor:  # matches starting inside the replaced value would be skipped anyway
                pos = cursor
        if not pieces:
            return text
        pieces.append(text[cursor:])
        return "".join(pieces)

    def _redact_pem(self, text: str) -> str:
        pieces: list[str] = []
        cursor = 0
        while True:
            m = _PEM_BEGIN.search(text, cursor)
            if m is None:
                break
            end_m = _PEM_END.search(text, m.end())
            # An unterminated block hides everything after it: the rest is key material.
            end = len(text) if end_m is None else end_m.end()
            pieces.append(text[cursor : m.start()])
            pieces.append(self.token("private_key", text[m.start() : end]))
            cursor = end
        if not pieces:
            return text
        pieces.append(text[cursor:])
        return "".join(pieces)

    def token(self, category: str, value: str) -> str:
        """The replacement for ``value`` found as ``category``, according to the mode."""
        if self.mode == "hash":
            digest = hmac.new(self._hmac_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
            return f"[REDACTED:{category}:{digest.hexdigest()[:12]}]"
        if self.mode == "partial" and category == "card":
            digits = [char for char in value if char in _DIGITS]
            return f"[REDACTED:card:****{''.join(digits[-4:])}]"
        return f"[REDACTED:{category}]"

    def redact_lines(
        self, lines: Iterable[str], redact_line: Callable[[str], str] | None = None
    ) -> Iterator[str]:
        """Redact a stream of lines; a private key block spanning lines is hidden whole.

        ``redact_line`` redacts one line outside key blocks (default: as text).
        """
        one = redact_line or self.redact
        in_key = False
        for line in lines:
            body = line.rstrip("\r\n")
            ending = line[len(body) :]
            if in_key:
                end_m = _PEM_END.search(body)
                if end_m is None:
                    continue  # key material: dropped
                in_key = False
                rest = body[end_m.end() :]
                if rest.strip():
                    yield self.redact(rest) + ending
                continue
            begin = _PEM_BEGIN.search(body) if self._pem and "-----BEGIN" in body else None
            if begin is not None and _PEM_END.search(body, begin.end()) is None:
                in_key = True
                yield self.redact(body) + ending
                continue
            yield one(line)


def _next_start(text: str, start: int, before: frozenset[str]) -> int:
    """The first position after ``start`` that is not preceded by a ``before`` character."""
    pos = start + 1
    size = len(text)
    while pos < size and text[pos - 1] in before:
        pos += 1
    return pos


def _utf8_ok(text: str) -> bool:
    """RE2 sees UTF-8: a lone surrogate (undecodable input bytes) sends the text to Python's re."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_PROCESS_KEY: list[bytes] = []


def _process_key() -> bytes:
    if not _PROCESS_KEY:
        _PROCESS_KEY.append(secrets.token_bytes(32))
    return _PROCESS_KEY[0]


def _strings(values: Iterable[str], option: str) -> list[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"Redactor: {option} takes a list of names, e.g. [{values!r}]")
    out = list(values)
    for value in out:
        if not isinstance(value, str):
            raise ConfigurationError(f"Redactor: {option} takes names (strings), got {value!r}")
    return out


def _with_extra_keys(rule: Rule, keys: list[str]) -> Rule:
    """The key=value rule, also matching the user's own key names."""
    names = sorted({name.lower() for name in keys}, key=len, reverse=True)
    alternation = "|".join(re.escape(name) for name in names)
    pattern = rule.pattern.replace("(?i)(", f"(?i)({alternation}|", 1)
    return replace(rule, pattern=pattern, literals=(*rule.literals, *names))


def _sre_pattern(rule: Rule) -> str:
    if not rule.guard or not rule.before:
        return rule.pattern
    chars = "".join(sorted(rule.before))
    return f"(?<![{re.escape(chars)}])(?:{rule.pattern})"


def _python_prefilter(rule: Rule) -> re.Pattern[str]:
    try:
        return re.compile(_prefilter_regex(rule))
    except re.error:
        return re.compile("")  # a user's RE2-only rule: always a candidate


def _prefilter_regex(rule: Rule) -> str:
    if rule.pre is not None:
        return rule.pre
    if rule.literals:
        body = "|".join(re.escape(lit) for lit in rule.literals)
        return f"(?i)(?:{body})" if rule.icase else body
    return rule.pattern
