"""Issue 12, logs: what reaches a log line through the real configure_logging() output.

Each test drives the real pipeline (AccessLogMiddleware or a logger, the
RedactingFilter that configure_logging installs, its JSON or text formatter) and
reads the text that was written, in both formats.
"""

from __future__ import annotations

import enum
import io
import json
import logging
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from hardenkit import HeaderContractMiddleware, Kit, Wiring
from hardenkit.health import HealthProbeMiddleware
from hardenkit.logs import AccessLogMiddleware, Redactor, configure_logging
from support import uvicorn_server

FORMATS = pytest.mark.parametrize("json_lines", [True, False], ids=["json", "text"])
BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
ACCESS = "hardenkit.access"


@pytest.fixture
def output() -> Iterator[Callable[[bool], io.StringIO]]:
    """configure_logging(json=...) into a fresh stream; the logging setup is restored after."""
    root = logging.getLogger()
    access = logging.getLogger(ACCESS)
    saved = (root.handlers[:], root.level, access.handlers[:], access.level, access.propagate)
    factory = logging.getLogRecordFactory()
    access_filters = access.filters[:]

    def configure(json_lines: bool) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(stream=stream, json=json_lines, uvicorn=False)
        return stream

    try:
        yield configure
    finally:
        root.handlers[:], root.level, access.handlers[:], access.level, access.propagate = saved
        access.filters[:] = access_filters
        logging.setLogRecordFactory(factory)


