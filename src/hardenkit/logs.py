"""Redacted JSON logs: Redactor, RedactingFilter, configure_logging and the access log.

Secrets and personal data never reach a log line::

    import logging
    import hardenkit as hk

    hk.configure_logging(level="INFO", json=True, redact=True)
    logging.getLogger("app").info("login for %s", "alice@example.com")
    # {"timestamp": "...Z", "level": "INFO", "logger": "app", "message": "login for [REDACTED:email]"}

The redactor, the filter and ``configure_logging`` use the standard library and
python-json-logger only: scripts can import them without loading starlette or
limits. :class:`AccessLogMiddleware` is pure ASGI and needs no web framework either.
"""

from __future__ import annotations

import io
import json as _json
import logging
import sys
from collections import UserList, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from ._context import REQUEST_ID
from ._redact import (
    CATEGORIES,
    DEFAULT_CATEGORIES,
    OPT_IN_CATEGORIES,
    PLACEHOLDER_ERROR,
    Engine,
    Mode,
    RedactionEngine,
    is_secret_key,
    re2_available,
)
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._accesslog import AccessLogMiddleware

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "OPT_IN_CATEGORIES",
    "AccessLogMiddleware",
    "RedactingFilter",
    "Redactor",
    "configure_logging",
    "is_secret_key",
    "re2_available",
]

#: Set by a hardenkit producer (the access log) while it logs a record whose text it has
#: already redacted with this Redactor; filters whose redactor it covers skip the rescan.
PRE_REDACTED: ContextVar[Redactor | None] = ContextVar("hardenkit.pre_redacted", default=None)

_CYCLE = "[REDACTED:cycle]"
_TOO_DEEP = "[REDACTED:depth]"


class Redactor:
    """Finds secrets and personal data in text and structures and replaces them.

    ``mode="mask"`` writes ``[REDACTED:email]``; ``"hash"`` writes a keyed HMAC
    token (``[REDACTED:email:3f1c0a9b2e7d]``) so the same value correlates across
    lines without being exposed (key from ``key=`` or ``HARDENKIT_REDACT_KEY``,
    else a random per-process key); ``"partial"`` keeps the last four digits of
    cards. ``categories``/``enable``/``disable`` choose what is found (``"ip"`` is
    opt-in), ``patterns`` adds named regexes, ``keys`` adds secret key names.

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
        ``token``...) are hidden whatever they look like; cycles and nesting
        deeper than ``max_depth`` are replaced by markers; other objects are
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
            path.add(marker)
            try:
                values = [self._obj(value, depth + 1, path) for value in obj]
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
        # Any other object: look at its text, the form a log line would show. An object
        # whose text cannot be read is replaced, not passed through.
        try:
            text = str(obj)
        except Exception:
            return PLACEHOLDER_ERROR
        redacted = self._engine.redact(text)
        return obj if redacted == text else redacted


def _safe_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return PLACEHOLDER_ERROR


# -- logging ------------------------------------------------------------------------

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
    from pythonjsonlogger.json import JsonFormatter

    reserved = [*RESERVED_ATTRS, "taskName", *_OWN_ATTRS]

    class HardenkitJsonFormatter(JsonFormatter):
        """python-json-logger with hardenkit's fields: timestamp (UTC RFC 3339), level, logger,
        message, request_id, the extras, and a structured exception."""

        def __init__(self) -> None:
            super().__init__(reserved_attrs=reserved, json_ensure_ascii=False)

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
            log_data.update({key: attrs[key] for key in attrs if key not in skip and key[:1] != "_"})
            # An extra named "level" cannot overwrite the real one (re-setting keeps the key order).
            log_data.update(own)
            if exc_text or getattr(record, "hardenkit_exception", None):
                log_data["exception"] = _exception_fields(record, exc_text)
            if stack:
                log_data["stack"] = stack

    return HardenkitJsonFormatter


def _one_line(text: str) -> str:
    # Keeps an attacker's CR/LF in a message from starting a fake log line.
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO app [req-id] message key=value`` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        message = _one_line(record.getMessage())
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        parts = [_rfc3339(record.created), f"{record.levelname:<7}", record.name]
        if rid:
            parts.append(f"[{_one_line(str(rid))}]")
        parts.append(message)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in _OWN_ATTRS:
                shown = value if isinstance(value, (int, float)) else _one_line(_safe_text(value))
                parts.append(f"{_one_line(key)}={shown}")
        line = " ".join(parts)
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = self.formatException(record.exc_info)
        if exc_text:
            # Continuation lines are indented: no traceback line can pass for a log line.
            line += "\n    " + "\n    ".join(exc_text.replace("\r", "\\r").splitlines())
        if record.stack_info:
            line += "\n    " + "\n    ".join(record.stack_info.replace("\r", "\\r").splitlines())
        return line


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
    # First among the root's handlers: the filter redacts each record in place, so the
    # handlers after it (a file handler, pytest's caplog) get the redacted record too.
    root.handlers.insert(0, handler)
    root.setLevel(level)
    if uvicorn:
        for name in _UVICORN_LOGGERS:
            server_logger = logging.getLogger(name)
            for old in list(server_logger.handlers):
                server_logger.removeHandler(old)
            server_logger.propagate = True
    return handler


# -- the CLI ------------------------------------------------------------------------


def _redact_line(redactor: Redactor, line: str) -> str:
    """A JSON object line is redacted field by field (keys kept); any other line as text."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    stripped = body.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            document = _json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, dict):
            if not redactor.might_contain(stripped) and not any(redactor.is_secret_key(k) for k in document):
                return line
            redacted = redactor.redact_obj(document)
            return _json.dumps(redacted, ensure_ascii=False, separators=(",", ":")) + ending
    return redactor.redact(body) + ending


