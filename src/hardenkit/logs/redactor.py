"""The :class:`Redactor`: redact secrets and personal data from text and from objects.

Standard library and :mod:`.engine` only: scripts can import it without loading
starlette or limits.
"""

from __future__ import annotations

import dataclasses
from collections import UserList, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from enum import Enum, EnumMeta
from typing import Any

from ..errors import ConfigurationError
from .engine import Engine, Mode, RedactionEngine
from .rules import _MARK, PLACEHOLDER_ERROR, Rule

__all__ = ["Redactor"]

_CYCLE = "[REDACTED:cycle]"
_TOO_DEEP = "[REDACTED:depth]"


class Redactor:
    """Finds secrets and personal data in text and structures and replaces them.

    ``mode="mask"`` writes ``[REDACTED:email]``; ``"hash"`` writes a keyed HMAC
    token (``[REDACTED:email:3f1c0a9b2e7d]``) so the same value correlates across
    lines without being exposed (key from ``key=`` or ``HARDENKIT_REDACT_KEY``,
    else a random per-process key); ``"partial"`` keeps the last four digits of
    cards. ``categories``/``enable``/``disable`` choose what is found (``"ip"`` is
    opt-in), ``patterns`` adds named regexes, ``keys`` adds secret key names,
    ``rules`` adds rule objects (a gitleaks configuration's, see ``logs.gitleaks``).

    Both methods never raise: on an internal error the value is replaced by
    ``[REDACTED:error]``, never passed through.
    """

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
        max_depth: int = 32,
        rules: Iterable[Rule] = (),
    ) -> None:
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ConfigurationError(f"Redactor: max_depth must be a whole number >= 1, got {max_depth!r}")
        self._engine = RedactionEngine(
            mode=mode,
            categories=categories,
            enable=enable,
            disable=disable,
            patterns=patterns,
            keys=keys,
            key=key,
            engine=engine,
            rules=rules,  # users' own Rule objects, e.g. hardenkit.logs.gitleaks.load_gitleaks(...).rules
        )
        self.max_depth = max_depth

    @property
    def mode(self) -> str:
        return self._engine.mode

    @property
    def categories(self) -> frozenset[str]:
        """The categories this redactor looks for."""
        return self._engine.categories

    @property
    def engine(self) -> str:
        """``"re2"`` when google-re2 does the scanning, else ``"re"``."""
        return self._engine.engine_name

    def __repr__(self) -> str:
        return f"Redactor(mode={self.mode!r}, engine={self.engine!r}, categories={len(self.categories)})"

    # -- text --------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """Return ``text`` with every secret replaced (the same object when nothing is found)."""
        try:
            if not isinstance(text, str):  # untyped callers pass anything
                text = str(text)  # type: ignore[unreachable]
            return self._engine.redact(text)
        except Exception:
            return PLACEHOLDER_ERROR

    def might_contain(self, text: str) -> bool:
        """Cheap prefilter: ``False`` means ``redact(text)`` returns ``text`` unchanged."""
        try:
            return self._engine.might_contain(text)
        except Exception:
            return True

    def is_secret_key(self, name: str) -> bool:
        """True when a mapping key (or ``key=value`` key) names a secret: its value is always hidden."""
        return self._engine.secret_key(name)

    def redact_lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Redact a stream of lines lazily; a private key block spanning lines is hidden whole."""
        yield from self._engine.redact_lines(lines)

    # -- structures ----------------------------------------------------------------
    def redact_obj(self, obj: Any) -> Any:
        """A redacted copy of ``obj`` (dicts, lists, tuples, sets and other values).

        The input is never mutated. Values under a secret key (``password``,
        ``token``...) are hidden whatever they look like, and so is the value of
        a ``(name, value)`` pair whose name is a secret key (header lists such as
        ``[("x-api-key", v)]``); cycles and nesting deeper than ``max_depth`` are
        replaced by markers. Objects are judged in the form a JSON log writes
        them: a dataclass instance becomes a dict of its fields (``repr=False``
        ones included), an Enum member its ``value``. Other objects are
        redacted through ``str()`` when their text holds a secret.
        """
        try:
            return self._obj(obj, 0, set())
        except Exception:
            return PLACEHOLDER_ERROR

    def _secret_value(self, value: Any) -> str:
        text = value if isinstance(value, str) else _safe_text(value)
        return self._engine.token("secret", text)

    def _obj(self, obj: Any, depth: int, path: set[int]) -> Any:
        if obj is None or isinstance(obj, (bool, float)):
            return obj
        if isinstance(obj, str):
            return self._engine.redact(obj)
        if isinstance(obj, int):
            text = str(obj) if obj.bit_length() < 4000 else None
            if text is None:
                return PLACEHOLDER_ERROR
            redacted = self._engine.redact(text)
            return obj if redacted == text else redacted
        if isinstance(obj, (bytes, bytearray, memoryview)):
            text = bytes(obj).decode("utf-8", "replace")
            redacted = self._engine.redact(text)
            return obj if redacted == text else redacted
        if depth >= self.max_depth:
            return _TOO_DEEP
        marker = id(obj)
        if marker in path:
            return _CYCLE
        if isinstance(obj, Mapping):
            path.add(marker)
            try:
                items: dict[Any, Any] = {}
                for key, value in obj.items():
                    if isinstance(key, str) and self._engine.secret_key(key):
                        new_value: Any = self._secret_value(value) if value not in (None, "") else value
                    else:
                        new_value = self._obj(value, depth + 1, path)
                    new_key = self._engine.redact(key) if isinstance(key, str) else key
                    items[new_key] = new_value
            finally:
                path.discard(marker)
            if type(obj) is dict:
                return items
            try:
                factory: Any = type(obj)
                if isinstance(obj, defaultdict):
                    return factory(obj.default_factory, items)
                return factory(items)
            except Exception:
                return items
        if isinstance(obj, (list, tuple, set, frozenset, deque, UserList, AbstractSet)):
            if isinstance(obj, tuple) and self._secret_pair(obj):
                return self._hide_pair(obj, depth, path)
            path.add(marker)
            try:
                values = [
                    self._hide_pair(value, depth + 1, path)
                    if isinstance(value, list) and self._secret_pair(value)
                    else self._obj(value, depth + 1, path)
                    for value in obj
                ]
            finally:
                path.discard(marker)
            kind: Any = type(obj)
            if kind in (list, tuple, set, frozenset):
                return kind(values)
            if isinstance(obj, tuple) and hasattr(obj, "_fields"):
                return kind(*values)  # a namedtuple
            try:
                if isinstance(obj, deque):
                    return kind(values, obj.maxlen)
                return kind(values)
            except Exception:
                if isinstance(obj, AbstractSet):
                    return frozenset(values) if isinstance(obj, frozenset) else set(values)
                return values if isinstance(obj, (list, deque, UserList)) else tuple(values)
        # A JSON log (python-json-logger's encoder) writes these in another form than str():
        # judge them in the form that is written, or a repr=False field or an Enum's value
        # reaches the line unseen.
        if isinstance(obj, Enum):
            value = obj.value
            path.add(marker)
            try:
                redacted_value = self._obj(value, depth + 1, path)
            finally:
                path.discard(marker)
            if redacted_value is value and self._text_is_clean(obj):
                return obj
            return redacted_value
        if isinstance(obj, EnumMeta):
            members: list[Enum] = list(obj)
            return self._obj([member.value for member in members], depth + 1, path)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            path.add(marker)
            try:
                # Field by field rather than dataclasses.asdict(), which deep-copies every value.
                fields = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
                return self._obj(fields, depth + 1, path)
            finally:
                path.discard(marker)
        # Any other object: look at its text, the form a log line would show. An object
        # whose text cannot be read is replaced, not passed through.
        try:
            text = str(obj)
        except Exception:
            return PLACEHOLDER_ERROR
        redacted = self._engine.redact(text)
        return obj if redacted == text else redacted

    def _text_is_clean(self, obj: Any) -> bool:
        try:
            text = str(obj)
        except Exception:
            return False
        return self._engine.redact(text) == text

    def _secret_pair(self, pair: tuple[Any, ...] | list[Any]) -> bool:
        """A ``(name, value)`` pair whose name is a secret key: a header list's entry."""
        if len(pair) != 2:
            return False
        name = pair[0]
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        # Header names are short; a long string is a message, not a name (and the key cache stays
        # small). A name that is already a redaction marker names nothing: redacting twice must
        # give what redacting once gave.
        return (
            isinstance(name, str)
            and len(name) <= 128
            and not name.startswith(_MARK)
            and self._engine.secret_key(name)
        )

    def _hide_pair(self, pair: tuple[Any, ...] | list[Any], depth: int, path: set[int]) -> Any:
        name, value = pair
        empty = value is None or (type(value) in (str, bytes) and not value)
        hidden = value if empty else self._secret_value(value)
        name = self._obj(name, depth + 1, path)
        if isinstance(pair, list):
            return [name, hidden]
        if type(pair) is tuple:
            return (name, hidden)
        factory: Any = type(pair)
        try:
            return factory(name, hidden)  # a namedtuple
        except Exception:
            return (name, hidden)


def _safe_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return PLACEHOLDER_ERROR
