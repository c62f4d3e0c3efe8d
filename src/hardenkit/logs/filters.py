"""Logging filters: :class:`RedactingFilter` and the request-id filter.

Standard library only (plus :mod:`.redactor`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._core.context import REQUEST_ID
from .redactor import PRE_REDACTED, Redactor, _safe_text
from .rules import PLACEHOLDER_ERROR

__all__ = ["RedactingFilter"]

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

    def filter(self, record: logging.LogRecord) -> bool:
        if not super().filter(record):
            return False
        producer = PRE_REDACTED.get()
        if producer is not None and (
            producer is self.redactor or producer._engine.covers(self.redactor._engine)
        ):
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

    def _redact(self, record: logging.LogRecord) -> None:
        redactor = self.redactor
        engine = redactor._engine
        message: str | None = None
        if isinstance(record.msg, Mapping) and not record.args:
            record.msg = redactor._obj(record.msg, 0, set())
        else:
            try:
                message = record.getMessage()
            except Exception:
                message = f"{_safe_text(record.msg)} (unformattable args: {_safe_text(record.args)})"

        attrs = record.__dict__
        extras = [(key, attrs[key]) for key in attrs.keys() - _STANDARD_ATTRS]
        # One prefilter pass over the message and every text extra: most records are clean.
        strings = [value for _, value in extras if type(value) is str]
        if message is not None:
            strings.append(message)
        scan = engine.might_contain("\x00".join(strings)) if strings else False
        if message is not None:
            record.msg = engine.redact(message) if scan else message
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
                if scan:
                    setattr(record, key, engine.redact(value))
            elif kind is int:
                if not -10_000_000 < value < 10_000_000:  # shorter ints cannot be cards or phones
                    setattr(record, key, redactor._obj(value, 0, set()))
            elif value is not None and kind is not float and kind is not bool:
                setattr(record, key, redactor._obj(value, 0, set()))

        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            record.exc_text = engine.redact(_PLAIN_FORMATTER.formatException(record.exc_info))
            record.hardenkit_exception = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
                if exc_type.__module__ != "builtins"
                else exc_type.__qualname__,
                "message": engine.redact(_safe_text(exc)),
            }
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = engine.redact(record.exc_text)
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