def access_lines(stream: io.StringIO, json_lines: bool) -> list[str]:
    """The access log's lines as written (one str per line, whatever the format)."""
    lines = stream.getvalue().splitlines()
    if json_lines:
        return [line for line in lines if json.loads(line)["logger"] == ACCESS]
    return [line for line in lines if f" {ACCESS} " in line]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def http_scope(
    path: str = "/",
    query: bytes = b"",
    *,
    root_path: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Scope:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": quote(path).encode(), "root_path": root_path,
        "query_string": query, "headers": headers or [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip


def serve_one(app: Any, scope: Scope) -> list[Message]:
    """One request straight into ``app`` (an empty body, then nothing); what it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent


# -- defect 1: URL-encoded secrets -------------------------------------------------------------

ISSUE_QUERIES = [
    # (query as httpx/requests/browser forms send it, what must not be in the line)
    ("email=alice%40example.com", ["alice@example.com", "alice%40example.com"]),
    ("q=4111+1111+1111+1111", ["4111 1111 1111 1111", "4111+1111+1111+1111"]),
    ("next=postgres%3A%2F%2Fu%3Ahunter2%40db%2Fx", ["hunter2"]),
    ("pass%77ord=hunter2", ["hunter2"]),
    ("password%3Dhunter2", ["hunter2"]),
]


@FORMATS
@pytest.mark.parametrize(("query", "secrets"), ISSUE_QUERIES, ids=[q for q, _ in ISSUE_QUERIES])
def test_url_encoded_secrets_in_the_query_never_reach_the_access_line(
    output: Callable[[bool], io.StringIO], json_lines: bool, query: str, secrets: list[str]
) -> None:
    stream = output(json_lines)
    serve_one(AccessLogMiddleware(hello), http_scope("/search", query.encode()))
    (line,) = access_lines(stream, json_lines)
    assert "[REDACTED:" in line
    for secret in secrets:
        assert secret not in line
        assert secret not in unquote_plus(line)  # nothing to decode back into the secret


@FORMATS
def test_logged_query_is_the_decoded_redacted_query_re_encoded(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    stream = output(json_lines)
    query = b"page=2&name=caf%C3%A9+cr%C3%A8me&email=alice%40example.com&tags=a%26b"
    serve_one(AccessLogMiddleware(hello), http_scope("/", query))
    (line,) = access_lines(stream, json_lines)
    logged = json.loads(line)["query"] if json_lines else line.split(" query=", 1)[1].split(" status=")[0]
    # Parameters with nothing to hide are written as sent; the redacted one is re-encoded.
    assert logged == "page=2&name=caf%C3%A9+cr%C3%A8me&email=[REDACTED:email]&tags=a%26b"


@FORMATS
def test_secrets_under_a_second_layer_of_encoding_are_found_too(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    stream = output(json_lines)
    # The server decodes the path once: the app gets "/reset/alice%40example.com".
    serve_one(AccessLogMiddleware(hello), http_scope("/reset/alice%40example.com", b"e=bob%2540example.com"))
    (line,) = access_lines(stream, json_lines)
    for secret in ("alice", "bob"):
        assert secret not in line


@FORMATS
def test_paths_are_written_percent_encoded(output: Callable[[bool], io.StringIO], json_lines: bool) -> None:
    stream = output(json_lines)
    serve_one(AccessLogMiddleware(hello), http_scope("/caf\xe9 menu/a\x1bb"))
    (line,) = access_lines(stream, json_lines)
    assert "/caf%C3%A9%20menu/a%1Bb" in line


def test_a_secret_at_the_length_cut_is_redacted_before_the_cut(output: Callable[[bool], io.StringIO]) -> None:
    stream = output(True)
    # The old cut (2048 raw characters) fell inside the email: "alice@exa" is no email any more.
    query = ("pad=" + "x" * (2048 - len("pad=&e=alice@exa")) + "&e=alice@example.com").encode()
    serve_one(AccessLogMiddleware(hello), http_scope("/", query))
    (line,) = access_lines(stream, True)
    assert "alice" not in line
    assert len(json.loads(line)["query"]) <= 2048


# The property: any mix of planted secrets, any of their characters percent-encoded.
PLANTED = [
    # (name, value, what must never appear)
    ("email", "alice@example.com", "alice@example.com"),
    ("password", "hunter2-Secret", "hunter2-Secret"),
    ("token", "tok9Qz7x", "tok9Qz7x"),
    ("card", "4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("next", "postgres://app:s3cretpw@db.internal/app", "s3cretpw"),
    ("q", "ghp_" + "Ab1" * 12, "ghp_" + "Ab1" * 12),
]
_MUST_ENCODE = set("&=+%# ")


@st.composite
def encoded(draw: st.DrawFn, text: str) -> str:
    """``text`` with any of its characters percent-encoded (either hex case), as a query carries it."""
    out = []
    for char in text:
        if char in _MUST_ENCODE or draw(st.booleans()):
            if char == " " and draw(st.booleans()):
                out.append("+")
                continue
            hexes = [f"%{byte:02X}" for byte in char.encode("utf-8")]
            out.append("".join(h.lower() if draw(st.booleans()) else h for h in hexes))
        else:
            out.append(char)
    return "".join(out)


@st.composite
def planted_queries(draw: st.DrawFn) -> tuple[str, list[str]]:
    chosen = draw(st.lists(st.sampled_from(PLANTED), min_size=1, max_size=4))
    parts = []
    for name, value, _ in chosen:
        separator = draw(st.sampled_from(["=", "%3D", "%3d"])) if name == "password" else "="
        parts.append(draw(encoded(name)) + separator + draw(encoded(value)))
    noise = draw(st.lists(st.sampled_from(["page=2", "sort=desc", "q=hello+world"]), max_size=2))
    order = draw(st.permutations(parts + noise))
    return "&".join(order), [secret for _, _, secret in chosen]


def test_every_planted_secret_is_found_when_not_encoded() -> None:
    """The property below relies on the redactor finding each planted secret in plain text."""
    redactor = Redactor()
    for name, value, secret in PLANTED:
        assert secret not in str(redactor.redact_obj({name: value})), name


@settings(max_examples=150)
@given(case=planted_queries())
def test_property_no_planted_secret_survives_any_percent_encoding(case: tuple[str, list[str]]) -> None:
    query, secrets = case
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        for json_lines in (True, False):
            stream = io.StringIO()
            configure_logging(stream=stream, json=json_lines, uvicorn=False)
            serve_one(AccessLogMiddleware(hello), http_scope("/search", query.encode("latin-1")))
            (line,) = access_lines(stream, json_lines)
            for secret in secrets:
                assert secret not in line, (query, line)
                assert secret not in unquote_plus(line), (query, line)
    finally:
        root.handlers[:], root.level = saved


# -- defect 2: redact what the JSON formatter writes ------------------------------------------


@dataclass
class Login:
    user: str
    password: str = field(repr=False)  # str() hides it; dataclasses.asdict() does not


class Dsn(enum.Enum):
    PRIMARY = "postgres://app:hunter2@db.internal/app"  # str() is "Dsn.PRIMARY"; JSON writes .value


class Contact(enum.Enum):
    OWNER = "alice@example.com"


def log_and_read(
    configure: Callable[[bool], io.StringIO], json_lines: bool, *args: Any, **kwargs: Any
) -> str:
    stream = configure(json_lines)
    logging.getLogger("app.issue12").warning(*args, **kwargs)
    return stream.getvalue()


@FORMATS
def test_a_dataclass_is_redacted_as_written_hidden_repr_fields_included(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    text = log_and_read(output, json_lines, "login", extra={"login": Login("bob", "hunter2")})
    assert "hunter2" not in text
    if json_lines:
        assert json.loads(text)["login"] == {"user": "bob", "password": "[REDACTED:secret]"}


@FORMATS
def test_an_enum_is_redacted_by_its_value(output: Callable[[bool], io.StringIO], json_lines: bool) -> None:
    text = log_and_read(output, json_lines, "connect", extra={"dsn": Dsn.PRIMARY, "owner": Contact.OWNER})
    assert "hunter2" not in text and "alice@example.com" not in text


@FORMATS
def test_header_lists_count_as_name_value_pairs(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    headers = [
        ("x-api-key", "k3y-v4lue-9f8e7d"),
        ("accept", "text/html"),
        ["Authorization", "Basic dXNlcjpwYXNz"],
    ]
    text = log_and_read(output, json_lines, "upstream call", extra={"headers": headers})
    assert "k3y-v4lue-9f8e7d" not in text and "dXNlcjpwYXNz" not in text
    assert "text/html" in text
    if json_lines:
        assert json.loads(text)["headers"][0] == ["x-api-key", "[REDACTED:secret]"]


@FORMATS
def test_objects_nested_in_a_dict_message_are_redacted_as_written(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    message = {"event": "login", "who": [Login("bob", "hunter2")], "dsn": {"db": Dsn.PRIMARY}}
    text = log_and_read(output, json_lines, message)
    assert "hunter2" not in text


def test_redact_obj_gives_the_written_form_and_leaves_clean_enums_alone() -> None:
    redactor = Redactor()

    class Plain(enum.Enum):
        A = "a"

    assert redactor.redact_obj(Login("bob", "pw")) == {"user": "bob", "password": "[REDACTED:secret]"}
    assert redactor.redact_obj(Plain.A) is Plain.A
    assert redactor.redact_obj(Contact.OWNER) == "[REDACTED:email]"
    assert redactor.redact_obj([(b"cookie", b"sid=1")]) == [(b"cookie", "[REDACTED:secret]")]
    assert redactor.redact_obj(("x-api-key", "")) == ("x-api-key", "")  # nothing to hide
    once = redactor.redact_obj([("ghp_" + "0" * 36, [])])
    assert redactor.redact_obj(once) == once


# -- defect 3: the access line goes through RedactingFilter for what it did not vet -----------


@FORMATS
def test_fields_added_by_a_record_factory_are_redacted_on_access_lines(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.user = "alice@example.com"
        return record

    stream = output(json_lines)
    logging.setLogRecordFactory(factory)
    serve_one(AccessLogMiddleware(hello), http_scope("/"))
    (line,) = access_lines(stream, json_lines)
    assert "alice@example.com" not in line and "[REDACTED:email]" in line


@FORMATS
def test_fields_added_or_replaced_by_a_user_filter_are_redacted_on_access_lines(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    def enrich(record: logging.LogRecord) -> bool:
        record.user_agent = "tester alice@example.com"  # replaces a field the access log vetted
        record.tenant = "owner bob@example.com"  # adds one
        return True

    stream = output(json_lines)
    logging.getLogger(ACCESS).addFilter(enrich)
    serve_one(AccessLogMiddleware(hello), http_scope("/"))
    (line,) = access_lines(stream, json_lines)
    assert "alice@example.com" not in line and "bob@example.com" not in line


# -- defect 4: text lines escape every control character ---------------------------------------

CONTROLS = {
    "\x1b": "\\x1b",  # ESC: terminal escape sequences
    "\x0b": "\\x0b",  # VT
    "\x0c": "\\x0c",  # FF
    "\x85": "\\x85",  # NEL
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    "\x7f": "\\x7f",
    "\x00": "\\x00",
    "\x9b": "\\x9b",  # CSI, the one-byte ESC [
    "\u202e": "\\u202e",  # right-to-left override
    "\r": "\\r",
    "\n": "\\n",
}


@pytest.mark.parametrize("char", list(CONTROLS), ids=[repr(c) for c in CONTROLS])
def test_text_lines_escape_control_characters_everywhere(
    output: Callable[[bool], io.StringIO], char: str
) -> None:
    stream = output(False)
    log = logging.getLogger("app.issue12")
    log.warning("user said %s", f"hi{char}[31mFORGED INFO line")
    log.warning("extra", extra={"note": f"a{char}b"})
    try:
        raise ValueError(f"bad{char}input")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    if char != "\n":  # "\n" ends each line; the count of record starts below checks it
        assert char not in text
    assert CONTROLS[char] in text
    # Three records: three lines that start a record, whatever a reader counts as a line end.
    starts = [line for line in text.splitlines() if not line.startswith("    ")]
    assert len(starts) == 3, text


def test_text_access_line_escapes_a_user_agent_with_terminal_codes(
    output: Callable[[bool], io.StringIO],
) -> None:
    stream = output(False)
    agent = b"curl\x1b]0;pwned\x07\x1b[2J\x85next"
    serve_one(AccessLogMiddleware(hello), http_scope("/", headers=[(b"user-agent", agent)]))
    (line,) = access_lines(stream, False)
    assert "\x1b" not in line and "\x07" not in line and "\x85" not in line
    assert "user_agent=curl\\x1b]0;pwned\\x07\\x1b[2J\\x85next" in line


def test_json_lines_have_no_raw_unicode_line_separators(output: Callable[[bool], io.StringIO]) -> None:
    stream = output(True)
    logging.getLogger("app.issue12").warning("a\u2028b\u2029c\x85d")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "a\u2028b\u2029c\x85d"


# -- defect 12: a request cut at drain is logged with the 503 it got ---------------------------


class Lifespan:
    """Drives an app's ASGI lifespan from a task."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: list[Message] = []
        self.from_app: list[Message] = []
        self.wake = anyio.Event()

    async def run(self) -> None:
        async def receive() -> Message:
            while not self.to_app:
                await self.wake.wait()
                self.wake = anyio.Event()
            return self.to_app.pop(0)

        async def send(message: Message) -> None:
            self.from_app.append(message)

        await self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    async def say(self, kind: str) -> None:
        self.to_app.append({"type": f"lifespan.{kind}"})
        self.wake.set()
        with anyio.fail_after(10):
            while not any(m["type"] == f"lifespan.{kind}.complete" for m in self.from_app):
                await anyio.sleep(0.01)


async def call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@FORMATS
@BACKENDS
@pytest.mark.anyio
async def test_request_cut_at_drain_is_logged_with_the_503_the_client_got(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    entered = anyio.Event()

    async def forever(request: Request) -> Response:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    app = Starlette(routes=[Route("/forever", forever)])
    stack = HealthProbeMiddleware(AccessLogMiddleware(app), drain_timeout=0.1, shutdown_signals=[])
    stream = output(json_lines)
    life = Lifespan(stack)
    answers: list[list[Message]] = []

    async def request() -> None:
        answers.append(await call(stack, http_scope("/forever")))

    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("startup")
        group.start_soon(request)
        with anyio.fail_after(10):
            await entered.wait()
        await life.say("shutdown")
    assert answers[0][0]["status"] == 503
    (line,) = access_lines(stream, json_lines)
    if json_lines:
        fields = json.loads(line)
        assert fields["status"] == 503 and fields["drain_cut"] is True and "disconnected" not in fields
    else:
        assert "GET /forever 503" in line and "drain_cut=True" in line and "disconnected" not in line


@BACKENDS
@pytest.mark.anyio
async def test_a_response_started_before_the_drain_cut_logs_its_own_status(
    output: Callable[[bool], io.StringIO],
) -> None:
    started = anyio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        started.set()
        await anyio.sleep_forever()

    stack = HealthProbeMiddleware(AccessLogMiddleware(streaming), drain_timeout=0.1, shutdown_signals=[])
    stream = output(True)
    life = Lifespan(stack)
    async with anyio.create_task_group() as group:
        group.start_soon(life.run)
        await life.say("startup")
        group.start_soon(call, stack, http_scope("/stream"))
        with anyio.fail_after(10):
            await started.wait()
        await life.say("shutdown")
    (line,) = access_lines(stream, True)
    fields = json.loads(line)
    assert (fields["status"], fields["response_bytes"], fields["drain_cut"]) == (200, 4, True)


@BACKENDS
@pytest.mark.anyio
async def test_a_cancellation_that_is_not_the_drain_is_not_called_a_drain_cut(
    output: Callable[[bool], io.StringIO],
) -> None:
    entered = anyio.Event()

    async def hang(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await anyio.sleep_forever()

    stream = output(True)
    async with anyio.create_task_group() as group:
        group.start_soon(call, AccessLogMiddleware(hang), http_scope("/"))
        await entered.wait()
        group.cancel_scope.cancel()
    fields = json.loads(access_lines(stream, True)[0])
    assert fields["status"] == 499 and fields["cancelled"] is True and "drain_cut" not in fields


DRAIN_APP = """
import os
from pathlib import Path
import anyio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
import hardenkit as hk

hk.configure_logging(stream=open(os.environ["ACCESS_LOG_FILE"], "a", buffering=1))

async def forever(request):
    Path("in-flight").write_text("yes")
    await anyio.sleep(60)
    return PlainTextResponse("too late")

app = Starlette(routes=[Route("/forever", forever)])
kit = hk.Kit().register(hk.HealthProbeMiddleware, shutdown_delay=0, drain_timeout=0.5)
kit.register(hk.AccessLogMiddleware).register(hk.HeaderContractMiddleware).install(app)
"""


@pytest.mark.slow
def test_real_uvicorn_sigterm_cut_is_logged_as_the_503_sent(tmp_path: Path) -> None:
    (tmp_path / "drain_app.py").write_text(textwrap.dedent(DRAIN_APP), encoding="utf-8")
    log_file = tmp_path / "access.log"
    answers: list[httpx2.Response] = []
    env = {"ACCESS_LOG_FILE": str(log_file)}
    with uvicorn_server("drain_app:app", env=env, cwd=tmp_path, extra_args=("--app-dir", str(tmp_path))) as (
        base,
        proc,
    ):
        worker = threading.Thread(target=lambda: answers.append(httpx2.get(f"{base}/forever", timeout=30)))
        worker.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "in-flight").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        proc.wait(timeout=30)
    assert answers and answers[0].status_code == 503
    lines = [json.loads(text) for text in log_file.read_text(encoding="utf-8").splitlines() if text.strip()]
    (line,) = [line for line in lines if line.get("logger") == ACCESS]
    assert line["status"] == 503 and line["drain_cut"] is True and "disconnected" not in line
    assert line["request_id"]  # the 503 itself is sent outside the header contract (health's, not ours)


# -- issue 11 defect 2: exclusions match the path the app routes on ----------------------------


def test_exclusions_and_kit_paths_match_the_route_path_under_root_path(
    output: Callable[[bool], io.StringIO],
) -> None:
    stream = output(True)
    wiring = Wiring()
    wiring.answer_paths("/livez", owner="health")
    middleware = AccessLogMiddleware(hello, exclude_paths=["/metrics"], kit=wiring)
    for path in ("/api/metrics", "/api/livez", "/api/orders"):
        serve_one(middleware, http_scope(path, root_path="/api"))
    lines = [json.loads(line) for line in access_lines(stream, True)]
    assert [line["path"] for line in lines] == ["/api/orders"]  # logged in full, root_path included


def test_a_kit_installed_access_log_matches_exclusions_under_root_path(
    output: Callable[[bool], io.StringIO],
) -> None:
    async def orders(request: Request) -> Response:
        return PlainTextResponse("orders")

    stream = output(True)
    app = Starlette(routes=[Route("/orders", orders)])
    kit = Kit().register(AccessLogMiddleware, exclude_paths=["/internal"]).register(HeaderContractMiddleware)
    wrapped = kit.install(app)
    serve_one(wrapped, http_scope("/api/internal", root_path="/api"))
    serve_one(wrapped, http_scope("/api/orders", root_path="/api"))
    assert [json.loads(line)["path"] for line in access_lines(stream, True)] == ["/api/orders"]


# -- defect 1 beyond our own access line: any log line that carries a URL ----------------------


@FORMATS
def test_url_encoded_secrets_in_any_log_line_are_redacted(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    stream = output(json_lines)
    # uvicorn's own access line, and an HTTP client's request line, carry the raw target.
    target = "/login?email=alice%40example.com&q=4111+1111+1111+1111&pass%77ord=hunter2"
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", target, "1.1", 200
    )
    logging.getLogger("app.client").info("calling", extra={"url": f"https://api.example.com{target}"})
    logging.getLogger("app.plain").info("50%% done, ratio a+b=c, value=%s", "%41")
    text = stream.getvalue()
    for secret in ("alice", "4111", "hunter2"):
        assert secret not in text
    assert "50% done, ratio a+b=c, value=%41" in text  # nothing to hide: left as it was


ENCODED_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
import hardenkit as hk

hk.configure_logging(stream=open(os.environ["ACCESS_LOG_FILE"], "a", buffering=1))

async def index(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/{path:path}", index)])
hk.Kit().register(hk.AccessLogMiddleware).register(hk.HeaderContractMiddleware).install(app)
"""


@pytest.mark.slow
def test_real_uvicorn_logs_no_url_encoded_secret_in_either_access_log(tmp_path: Path) -> None:
    (tmp_path / "encoded_app.py").write_text(textwrap.dedent(ENCODED_APP), encoding="utf-8")
    log_file = tmp_path / "access.log"
    env = {"ACCESS_LOG_FILE": str(log_file)}
    args = ("--app-dir", str(tmp_path), "--log-level", "info")
    with uvicorn_server("encoded_app:app", env=env, cwd=tmp_path, extra_args=args) as (base, _):
        # httpx sends the query as given: the encodings the issue lists, as clients send them.
        for query in [q for q, _ in ISSUE_QUERIES]:
            assert httpx2.get(f"{base}/users/alice%40example.com?{query}", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = log_file.read_text(encoding="utf-8") if log_file.exists() else ""
            loggers = [json.loads(line)["logger"] for line in text.splitlines() if line.strip()]
            if loggers.count(ACCESS) >= 5 and loggers.count("uvicorn.access") >= 5:
                break
            time.sleep(0.05)
    assert loggers.count(ACCESS) == 5 and loggers.count("uvicorn.access") == 5, text
    for secret in ("alice", "hunter2", "4111"):
        assert secret not in text


@FORMATS
def test_url_encoded_secrets_in_an_exception_are_redacted(
    output: Callable[[bool], io.StringIO], json_lines: bool
) -> None:
    stream = output(json_lines)
    try:
        raise RuntimeError("401 for url 'https://api.example.com/v1?email=alice%40example.com'")
    except RuntimeError:
        logging.getLogger("app.client").exception("call failed")
    text = stream.getvalue()
    assert "alice" not in text and "[REDACTED:email]" in text


def test_access_records_still_pickle_for_socket_and_queue_handlers(
    output: Callable[[bool], io.StringIO],
) -> None:
    """What the filter trusts travels beside the record, never on it (a Redactor does not pickle)."""
    import logging.handlers
    import pickle

    pickled: list[dict[str, Any]] = []

    class Pickling(logging.handlers.SocketHandler):
        def emit(self, record: logging.LogRecord) -> None:
            pickled.append(pickle.loads(self.makePickle(record)[4:]))

    stream = output(True)
    logging.getLogger().addHandler(Pickling("127.0.0.1", 9))  # never connects: emit is replaced
    serve_one(AccessLogMiddleware(hello), http_scope("/", b"email=alice%40example.com"))
    (line,) = access_lines(stream, True)
    (shipped,) = [entry for entry in pickled if entry["name"] == ACCESS]
    assert shipped["query"] == json.loads(line)["query"] == "email=[REDACTED:email]"
