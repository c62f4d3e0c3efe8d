"""RedactingFilter, configure_logging (JSON and text), the ``hardenkit redact`` CLI and the example."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hardenkit as hk
from hardenkit.errors import ConfigurationError
from hardenkit.headers import REQUEST_ID
from hardenkit.logs import RedactingFilter, Redactor, configure_logging

ROOT = Path(__file__).resolve().parents[2]
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Give each test the root and uvicorn loggers back as it found them."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def capture(
    filter_: logging.Filter | None = None, formatter: logging.Formatter | None = None
) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if filter_ is not None:
        handler.addFilter(filter_)
    handler.setFormatter(formatter or logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- RedactingFilter ----------------------------------------------------------------------


def test_filter_redacts_the_final_message_and_leaves_args_untouched() -> None:
    logger, stream = capture(RedactingFilter())
    args = ["alice@example.com"]
    logger.info("user %s paid with %s", args, "4111 1111 1111 1111")
    assert stream.getvalue() == "user ['[REDACTED:email]'] paid with [REDACTED:card]\n"
    assert args == ["alice@example.com"]


def test_filter_redacts_extras_by_value_and_by_key_without_mutating_them() -> None:
    logger, stream = capture(RedactingFilter(), logging.Formatter("%(message)s %(user)s %(token)s"))
    user = {"email": "bob@example.com", "password": "pw", "nested": ["carol@example.com"]}
    before = copy.deepcopy(user)
    logger.info("hi", extra={"user": user, "token": "abc"})
    assert user == before
    assert stream.getvalue() == (
        "hi {'email': '[REDACTED:email]', 'password': '[REDACTED:secret]', "
        "'nested': ['[REDACTED:email]']} [REDACTED:secret]\n"
    )


def test_filter_redacts_exception_text_and_keeps_a_structured_summary() -> None:
    logger, stream = capture(RedactingFilter())
    try:
        raise ValueError("could not log in with password=hunter2 as eve@example.com")
    except ValueError:
        logger.exception("login failed")
    out = stream.getvalue()
    assert "hunter2" not in out and "eve@example.com" not in out
    assert "ValueError: could not log in with password=[REDACTED:secret] as [REDACTED:email]" in out


def test_filter_redacts_stack_info_and_dict_messages() -> None:
    logger, stream = capture(RedactingFilter())
    message = {"event": "signup", "email": "dan@example.com"}
    logger.info(message, stack_info=True)
    assert message == {"event": "signup", "email": "dan@example.com"}
    assert "dan@example.com" not in stream.getvalue()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, sinfo="Stack a@example.com")
    RedactingFilter().filter(record)
    assert record.stack_info == "Stack [REDACTED:email]"


def test_filter_survives_unformattable_messages_without_leaking() -> None:
    logger, stream = capture(RedactingFilter())
    logger.info("%d items for %s", "many", "x@example.com")
    assert stream.getvalue() == "%d items for %s (unformattable args: ('many', '[REDACTED:email]'))\n"


def test_filter_never_lets_a_record_through_unredacted_on_internal_error() -> None:
    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s", ("a@example.com",), None)
    record.__dict__["password"] = Hostile()
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "[REDACTED:error]"
    assert record.exc_info is None and record.stack_info is None
    assert record.__dict__["password"] == "[REDACTED:error]"


def test_unreadable_extras_and_args_are_replaced_not_passed_through() -> None:
    class Unreadable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", (Unreadable(),), None)
    record.__dict__["thing"] = Unreadable()
    RedactingFilter().filter(record)
    assert record.__dict__["thing"] == "[REDACTED:error]"
    assert record.getMessage() == "value %s (unformattable args: [REDACTED:error])"


def test_filter_exception_text_already_formatted_is_redacted() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, None)
    record.exc_text = "Traceback...\nKeyError: 'token=abc'"
    RedactingFilter().filter(record)
    assert record.exc_text == "Traceback...\nKeyError: 'token=[REDACTED:secret]'"


# -- configure_logging ----------------------------------------------------------------------


def test_json_lines_carry_time_level_logger_message_request_id_and_extras() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("app.orders").warning(
            "order %s by %s", 7, "f@example.com", extra={"order": {"id": 7}}
        )
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("app").info("outside")
    first, second = json_lines(stream)
    assert RFC3339_UTC.match(first.pop("timestamp"))
    assert first == {
        "level": "WARNING",
        "logger": "app.orders",
        "message": "order 7 by [REDACTED:email]",
        "request_id": "req-42",
        "order": {"id": 7},
    }
    assert "request_id" not in second


def test_json_exception_is_structured_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        raise KeyError("api_key=zzz")
    except KeyError:
        logging.getLogger("app").exception("lookup failed")
    (line,) = json_lines(stream)
    assert line["exception"]["type"] == "KeyError"
    assert line["exception"]["message"] == "'api_key=[REDACTED:secret]'"
    assert "zzz" not in json.dumps(line)
    assert line["exception"]["traceback"].startswith("Traceback")


def test_json_without_redaction_still_structures_the_exception() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, redact=False)
    try:
        raise OSError("disk a@example.com")
    except OSError:
        logging.getLogger("app").exception("x", extra={"level": "fake"})
    (line,) = json_lines(stream)
    assert line["exception"]["type"] == "OSError" and "a@example.com" in line["exception"]["message"]
    assert line["level"] == "ERROR"  # an extra cannot overwrite the real level


def test_configure_logging_is_idempotent() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    configure_logging(stream=io.StringIO())
    configure_logging(stream=stream, level="DEBUG")
    ours = [h for h in root.handlers if getattr(h, "_hardenkit", False)]
    assert len(ours) == 1
    logging.getLogger("app").debug("once")
    assert len(stream.getvalue().splitlines()) == 1
    assert root.level == logging.DEBUG


def test_no_log_injection_through_cr_lf() -> None:
    json_stream, text_stream = io.StringIO(), io.StringIO()
    configure_logging(stream=json_stream)
    logging.getLogger("app").info("user input: %s", "x\n2026-01-01T00:00:00.000Z INFO fake admin login\r")
    assert len(json_stream.getvalue().splitlines()) == 1
    configure_logging(stream=text_stream, json=False)
    logging.getLogger("app").info("user input: %s", "x\nFAKE LINE\r", extra={"field": "a\nb"})
    try:
        raise ValueError("multi\nline")
    except ValueError:
        logging.getLogger("app").exception("err")
    lines = text_stream.getvalue().splitlines()
    assert "x\\nFAKE LINE\\r" in lines[0] and "field=a\\nb" in lines[0]
    assert all(line.startswith("    ") for line in lines[2:])
    assert RFC3339_UTC.match(lines[0].split(" ")[0])


def test_text_mode_shows_the_request_id() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=False)
    token = REQUEST_ID.set("abc-1")
    try:
        logging.getLogger("app").info("hello")
    finally:
        REQUEST_ID.reset(token)
    assert " app [abc-1] hello" in stream.getvalue()


def test_uvicorn_loggers_are_brought_into_the_same_format() -> None:
    stray = logging.StreamHandler(io.StringIO())
    for name in ("uvicorn", "uvicorn.access"):
        logging.getLogger(name).addHandler(stray)
        logging.getLogger(name).propagate = False
    stream = io.StringIO()
    configure_logging(stream=stream)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == [] and logging.getLogger(name).propagate
    logging.getLogger("uvicorn.error").info("Started server process")
    assert json_lines(stream)[0]["logger"] == "uvicorn.error"


@pytest.mark.parametrize("as_json", [True, False])
def test_uvicorn_color_message_duplicate_is_not_printed(as_json: bool) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=as_json)
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        7,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    assert "color_message" not in stream.getvalue()
    assert "Started server process [7]" in stream.getvalue()


def test_custom_redactor_is_used() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, redact=Redactor(mode="hash", key="k"))
    logging.getLogger("app").info("a@example.com")
    assert json_lines(stream)[0]["message"].startswith("[REDACTED:email:")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"level": "LOUD"}, "not known"),
        ({"level": 1.5}, "level must be"),
        ({"redact": "yes"}, "redact takes"),
    ],
)
def test_configure_logging_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        configure_logging(**options)


def test_public_names_are_reexported() -> None:
    assert hk.Redactor is Redactor and hk.RedactingFilter is RedactingFilter
    assert hk.configure_logging is configure_logging
    from hardenkit.logs.access import AccessLogMiddleware

    assert hk.AccessLogMiddleware is AccessLogMiddleware
    with pytest.raises(AttributeError):
        import hardenkit.logs

        hardenkit.logs.nope  # noqa: B018


# -- the CLI ------------------------------------------------------------------------------------


def run_cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HARDENKIT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hardenkit", "redact", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=60,
    )


def test_cli_redacts_text_and_json_lines_field_by_field(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        b"plain a@example.com line\n"
        b'{"msg": "paid", "card": "4111111111111111", "password": 1234, "n": 2}\n'
        b'{"ok": true,   "spaces": "kept"}\n'
        b"not json {broken password=x}\n"
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n"
        b"\xff\xfe raw bytes b@example.com\n"
    )
    result = run_cli(str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        b"plain [REDACTED:email] line",
        b'{"msg":"paid","card":"[REDACTED:card]","password":"[REDACTED:secret]","n":2}',
        b'{"ok": true,   "spaces": "kept"}',
        b"not json {broken password=[REDACTED:secret]}",
        b"[REDACTED:private_key]",
        b"\xff\xfe raw bytes [REDACTED:email]",
    ]


def test_cli_reads_stdin_and_reports_missing_files(tmp_path: Path) -> None:
    result = run_cli("-", str(tmp_path / "missing.log"), stdin=b"token=abc\n")
    assert result.stdout == b"token=[REDACTED:secret]\n"
    assert result.returncode == 1 and b"missing.log" in result.stderr


def test_cli_hash_mode_uses_the_environment_key() -> None:
    one = run_cli("--mode", "hash", stdin=b"a@example.com\n", env={"HARDENKIT_REDACT_KEY": "k"}).stdout
    two = run_cli("--mode", "hash", stdin=b"a@example.com\n", env={"HARDENKIT_REDACT_KEY": "k"}).stdout
    assert one == two and one.startswith(b"[REDACTED:email:")


def test_cli_rejects_unknown_categories() -> None:
    result = run_cli("--enable", "nope")
    assert result.returncode == 2 and b"unknown categories" in result.stderr


def test_cli_streams_line_by_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardenkit", "redact"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"first a@example.com\n")
        proc.stdin.flush()
        # The answer comes while stdin is still open: nothing waits for the end of input.
        assert proc.stdout.readline() == b"first [REDACTED:email]\n"
        proc.stdin.write(b"second\n")
        proc.stdin.close()
        assert proc.stdout.read() == b"second\n"
    finally:
        proc.stdin.close() if not proc.stdin.closed else None
        proc.wait(timeout=30)
        proc.stdout.close()


# -- the example --------------------------------------------------------------------------------


def test_logging_example_runs_and_redacts() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "logging_example.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    text = json.dumps(lines)
    for secret in ("alice@example.com", "hunter2", "4111 1111 1111 1111", "sk_live_"):
        assert secret not in text
    assert any(line.get("request_id") == "demo-request-1" for line in lines)
    assert any("exception" in line for line in lines)
    assert "[REDACTED:card:****1111]" in result.stdout


def test_filter_respects_its_logger_name_like_any_logging_filter() -> None:
    record = logging.LogRecord("other", logging.INFO, __file__, 1, "a@example.com", None, None)
    assert not RedactingFilter(name="app").filter(record)
    assert record.msg == "a@example.com"  # not ours to touch


def test_filter_redacts_long_numbers_in_extras_and_keeps_short_ones() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.__dict__.update(card=4111111111111111, count=12, ratio=0.5, ok=True, nothing=None)
    RedactingFilter().filter(record)
    assert record.__dict__["card"] == "[REDACTED:card]"
    assert [record.__dict__[k] for k in ("count", "ratio", "ok", "nothing")] == [12, 0.5, True, None]


def test_stack_info_in_both_formats() -> None:
    json_stream, text_stream = io.StringIO(), io.StringIO()
    configure_logging(stream=json_stream)
    logging.getLogger("app").info("here", stack_info=True)
    assert json_lines(json_stream)[0]["stack"].startswith("Stack (most recent call last)")
    configure_logging(stream=text_stream, json=False, redact=False)
    try:
        raise ValueError("raw")
    except ValueError:
        logging.getLogger("app").exception("unredacted text mode", stack_info=True)
    out = text_stream.getvalue()
    assert "    ValueError: raw" in out and "    Stack (most recent call last)" in out
