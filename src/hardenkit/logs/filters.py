"""Logging filters: :class:`RedactingFilter` and the request-id filter.

Standard library only (plus :mod:`.redactor`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from operator import is_
from typing import Any

from .._core.context import REQUEST_ID
from .redactor import Redactor, _safe_text
from .rules import PLACEHOLDER_ERROR
from .urls import redact_encoded

__all__ = ["RedactingFilter"]

_NOTHING: Mapping[str, Any] = {}
_MISSING = object()


class Vetted(tuple[logging.LogRecord, Redactor, str, Mapping[str, Any], frozenset[str]]):
    """What a hardenkit producer (the access log) already redacted in the record it logs.

    ``Vetted((record, redactor, message, fields, names))`` is set in :data:`VETTED`
    while the producer hands ``record`` to its logger; ``names`` is every
    attribute the record is expected to carry (the LogRecord's own and
    ``fields``'). A :class:`RedactingFilter` whose rules ``redactor`` covers
    skips exactly the vetted values of that very record: the message object and
    each field still holding the very object vetted. Anything else (a field
    added by a LogRecord factory or a user's filter, a value replaced on the
    way, a copy of the record, another record logged meanwhile) is redacted as
    usual. Kept beside the record, not on it, so that nothing unpicklable
    travels with it (SocketHandler, a multiprocessing QueueHandler). A tuple:
    built in C, once per access-log line.
    """

    __slots__ = ()

    @staticmethod
    def names_for(fields: Mapping[str, Any]) -> frozenset[str]:
        """The ``names`` of a Vetted for ``fields`` (compute once per set of field names)."""
        return _STANDARD_ATTRS.union(fields)


#: The record being handed to the handlers by a hardenkit producer, and what it vetted.
VETTED: ContextVar[Vetted | None] = ContextVar("hardenkit.vetted", default=None)


def vetted_for(record: logging.LogRecord) -> Vetted | None:
    """The :class:`Vetted` of ``record`` itself, if its producer is handing it over now."""
    vetted = VETTED.get()
    return vetted if vetted is not None and vetted[0] is record else None


#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Attributes never printed as extras: ours, and uvicorn's "color_message" (the
# message again, with ANSI colour codes for its own terminal formatter).
_OWN_ATTRS = frozenset({"request_id", "hardenkit_exception", "color_message"})
_PLAIN_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` (put it on handlers) that redacts each record in place.

    It redacts the final message (``msg % args``), every extra field, the
    exception text and the stack text. The caller's objects passed as args or
    extra are never touched: the record gets redacted copies. The exception is
    kept as text (``exc_text``) plus ``record.hardenkit_exception`` (type and
    redacted message) so that no formatter can render the raw one again.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor if redactor is not None else Redactor()
        self._covering: tuple[Redactor | None, bool] = (None, False)
        self._checked_names: frozenset[str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not super().filter(record):
            return False
        vetted = VETTED.get()
        if vetted is not None and vetted[0] is record and self._untouched(record, vetted):
            return True
        try:
            self._redact(record)
        except Exception:
            # Never let a record through unredacted.
            record.msg = PLACEHOLDER_ERROR
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            for key in list(vars(record)):
                if key not in _STANDARD_ATTRS:
                    setattr(record, key, PLACEHOLDER_ERROR)
        return True

    def _untouched(self, record: logging.LogRecord, vetted: Vetted) -> bool:
        """True when the record holds what its producer vetted, and nothing else to redact."""
        _, producer, message, fields, names = vetted
        if not self._covered_by(producer):
            return False
        if (
            record.msg is not message
            or record.args
            or record.exc_info
            or record.exc_text
            or record.stack_info
        ):
            return False
        if names is not self._checked_names:
            # A producer reuses a few name sets; check each is no wider than it may be, once.
            if not names <= Vetted.names_for(fields):
                return False
            self._checked_names = names
        attrs = record.__dict__
        # At C speed: no attribute beyond the vetted ones, and each still the very object vetted.
        return names.issuperset(attrs) and all(map(is_, map(attrs.get, fields), fields.values()))

    def _covered_by(self, producer: Redactor) -> bool:
        """True when ``producer`` finds everything this filter's redactor finds."""
        last, answer = self._covering  # one tuple: a racing thread sees old or new, both right
        if last is not producer:
            redactor = self.redactor
            answer = producer is redactor or producer._engine.covers(redactor._engine)
            self._covering = (producer, answer)
        return answer

    def _redact(self, record: logging.LogRecord) -> None:
        redactor = self.redactor
        engine = redactor._engine
        attrs = record.__dict__
        vetted = vetted_for(record)
        trusted = _NOTHING
        trusted_message: str | None = None
        if vetted is not None and self._covered_by(vetted[1]):
            trusted_message, trusted = vetted[2], vetted[3]
        message: str | None = None
        if record.msg is trusted_message and not record.args:
            pass  # the producer's own message, redacted by it
        elif isinstance(record.msg, Mapping) and not record.args:
            record.msg = redactor._obj(record.msg, 0, set())
        else:
            try:
                message = record.getMessage()
            except Exception:
                message = f"{_safe_text(record.msg)} (unformattable args: {_safe_text(record.args)})"

        # Only what the producer vetted is skipped, by identity: a value replaced on the way
        # (by a user's filter) or added (by a LogRecord factory) is redacted like any extra.
        extras = [
            (key, value)
            for key in attrs.keys() - _STANDARD_ATTRS
            if trusted.get(key, _MISSING) is not (value := attrs[key])
        ]
        # One prefilter pass over the message and every text extra: most records are clean.
        strings = [value for _, value in extras if type(value) is str]
        if message is not None:
            strings.append(message)
        scan = engine.might_contain("\x00".join(strings)) if strings else False
        if message is not None:
            record.msg = redact_encoded(engine.redact(message) if scan else message, redactor)
            record.args = None
        known_keys = engine._key_cache
        for key, value in extras:
            secret = known_keys.get(key)
            if secret is None:
                secret = engine.secret_key(key)
            kind = type(value)
            if secret:
                if value is not None and value != "":
                    setattr(record, key, redactor._secret_value(value))
            elif kind is str:
                text = engine.redact(value) if scan else value
                text = redact_encoded(text, redactor)
                if text is not value:
                    setattr(record, key, text)
            elif kind is int:
                if not -10_000_000 < value < 10_000_000:  # shorter ints cannot be cards or phones
                    setattr(record, key, redactor._obj(value, 0, set()))
            elif value is not None and kind is not float and kind is not bool:
                setattr(record, key, redactor._obj(value, 0, set()))

        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            # An HTTP client's error names the URL it called: look through its encoding too.
            record.exc_text = redact_encoded(
                engine.redact(_PLAIN_FORMATTER.formatException(record.exc_info)), redactor
            )
            record.hardenkit_exception = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
                if exc_type.__module__ != "builtins"
                else exc_type.__qualname__,
                "message": redact_encoded(engine.redact(_safe_text(exc)), redactor),
            }
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_encoded(engine.redact(record.exc_text), redactor)
        if record.stack_info:
            record.stack_info = engine.redact(record.stack_info)


class _ContextFilter(logging.Filter):
    """Adds the current request id to each record (the handler runs in the caller's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class _RedactingContextFilter(RedactingFilter):
    """configure_logging's filter: the request id and the redaction in one call per record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return super().filter(record)