def _cli_redact(argv: list[str]) -> int:
    """``hardenkit redact [FILE...]``: stream stdin or files to stdout, redacted."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hardenkit redact",
        description="Redact secrets and personal data from log files (stdin when no FILE is given). "
        "JSON lines are redacted field by field, other lines as text. "
        "The hash mode reads its key from HARDENKIT_REDACT_KEY.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="files to read ('-' is stdin)")
    parser.add_argument("--mode", choices=("mask", "hash", "partial"), default="mask")
    parser.add_argument("--enable", action="append", default=[], metavar="CATEGORY", help="e.g. ip")
    parser.add_argument("--disable", action="append", default=[], metavar="CATEGORY")
    args = parser.parse_args(argv)
    try:
        redactor = Redactor(mode=args.mode, enable=args.enable, disable=args.disable)
    except ConfigurationError as exc:
        print(f"hardenkit redact: {exc}", file=sys.stderr)
        return 2
    names = args.files or ["-"]
    # Bytes that are not UTF-8 pass through unchanged (surrogateescape both ways); when
    # reading stdin (``tail -f app.log | hardenkit redact``) every line is flushed at once.
    buffer = getattr(sys.stdout, "buffer", None)
    out: IO[str] = (
        io.TextIOWrapper(
            buffer, encoding="utf-8", errors="surrogateescape", newline="", line_buffering="-" in names
        )
        if buffer is not None
        else sys.stdout
    )
    status = 0
    try:
        for name in names:
            try:
                source = _open_source(name)
            except OSError as exc:
                print(f"hardenkit redact: {name}: {exc.strerror or exc}", file=sys.stderr)
                status = 1
                continue
            try:
                for line in _stream(redactor, source):
                    out.write(line)
            finally:
                if name != "-":
                    source.close()
    finally:
        out.flush()
        if isinstance(out, io.TextIOWrapper) and out is not sys.stdout:
            out.detach()  # leave sys.stdout usable
    return status


def _open_source(name: str) -> IO[str]:
    if name != "-":
        return open(name, encoding="utf-8", errors="surrogateescape", newline="")
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline="")


def _stream(redactor: Redactor, source: Iterable[str]) -> Iterator[str]:
    """Lines out, redacted; a private key block spanning lines is hidden whole."""
    return redactor._engine.redact_lines(source, lambda line: _redact_line(redactor, line))


def __getattr__(name: str) -> Any:
    # The access log is loaded on first use, so importing hardenkit.logs stays light.
    if name == "AccessLogMiddleware":
        from ._accesslog import AccessLogMiddleware

        globals()[name] = AccessLogMiddleware
        return AccessLogMiddleware
    raise AttributeError(f"module 'hardenkit.logs' has no attribute {name!r}")
