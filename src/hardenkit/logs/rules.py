"""The rule type and the rules for personal data and generic credentials, with the checks that confirm a match.

Every pattern is written in the common subset of Python's ``re`` and RE2 (see
:mod:`.engine`). Provider token formats live in :mod:`.providers`, key=value
contexts in :mod:`.context`; :mod:`.catalog` puts the table together.
Standard library only.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import RedactionEngine

from .validators import _IBAN_LENGTHS, _card_brand_ok, iban_ok, luhn_ok, ssn_ok

PLACEHOLDER_ERROR = "[REDACTED:error]"
_MARK = "[REDACTED"


def re2_available() -> bool:
    """True when the optional google-re2 engine can be imported."""
    try:
        import re2  # noqa: F401
    except ImportError:
        return False
    return True


# -- checks -------------------------------------------------------------------------


_FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "css", "map", "py"})


# -- rules --------------------------------------------------------------------------

_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_TOKEN_CHARS = _WORD | {"-"}
_B64 = _ALNUM | {"+", "/"}
_DIGITS = frozenset("0123456789")
_KEY_CHARS = _WORD | {"-", "."}
_EMAIL_LOCAL = _ALNUM | set("._%+-")

# Verdict of a rule's check: None (not a secret) or (category, start, end) of the
# text to replace.
Verdict = tuple[str, int, int] | None
Check = Callable[[str, Any, "RedactionEngine"], Verdict]


@dataclass(frozen=True)
class Rule:
    name: str
    #: Categories this rule can produce (a rule is skipped when none is enabled).
    categories: tuple[str, ...]
    pattern: str
    #: Any of these literals must be in the text (lower-cased text when ``icase``)
    #: for the rule to run on the pure-Python path; () means "always run".
    literals: tuple[str, ...] = ()
    icase: bool = False
    #: A small RE2 regex that any match must contain (the prefilter); defaults to
    #: the literals or to the pattern itself.
    pre: str | None = None
    check: Check | None = None
    group: int = 0
    #: Characters that may not come right before / after the masked value.
    before: frozenset[str] = frozenset()
    after: frozenset[str] = frozenset()
    #: A deterministic regex that extends the value past the pattern's bounded end.
    extend: str | None = None
    #: Python's re only: refuse to start a match right after a ``before`` character.
    #: Sound only when every character of the leading run is itself in ``before``:
    #: RE2 then rejects such matches anyway (and resumes after them), so both engines
    #: give the same answers, and re stops retrying at every position inside long runs.
    guard: bool = False
    #: The check also sees matches that start right after a ``before`` character (it
    #: looks for a value inside them: a card after ``ref42 ``).
    inside: bool = False
    #: Run the prefilter on its own instead of in the shared RE2::Set: counted runs in it
    #: would multiply the set's DFA states on text full of random tokens.
    solo: bool = False


def _plain(category: str) -> Check:
    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span()
        return category, start, end

    return check


_TOKEN_BEFORE = re.compile(r"\[REDACTED:[a-z0-9_]{1,40}(?::[^\]\s]{1,20})?\]$")


def _bounded(text: str, start: int, end: int, rule: Rule) -> bool:
    """Boundary checks. A redaction token next to the value counts as part of the same
    word: the text it replaced did, and a second pass must not see a new boundary there
    (redaction stays idempotent)."""
    if rule.before and start > 0:
        previous = text[start - 1]
        if previous in rule.before:
            return False
        if previous == "]" and _TOKEN_BEFORE.search(text, max(0, start - 80), start):
            return False
    if rule.after and end < len(text):
        following = text[end]
        if following in rule.after:
            return False
        if following == "[" and text.startswith(_MARK, end):
            return False
    return True


# Checks ---------------------------------------------------------------------------


def _check_card(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    separators = {char for char in value if char in " -"}
    if len(separators) > 1:
        return None
    if start > 0 and text[start - 1] in _WORD:
        # The match starts inside a word ("ref42 4111 ..."): a card can only begin at one
        # of its later groups.
        if not separators:
            return None
        (sep,) = separators
        return _card_in_run(text, text.index(sep, start) + 1, end, separators)
    run_on = (start >= 2 and text[start - 1] in " -." and text[start - 2] in _DIGITS) or (
        end + 1 < len(text) and text[end] in " -." and text[end + 1] in _DIGITS
    )
    if not run_on:
        digits = value.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_ok(digits):
            return "card", start, end
        if not separators:
            return None
    # The digits go on (a card next to an expiry date, a quantity, an order number):
    # look for a card made of whole groups of the run.
    return _card_in_run(text, start, end, separators)


_CARD_REACH = 28  # how far a run is followed past the regex match: a 19-digit card and its separators
_THREE_DIGITS = re.compile(r"[0-9]{3}")
_CARD_RUNS = {" ": re.compile(r"[0-9]+(?: [0-9]+)*"), "-": re.compile(r"[0-9]+(?:-[0-9]+)*")}


def _card_in_run(text: str, start: int, end: int, separators: set[str]) -> Verdict:
    """A card at the start of a longer separated digit run, or after some of its groups: one
    group of 13-19 digits, or several groups of 3-6 digits each (how cards are printed),
    issuer and Luhn checked. The run is followed at most ``_CARD_REACH`` characters past
    the match (the next match of the same run starts there), so the work stays linear."""
    if separators:
        (sep,) = separators
    elif end + 1 < len(text) and text[end + 1] in _DIGITS:
        sep = text[end]
    else:
        return None  # the run goes on only to the left: the previous match looked at it
    run = _CARD_RUNS.get(sep)
    if run is None:
        return None
    found = run.match(text, start, min(len(text), end + _CARD_REACH))
    if found is None:  # pragma: no cover - the regex match starts with a digit
        return None
    stop = found.end()
    if stop < len(text) and text[stop] in _DIGITS:  # cut by the reach: drop the partial group
        stop = text.rfind(sep, start, stop)
    if _THREE_DIGITS.search(text, start, stop) is None:  # cards are printed in groups of 3+
        return None
    groups: list[tuple[int, int]] = []
    cursor = start
    for piece in text[start:stop].split(sep):
        groups.append((cursor, cursor + len(piece)))
        cursor += len(piece) + 1
    for first in range(len(groups)):
        if groups[first][0] >= end:
            break  # a card starting further on belongs to the next match of the run
        if text[groups[first][0]] not in "23456":  # no card network starts otherwise
            continue
        count = 0
        for last in range(first, len(groups)):
            width = groups[last][1] - groups[last][0]
            if last == first and width >= 13:
                candidate: tuple[int, int] | None = groups[first]  # a card glued to other groups
            elif 3 <= width <= 6:
                count += width
                candidate = (groups[first][0], groups[last][1]) if count >= 13 else None
            else:
                break
            if candidate is not None:
                digits = text[candidate[0] : candidate[1]].replace(sep, "")
                if len(digits) <= 19 and _card_brand_ok(digits) and luhn_ok(digits):
                    return "card", candidate[0], candidate[1]
                if count == 0 or count >= 19:
                    break
    return None


def _check_iban(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    expected = _IBAN_LENGTHS.get(value[:2])
    if expected is None:
        return None
    count = 0
    stop = start
    for index, char in enumerate(value):
        if char != " ":
            count += 1
        if count == expected:
            stop = start + index + 1
            break
    else:
        return None
    if stop < len(text) and text[stop] in _ALNUM:
        return None
    if not iban_ok(text[start:stop].replace(" ", "")):
        return None
    return "iban", start, stop


def _check_ssn(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    return ("ssn", start, end) if ssn_ok(text[start:end]) else None


def _check_phone(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    digits = sum(char in _DIGITS for char in value)
    if not 8 <= digits <= 15:
        return None
    if start >= 2 and text[start - 1] in " -." and text[start - 2] in _DIGITS:
        return None
    if end + 1 < len(text) and text[end] in " -." and text[end + 1] in _DIGITS:
        return None
    return "phone", start, end


def _check_email(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    tld = value.rsplit(".", 1)[1]
    if not tld.isalpha() or len(tld) < 2 or tld.lower() in _FILE_TLDS:
        return None
    local = value.split("@", 1)[0]
    if local.startswith(".") or local.endswith("."):
        return None
    return "email", start, end


def _check_ipv4(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    if start >= 1 and text[start - 1] == ".":
        return None
    if end + 1 < len(text) and text[end] == "." and text[end + 1] in _DIGITS:
        return None
    if any(int(part) > 255 for part in text[start:end].split(".")):
        return None
    return "ip", start, end


def _check_ipv6(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    if value.count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return "ip", start, end


def _check_mixed(category: str, *, need_digit: bool = True) -> Check:
    """Tokens with a fixed prefix whose body must look random (letters and digits)."""

    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span()
        value = text[start:end]
        if need_digit and not any(char in _DIGITS for char in value):
            return None
        if not (any(char.isupper() for char in value) and any(char.islower() for char in value)):
            return None
        return category, start, end

    return check


def _check_aws_secret(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span()
    value = text[start:end]
    if not (
        any(char.isupper() for char in value)
        and any(char.islower() for char in value)
        and any(char in _DIGITS for char in value)
    ):
        return None
    # Without "/" or "+" a 40-character token could be anything (a request id): only
    # take it after an AWS marker on the same line.
    if _AWS_SEPARATED.search(value) is None and not _aws_marker_before(text, start):
        return None
    return "aws_secret", start, end


_AWS_MARKER = re.compile(r"aws|akia|asia", re.IGNORECASE)
# A "/" or "+" next to a run of 8 letters and digits: how base64 secret keys look, not paths.
_AWS_SEPARATED_RUN = r"[A-Za-z0-9]{8}[/+]|[/+][A-Za-z0-9]{8}"
_AWS_SEPARATED = re.compile(_AWS_SEPARATED_RUN)
_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]{1,40}(?::[^\]\s]{1,20})?\]")
_NEWLINE = re.compile("\n")
_aws_markers = threading.local()


def _aws_marker_before(text: str, start: int) -> bool:
    """True when an AWS marker stands earlier on the line of ``start``.

    The whole line counts, not a window of N characters: redaction shortens the
    text between a marker and a later token, so a distance rule would redact more
    on a second pass (redact must be idempotent). Markers inside placeholders
    ("[REDACTED:aws_secret]") do not count, for the same reason. Positions are
    computed once per text, so many candidates on one long line stay linear.
    """
    cache = getattr(_aws_markers, "entry", None)
    if cache is None or cache[0] is not text:
        hidden = [match.span() for match in _PLACEHOLDER.finditer(text)]
        markers = []
        for match in _AWS_MARKER.finditer(text):
            at = match.start()
            index = bisect.bisect_right(hidden, (at, len(text) + 1)) - 1
            if index < 0 or not (hidden[index][0] <= at < hidden[index][1]):
                markers.append(at)
        newlines = [match.start() for match in _NEWLINE.finditer(text)] if "\n" in text else []
        cache = (text, markers, newlines)
        _aws_markers.entry = cache
    _, markers, newlines = cache
    index = bisect.bisect_left(markers, start) - 1
    if index < 0:
        return False
    return bisect.bisect_left(newlines, markers[index]) == bisect.bisect_left(newlines, start)


def _check_bearer(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span(2)
    value = text[start:end]
    if len(value) < 8 or "=" in value.rstrip("=") or (value.endswith("=") and text[end : end + 1].isalnum()):
        return None  # too short, or "Bearer expires_in=3600": a key=value pair, not a credential
    # "Basic information" is English, "Basic dXNlcjpwYXNz" is a credential.
    looks_random = (
        any(char in _DIGITS for char in value)
        or any(char in "._~+/=-" for char in value)
        or (any(char.isupper() for char in value) and any(char.islower() for char in value))
    )
    return ("authorization", start, end) if looks_random else None


_DB_SCHEMES = frozenset(
    {
        "postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv", "redis", "rediss",
        "amqp", "amqps", "mssql", "sqlserver", "oracle", "cockroachdb", "clickhouse", "cassandra",
        "couchdb", "neo4j", "db2", "snowflake", "memcached", "elasticsearch", "sqlite",
    }
)  # fmt: skip
_SCHEME_CHARS = _ALNUM | set("+.-")


def _check_url_password(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    if _MARK in text[m.start() : m.end()]:
        return None  # parts already redacted by a later rule: a second pass must not see a new password
    scheme_end = m.span()[0]
    scheme_start = scheme_end
    while scheme_start > 0 and scheme_end - scheme_start < 32 and text[scheme_start - 1] in _SCHEME_CHARS:
        scheme_start -= 1
    scheme = text[scheme_start:scheme_end].lower()
    if not scheme or not scheme[0].isalpha():
        return None
    base = scheme.split("+")[0]
    category = "db_connection" if scheme in _DB_SCHEMES or base in _DB_SCHEMES else "url_password"
    start, end = m.span(2)
    return category, start, end


_HEADER_REFERENCE = re.compile(
    r"(?:[A-Za-z]{2,12}[ \t]+)?(?:\{\{|\$\{|\$\(|%\(|<%|\$[A-Za-z_][A-Za-z0-9_]*(?:[\"' \t\r\n]|$)|<[A-Za-z_][A-Za-z0-9_ \-]*>)"
)


def _check_header(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    key_start = m.span(1)[0]
    if key_start > 0 and text[key_start - 1] in _KEY_CHARS:
        return None
    name = (m.group(1) or "").lower()
    category = "cookie" if "cookie" in name else "authorization"
    for group in (3, 4, 5):
        value_start, value_end = m.span(group)
        if value_start >= 0:
            if _HEADER_REFERENCE.match(text, value_start, min(len(text), value_start + 200)):
                return None  # Authorization: Bearer $TOKEN, {{ token }}: a reference, not a value
            if value_end == m.end():
                tail = _VALUE_TAILS[group - 3] if group < 5 else _LINE_TAIL
                value_end = _tail_end(tail, text, value_end)
            return category, value_start, value_end
    return None  # pragma: no cover - the pattern always sets one of the three groups


def _check_group1(category: str) -> Check:
    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span(1)
        return category, start, end

    return check


# Deterministic tails for values longer than the patterns' bounded repetition.
_VALUE_TAILS = (
    re.compile(r"(?:[^\"\\\r\n]|\\.)*"),
    re.compile(r"[^'\r\n]*"),
    re.compile(r"[^ \t\r\n\f\v\"',;&)}\]<>]*"),
)
_LINE_TAIL = re.compile(r"[^\r\n]*")


def _tail_end(tail: re.Pattern[str], text: str, pos: int) -> int:
    grown = tail.match(text, pos)
    return pos if grown is None else grown.end()


_QUOTED_VALUE = r"\"((?:[^\"\\\r\n]|\\.){0,100})|'([^'\r\n]{0,100})"

#: The rules that are not provider token formats (see providers.py) or key contexts (context.py).
BASE_RULES: tuple[Rule, ...] = (
    Rule(
        "jwt",
        ("jwt",),
        r"eyJ[A-Za-z0-9_\-]{5,1000}\.eyJ[A-Za-z0-9_\-]{5}",
        literals=("eyJ",),
        pre=r"eyJ[A-Za-z0-9_\-]{5}",
        check=_plain("jwt"),
        before=frozenset(_TOKEN_CHARS),
        extend=r"[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)?",
    ),
    Rule(
        "aws_key",
        ("aws_key",),
        r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}",
        literals=(
            "AKIA",
            "ASIA",
            "ABIA",
            "ACCA",
            "AGPA",
            "AIDA",
            "AIPA",
            "ANPA",
            "ANVA",
            "AROA",
            "APKA",
            "ASCA",
        ),
        check=_plain("aws_key"),
        before=_ALNUM,
        after=_ALNUM,
        guard=True,
    ),
    Rule(
        "azure_key",
        ("azure_key",),
        r"(?i)(?:accountkey|sharedaccesskey)[ \t]*=[ \t]*([A-Za-z0-9+/]{20,1000}={0,2})",
        literals=("accountkey", "sharedaccesskey"),
        icase=True,
        check=_check_group1("azure_key"),
    ),
    Rule(
        "azure_sas",
        ("azure_key",),
        r"[?&]sig=([A-Za-z0-9%+/=]{30,500})",
        literals=("sig=",),
        check=_check_group1("azure_key"),
    ),
    Rule(
        "azure_key_bare",
        ("azure_key",),
        r"[A-Za-z0-9+/]{86}==",
        literals=("==",),
        check=_check_mixed("azure_key"),
        before=frozenset(_B64),
        after=frozenset(_B64 | {"="}),
        guard=True,
    ),
    Rule(
        "header",
        ("authorization", "cookie"),
        r"(?i)(proxy-authorization|authorization|set-cookie|cookie)([\"']?[ \t]*:[ \t]*)"
        r"(?:" + _QUOTED_VALUE + r"|([^\"' \t\r\n][^\r\n]{0,100}))",
        literals=("authorization", "cookie"),
        icase=True,
        check=_check_header,
        extend=None,
    ),
    Rule(
        "bearer",
        ("authorization",),
        r"(?i)(bearer|basic)[ \t]+([A-Za-z0-9._~+/\-]{6,1000}=*)",
        literals=("bearer", "basic"),
        icase=True,
        check=_check_bearer,
        before=_ALNUM,
        extend=r"[A-Za-z0-9._~+/\-]*=*",
    ),
    Rule(
        "url_password",
        ("url_password", "db_connection"),
        r"://([^ \t\r\n:/@'\"]{0,256}):([^ \t\r\n/'\"]{1,256})@",
        literals=("://",),
        check=_check_url_password,
    ),
    Rule(
        "aws_secret",
        ("aws_secret",),
        r"[A-Za-z0-9/+]{40}",
        # Cheap for RE2::Set (a run of 40 is not): what the check demands of a match.
        pre=_AWS_SEPARATED_RUN + r"|(?i:aws|akia|asia)",
        solo=True,
        check=_check_aws_secret,
        before=frozenset(_B64),
        after=frozenset(_B64 | {"="}),
        guard=True,
    ),
    Rule(
        "card",
        ("card",),
        r"[0-9](?:[ \-]?[0-9]){12,18}",
        pre=r"[0-9](?:[ \-]?[0-9]){12}",
        check=_check_card,
        before=_WORD,
        after=_WORD,
        inside=True,
    ),
    Rule(
        "iban",
        ("iban",),
        r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
        pre=r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4}",
        check=_check_iban,
        before=_ALNUM,
    ),
    Rule(
        "ssn",
        ("ssn",),
        r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        check=_check_ssn,
        before=_TOKEN_CHARS,
        after=_TOKEN_CHARS,
        guard=True,
    ),
    Rule(
        "phone",
        ("phone",),
        r"\+[0-9]{1,3}[ .\-]?\([0-9]{1,4}\)[ .\-]?[0-9](?:[ .\-]?[0-9]){4,11}"
        r"|\+[0-9](?:[ .\-]?[0-9]){7,14}"
        r"|\([0-9]{3}\)[ .\-]?[0-9]{3}[ .\-][0-9]{4}"
        r"|[0-9]{3}[.\- ][0-9]{3}[.\- ][0-9]{4}",
        pre=r"\+[0-9]|\([0-9]{3}\)|[0-9]{3}[.\- ][0-9]{3}[.\- ][0-9]{4}",
        check=_check_phone,
        before=_WORD | {"+"},
        after=_WORD,
    ),
    Rule(
        "email",
        ("email",),
        r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}",
        literals=("@",),
        check=_check_email,
        before=frozenset(_EMAIL_LOCAL),
        after=frozenset(_ALNUM | {"-"}),
        guard=True,
    ),
    Rule(
        "ipv4",
        ("ip",),
        r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
        literals=(".",),
        check=_check_ipv4,
        before=_WORD,
        after=_WORD,
    ),
    Rule(
        "ipv6",
        ("ip",),
        r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{2,37}",
        literals=("::", ":"),
        pre=r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
        check=_check_ipv6,
        before=_WORD | {":"},
        after=_WORD | {":"},
    ),
)
