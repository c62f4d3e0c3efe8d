"""A request's path and query as the access log writes them (standard library only).

Clients percent-encode: httpx, requests and browser forms send
``email=alice%40example.com``, ``q=4111+1111+1111+1111``, ``pass%77ord=hunter2``.
The raw text holds no secret a redactor can see, yet the application, which
decodes it, gets an email, a card number, a password. So each query parameter is
decoded the way the application decodes it (``urllib.parse.parse_qsl``, which
Starlette uses: ``+`` is a space, ``%XX`` is UTF-8), redacted by name and value,
and, where something was hidden, written back percent-encoded: decoding the
logged query once gives what the application saw with its secrets replaced, and
no encoded form of a secret is left behind. Parameters are also looked at
through up to three more layers of percent-encoding, for applications that
decode twice. Parameters with nothing to hide are written as the client sent
them.

The path comes decoded from the server (``scope["path"]``): it is redacted the
same way and always written percent-encoded, like a request line.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from .redactor import Redactor

__all__ = ["MAX_TARGET", "encode_path", "has_secret_names", "redact_encoded", "redact_path", "redact_query"]

#: The longest path or query written (characters); longer ones are cut after redaction.
MAX_TARGET = 2048
# How much of a path or query is decoded and scanned; what lies beyond is dropped whole.
_SCAN_LIMIT = 4 * MAX_TARGET
_EXTRA_LAYERS = 3
# Left unescaped: the redaction markers ("[REDACTED:card:****1111]") and URL punctuation
# that carries no meaning inside a parameter. "&", "=", "+", "%" and "#" are always escaped.
_QUERY_SAFE = "!$'()*,/:;@[]~"
_PATH_SAFE = "!$&'()*+,/:;=@[]~"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\-~!$&'()*+,/:;=@\[\]]*\Z").match
_NAMES_WITH_VALUES = re.compile(r"(?:^|&)([^=&]+)=[^&]").findall
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}").search


def encode_path(path: str) -> str:
    """``path`` (decoded) written percent-encoded, cut to :data:`MAX_TARGET`."""
    if _PLAIN_PATH(path) is None:  # most paths have nothing to escape: skip quote()'s cost
        path = quote(path, safe=_PATH_SAFE, errors="surrogatepass")
    return path[:MAX_TARGET]


def redact_path(path: str, redactor: Redactor) -> str:
    """``scope["path"]`` redacted (through extra layers of encoding too), then encoded."""
    if len(path) > _SCAN_LIMIT:
        path = _bounded(path, "/")
    return encode_path(_redact_layers(path, redactor))


def has_secret_names(query: str, redactor: Redactor) -> bool:
    """True when a parameter of a raw ``query`` has a value under a secret name (``password=x``)."""
    # The redactor's prefilter need not know every secret name: ask about each name, at C speed.
    return any(map(redactor._engine.secret_key, _NAMES_WITH_VALUES(query)))


def redact_query(query: str, redactor: Redactor) -> str:
    """``scope["query_string"]`` (decoded as latin-1) as the access log writes it."""
    if len(query) > _SCAN_LIMIT:
        query = _bounded(query, "&")
    out: list[str] = []
    for part in query.split("&"):
        written = _redact_parameter(part, redactor) if part else None
        out.append(part if written is None else written)
    return "&".join(out)[:MAX_TARGET]


def redact_encoded(text: str, redactor: Redactor) -> str:
    """``text`` (already redacted) with the secrets its URL-encoded parts hide redacted too.

    For any log line that carries a URL (uvicorn's access log, an HTTP client's
    request log): when decoding ``%XX`` (and ``+`` in a query) reveals a secret,
    the decoded text, redacted, replaces it; otherwise ``text`` is returned as it is.
    """
    if ("%" not in text or _ESCAPE(text) is None) and not ("+" in text and "=" in text):
        return text
    decoded = text
    for _ in range(1 + _EXTRA_LAYERS):
        deeper = unquote_plus(decoded)
        if deeper == decoded:
            break
        decoded = deeper
        if redactor.might_contain(decoded):
            redacted = redactor.redact(decoded)
            if redacted != decoded:
                return redacted
    return text


def _redact_parameter(part: str, redactor: Redactor) -> str | None:
    """The encoded ``name=value`` to write in place of ``part``, or None when it hides nothing."""
    raw_name, eq, raw_value = part.partition("=")
    name, value = unquote_plus(raw_name), unquote_plus(raw_value)
    for _ in range(1 + _EXTRA_LAYERS):
        if value and redactor.is_secret_key(name):
            # As a mapping entry: a secret name hides its value whatever the value looks like.
            ((new_name, new_value),) = redactor.redact_obj({name: value}).items()
            return _encode(new_name) + eq + _encode(new_value)
        text = name + eq + value
        if redactor.might_contain(text):
            new_name, new_value = redactor.redact(name), redactor.redact(value)
            if new_name != name or new_value != value:
                return _encode(new_name) + eq + _encode(new_value)
            # A rule that needs the name and the value together ("password%3Dhunter2" decodes
            # to one name, "password=hunter2").
            redacted = redactor.redact(text)
            if redacted != text:
                return _encode(redacted, safe="=")
        if "%" not in text:
            return None
        deeper_name, deeper_value = unquote_plus(name), unquote_plus(value)
        if deeper_name == name and deeper_value == value:
            return None
        name, value = deeper_name, deeper_value
    return None


def _redact_layers(text: str, redactor: Redactor) -> str:
    """``text`` redacted; if that hides nothing, its decoded forms are tried too."""
    current = text
    for _ in range(1 + _EXTRA_LAYERS):
        if redactor.might_contain(current):
            redacted = redactor.redact(current)
            if redacted != current:
                return redacted
        if "%" not in current:
            break
        deeper = unquote(current)
        if deeper == current:
            break
        current = deeper
    return text


def _encode(text: str, safe: str = "") -> str:
    return quote_plus(text, safe=_QUERY_SAFE + safe, errors="surrogatepass")


def _bounded(text: str, separator: str) -> str:
    # Cut at the last separator inside the scan limit, so no parameter or segment is cut
    # in the middle (a secret cut in half is no longer recognised, and its half would show).
    head = text[:_SCAN_LIMIT]
    kept, found, _ = head.rpartition(separator)
    return kept if found else head
