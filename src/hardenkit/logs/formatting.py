"""JSON and text formatters, and :func:`configure_logging`.

Standard library and python-json-logger only.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from .._core.context import REQUEST_ID
from ..errors import ConfigurationError
from .filters import (
    _OWN_ATTRS,
    _STANDARD_ATTRS,
    VETTED,
    Vetted,
    _ContextFilter,
    _RedactingContextFilter,
)
from .redactor import Redactor, _safe_text

__all__ = ["configure_logging"]

_STAMP_CACHE: tuple[int, str] = (-1, "")


def _rfc3339(created: float) -> str:
    """UTC RFC 3339 with milliseconds; the seconds part is formatted once per second."""
    global _STAMP_CACHE
    second = int(created)
    cached_second, prefix = _STAMP_CACHE
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _STAMP_CACHE = (second, prefix)  # one tuple: a racing thread sees old or new, both right
    return f"{prefix}.{int((created - second) * 1000):03d}Z"


def _exception_fields(record: logging.LogRecord, text: Any) -> dict[str, Any]:
    info = getattr(record, "hardenkit_exception", None)
    fields: dict[str, Any] = dict(info) if isinstance(info, Mapping) else {}
    if not fields and record.exc_info and record.exc_info[0] is not None:
        exc_type, exc, _ = record.exc_info
        fields = {"type": exc_type.__qualname__, "message": _safe_text(exc)}
    if text:
        fields["traceback"] = text
    return fields


def _json_formatter_class() -> type[logging.Formatter]:
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonEncoder, JsonFormatter

    reserved = [*RESERVED_ATTRS, "taskName", *_OWN_ATTRS]

    class HardenkitJsonFormatter(JsonFormatter):
        """python-json-logger with hardenkit's fields: timestamp (UTC RFC 3339), level, logger,
        message, request_id, the extras, and a structured exception."""

        def __init__(self) -> None:
            super().__init__(reserved_attrs=reserved, json_ensure_ascii=False)
            # One encoder for every line: json.dumps(cls=...) would build one per call.
            self._encode = JsonEncoder(ensure_ascii=False).encode
            self._vetted_names: dict[frozenset[str], tuple[str, ...]] = {}

        def add_fields(
            self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
        ) -> None:
            exc_text = message_dict.pop("exc_info", None)
            stack = message_dict.pop("stack_info", None)
            own = {
                "timestamp": _rfc3339(record.created),
                "level": record.levelname,
                "logger": record.name,
                "message": record.message,
            }
            rid = getattr(record, "request_id", None)
            if rid is None:
                rid = REQUEST_ID.get()
            if rid is not None:
                own["request_id"] = rid
            log_data.update(own)
            log_data.update(message_dict)  # a dict passed as the message
            # The extras: python-json-logger's merge_record_extra, in one comprehension.
            attrs = record.__dict__
            skip = self._skip_fields
            vetted = VETTED.get()
            if vetted is not None and vetted[0] is record:
                # An access-log line: its fields are known, only what else is there needs a look.
                written = self._vetted_names.get(vetted[4])
                if written is None:
                    written = self._written_names(vetted)
                log_data.update(zip(written, map(attrs.get, written), strict=True))
                others = attrs.keys() - vetted[4]
                if others:
                    log_data.update(
                        {
                            key: attrs[key]
                            for key in attrs
                            if key in others and key not in skip and key[:1] != "_"
                        }
                    )
            else:
                log_data.update({key: attrs[key] for key in attrs if key not in skip and key[:1] != "_"})
            # An extra named "level" cannot overwrite the real one (re-setting keeps the key order).
            log_data.update(own)
            if exc_text or getattr(record, "hardenkit_exception", None):
                log_data["exception"] = _exception_fields(record, exc_text)
            if stack:
                log_data["stack"] = stack

        def _written_names(self, vetted: Vetted) -> tuple[str, ...]:
            skip = self._skip_fields
            written = tuple(key for key in vetted[3] if key not in skip and key[:1] != "_")
            if len(self._vetted_names) >= 64:  # a producer has a handful of field sets; bound it anyway
                self._vetted_names.clear()
            self._vetted_names[vetted[4]] = written
            return written

        def jsonify_log_record(self, log_data: Any) -> str:
            line: str = self._encode(log_data)
            return line if line.isascii() else line.translate(_JSON_RAW_BREAKS)

    return HardenkitJsonFormatter


# Every character that can end a line, move the cursor or drive a terminal: C0 and C1
# controls (ESC, VT, FF, NEL...), DEL, the Unicode line and paragraph separators, the
# bidirectional overrides and isolates (text that reads differently from what it is) and
# lone surrogates (which the stream cannot encode).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _one_line(text: str) -> str:
    """``text`` with every control character escaped: one line, and nothing a terminal obeys."""
    if text.isprintable():  # the common case; False for every character _CONTROL matches
        return text
    return _CONTROL.sub(_escape, text)


# JSON escapes C0 controls itself; these it writes raw (ensure_ascii=False), and line-based
# readers (str.splitlines, some log shippers) take them for line ends.
_JSON_RAW_BREAKS = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029)}


class _TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO app [req-id] message key=value`` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        message = _one_line(record.getMessage())
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        parts = [_rfc3339(record.created), _one_line(f"{record.levelname:<7}"), _one_line(record.name)]
        if rid:
            parts.append(f"[{_one_line(str(rid))}]")
        parts.append(message)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in _OWN_ATTRS:
                shown = value if type(value) in (int, float, bool) else _one_line(_safe_text(value))
                parts.append(f"{_one_line(key)}={shown}")
        line = " ".join(parts)
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = self.formatException(record.exc_info)
        if exc_text:
            # Continuation lines are indented: no traceback line can pass for a log line.
            line += _indented(exc_text)
        if record.stack_info:
            line += _indented(record.stack_info)
        return line


def _indented(text: str) -> str:
    return "".join(f"\n    {_one_line(part)}" for part in text.splitlines())


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when the record is emitted."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr


def configure_logging(
    level: str | int = "INFO",
    *,
    json: bool = True,
    redact: bool | Redactor = True,
    stream: IO[str] | None = None,
    uvicorn: bool = True,
    file: str | os.PathLike[str] | None = None,
    rotate: str | int | None = None,
    keep: int | str | None = 30,
    compress: bool = False,
    utc: bool = True,
) -> logging.Handler:
    """Send every log record to one handler on the root logger: JSON lines or plain text.

    JSON lines (python-json-logger) carry ``timestamp`` (UTC RFC 3339), ``level``,
    ``logger``, ``message``, ``request_id``, the extras and a structured
    ``exception``; plain text (``json=False``) is one line per record with
    CR/LF escaped. ``redact=True`` (or a :class:`Redactor`) adds a
    :class:`RedactingFilter`. Calling it again replaces the handler it installed
    (no duplicates). With ``uvicorn=True`` uvicorn's loggers drop their own
    handlers and propagate here, so server lines share the format.
    Returns the handler.
    """
    if isinstance(level, bool) or not isinstance(level, (str, int)):
        raise ConfigurationError(
            f"configure_logging: level must be a name like 'INFO' or a number, got {level!r}"
        )
    if isinstance(level, str):
        resolved = logging.getLevelName(level.strip().upper())
        if not isinstance(resolved, int):
            raise ConfigurationError(
                f"configure_logging: level {level!r} is not known; write DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
        level = resolved
    if not isinstance(redact, (bool, Redactor)):
        raise ConfigurationError("configure_logging: redact takes True, False or a hardenkit.Redactor")

    # Without a stream, sys.stderr is looked up at each write (like logging's last resort):
    # a later redirection (pytest's capture, contextlib.redirect_stderr) is followed.
    handler: logging.StreamHandler[IO[str]] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler._hardenkit = True  # type: ignore[attr-defined]
    if redact is False:
        handler.addFilter(_ContextFilter())
    else:
        handler.addFilter(_RedactingContextFilter(redact if isinstance(redact, Redactor) else None))
    handler.setFormatter(_json_formatter_class()() if json else _TextFormatter())

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_hardenkit", False):
            root.removeHandler(old)
            old.close()  # a replaced file handler writes what it holds and stops its thread
    # First among the root's handlers: the filter redacts each record in place, so the
    # handlers after it (a file handler, pytest's caplog) get the redacted record too.
    root.handlers.insert(0, handler)
    if file is not None:
        from .files import file_handler_from_options

        # Second: it gets each record after the first handler's filter has redacted it in place.
        file_handler = file_handler_from_options(
            file, rotate=rotate, keep=keep, compress=compress, utc=utc, formatter=handler.formatter
        )
        root.handlers.insert(1, file_handler)
    root.setLevel(level)
    if uvicorn:
        for name in _UVICORN_LOGGERS:
            server_logger = logging.getLogger(name)
            for old in list(server_logger.handlers):
                server_logger.removeHandler(old)
            server_logger.propagate = True
    return handler
