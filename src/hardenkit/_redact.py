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

import bisect
import hashlib
import hmac
import importlib
import ipaddress
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from .errors import ConfigurationError

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "OPT_IN_CATEGORIES",
    "Engine",
    "Mode",
    "RedactionEngine",
    "is_secret_key",
    "re2_available",
]

Mode = Literal["mask", "hash", "partial"]
Engine = Literal["auto", "re2", "re"]

PLACEHOLDER_ERROR = "[REDACTED:error]"
_MARK = "[REDACTED"


class _Match(Protocol):
    def span(self, group: int = 0) -> tuple[int, int]: ...
    def group(self, group: int = 0) -> str | None: ...


class _Pattern(Protocol):
    def finditer(self, text: str) -> Iterator[Any]: ...


def re2_available() -> bool:
    """True when the optional google-re2 engine can be imported."""
    try:
        import re2  # noqa: F401
    except ImportError:
        return False
    return True


# -- key names ------------------------------------------------------------------------

#: Key names whose value is a secret whatever it looks like (compared on letters and
#: digits only, so ``api_key``, ``api-key`` and ``apiKey`` are the same name). A key
#: is secret when its last words are one of these names: ``db_password`` and
#: ``accessToken`` are, ``tokenizer`` and ``credit`` are not.
SECRET_KEY_NAMES: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "clientsecret",
    "authorization",
    "cookie",
    "setcookie",
    "session",
    "sessionid",
    "sessid",
    "passphrase",
    "credential",
    "credentials",
)

_KEY_NAME_RE = (
    r"password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|"
    r"client[_\-]?secret|proxy-authorization|authorization|set-cookie|cookie|session[_\-]?id|"
    r"session|sessid|passphrase|credentials?"
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_WORD_SPLIT = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[a-z0-9]+")


def _normalise_key(name: str) -> str:
    return _NON_ALNUM.sub("", name.lower())


def is_secret_key(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when ``name`` (a dict key, a ``key=value`` key) names a secret by its last words."""
    if not name or len(name) > 128:
        return False
    words = [word.lower() for word in _WORD_SPLIT.findall(name)]
    names = extra | _SECRET_NAMES
    # Try every suffix of whole words: "db_password" -> "password", "aws_secret_access_key"
    # -> "accesskey"; a name inside a word ("tokenizer") never matches.
    for index in range(len(words)):
        if "".join(words[index:]) in names:
            return True
    return False


_SECRET_NAMES = frozenset(SECRET_KEY_NAMES)


# -- checks -------------------------------------------------------------------------


_LUHN_DOUBLE = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    double = _LUHN_DOUBLE
    total = sum(map(int, digits[-1::-2])) + sum([double[char] for char in digits[-2::-2]])
    return total % 10 == 0


def _card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of the major networks (keeps epoch times and ids out)."""
    n = len(digits)
    two = int(digits[:2])
    three = int(digits[:3])
    four = int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or 644 <= three <= 649 or two == 65:
        return 16 <= n <= 19
    if 300 <= three <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19
    if 3528 <= four <= 3589 or two == 62:
        return 16 <= n <= 19
    if two in (50, 56, 57, 58, 67):
        return 12 <= n <= 19
    return False


_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def ssn_ok(value: str) -> bool:
    area, group, serial = value.split("-")
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


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
    if "/" not in value and "+" not in value and not _aws_marker_before(text, start):
        return None
    return "aws_secret", start, end


_AWS_MARKER = re.compile(r"aws|akia|asia", re.IGNORECASE)
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
    if len(value) < 8:
        return None
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


def _check_key_value(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    key_start, key_end = m.span(1)
    # The whole key: walk back over key characters (bounded).
    start = key_start
    while start > 0 and key_start - start < 64 and text[start - 1] in _KEY_CHARS:
        start -= 1
    if start > 0 and text[start - 1] in _KEY_CHARS:
        return None
    if not engine.secret_key(text[start:key_end]):
        return None
    for group in (3, 4, 5):
        value_start, value_end = m.span(group)
        if value_start >= 0:
            break
    else:  # pragma: no cover - the pattern always sets one of the three groups
        return None
    if value_end == m.end():
        value_end = _tail_end(_VALUE_TAILS[group - 3], text, value_end)
    if value_end == value_start:
        return None
    return "secret", value_start, value_end


def _check_header(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    key_start = m.span(1)[0]
    if key_start > 0 and text[key_start - 1] in _KEY_CHARS:
        return None
    name = (m.group(1) or "").lower()
    category = "cookie" if "cookie" in name else "authorization"
    for group in (3, 4, 5):
        value_start, value_end = m.span(group)
        if value_start >= 0:
            if value_end == m.end():
                tail = _VALUE_TAILS[group - 3] if group < 5 else _LINE_TAIL
                value_end = _tail_end(tail, text, value_end)
            return category, value_start, value_end
    return None  # pragma: no cover - the pattern always sets one of the three groups


def _check_slack_webhook(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    start, end = m.span(1)
    return "slack_webhook", start, end


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
_BARE_VALUE_CHARS = r"[^ \t\r\n\f\v\"',;&)}\]<>]"

RULES: tuple[Rule, ...] = (
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
        "github_token",
        ("github_token",),
        r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})",
        literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        check=_plain("github_token"),
        before=_ALNUM,
        after=_WORD,
    ),
    Rule(
        "gitlab_token",
        ("gitlab_token",),
        r"(?:glpat|glptt|gldt|glrt|glsoat|gloas)-[A-Za-z0-9_\-]{20,255}",
        literals=("glpat-", "glptt-", "gldt-", "glrt-", "glsoat-", "gloas-"),
        check=_plain("gitlab_token"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "slack_webhook",
        ("slack_webhook",),
        r"hooks\.slack\.com/((?:services|workflows|triggers)/[A-Za-z0-9/_\-]{10,500})",
        literals=("hooks.slack.com/",),
        check=_check_slack_webhook,
        extend=r"[A-Za-z0-9/_\-]*",
    ),
    Rule(
        "slack_token",
        ("slack_token",),
        r"xox[abposre]-[A-Za-z0-9\-]{10,255}",
        literals=("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-"),
        check=_plain("slack_token"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "stripe_key",
        ("stripe_key",),
        r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,255}|whsec_[A-Za-z0-9]{24,255}",
        literals=("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_"),
        check=_plain("stripe_key"),
        before=_ALNUM,
        after=_WORD,
    ),
    Rule(
        "google_api_key",
        ("google_api_key",),
        r"AIza[0-9A-Za-z_\-]{35}",
        literals=("AIza",),
        check=_plain("google_api_key"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "anthropic_key",
        ("anthropic_key",),
        r"sk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_\-]{20,500}",
        literals=("sk-ant-",),
        check=_plain("anthropic_key"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "openai_key",
        ("openai_key",),
        r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,500}",
        literals=("sk-",),
        check=_check_mixed("openai_key"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "npm_token",
        ("npm_token",),
        r"npm_[A-Za-z0-9]{36}",
        literals=("npm_",),
        check=_plain("npm_token"),
        before=_ALNUM,
        after=_WORD,
    ),
    Rule(
        "pypi_token",
        ("pypi_token",),
        r"pypi-AgE[A-Za-z0-9_\-]{40,1000}",
        literals=("pypi-AgE",),
        check=_plain("pypi_token"),
        before=_ALNUM,
        extend=r"[A-Za-z0-9_\-]*",
    ),
    Rule(
        "sendgrid_key",
        ("sendgrid_key",),
        r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        literals=("SG.",),
        check=_plain("sendgrid_key"),
        before=_ALNUM,
        after=_TOKEN_CHARS,
    ),
    Rule(
        "twilio_key",
        ("twilio_key",),
        r"SK[0-9a-fA-F]{32}",
        literals=("SK",),
        check=_plain("twilio_key"),
        before=_ALNUM,
        after=_ALNUM,
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
        "key_value",
        ("secret",),
        r"(?i)(" + _KEY_NAME_RE + r")([\"']?[ \t]*[:=][ \t]*)"
        r"(?:" + _QUOTED_VALUE + r"|(" + _BARE_VALUE_CHARS + r"{1,100}))",
        literals=(
            "pass",
            "pwd",
            "secret",
            "token",
            "authorization",
            "cookie",
            "sess",
            "credential",
            "apikey",
            "api_key",
            "api-key",
            "accesskey",
            "access_key",
            "access-key",
            "privatekey",
            "private_key",
            "private-key",
        ),  # fmt: skip
        icase=True,
        check=_check_key_value,
    ),
    Rule(
        "aws_secret",
        ("aws_secret",),
        r"[A-Za-z0-9/+]{40}",
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

#: Every built-in category, in the order rules run.
CATEGORIES: tuple[str, ...] = (
    "private_key",
    *dict.fromkeys(cat for rule in RULES for cat in rule.categories),
)
OPT_IN_CATEGORIES: frozenset[str] = frozenset({"ip"})
DEFAULT_CATEGORIES: frozenset[str] = frozenset(CATEGORIES) - OPT_IN_CATEGORIES

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    regex: _Pattern
    extend: re.Pattern[str] | None
    literals: tuple[str, ...]


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
    ) -> None:
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
        unknown_off = sorted(off - known - set(patterns or {}))
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
        rules = [rule for rule in RULES if self.categories.intersection(rule.categories)]
        if self.extra_keys:
            rules = [_with_extra_keys(rule, keys) if rule.name == "key_value" else rule for rule in rules]
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
            rules.append(
                Rule(
                    f"custom:{name}", (name,), pattern, check=_check_group1(name) if groups else _plain(name)
                )
            )
            self.categories |= {name}
            self.custom_patterns[name] = pattern

        self._pem = "private_key" in self.categories
        self._compiled: list[_Compiled] = []
        # Python-re twins of the rules, for text RE2 cannot take (lone surrogates).
        self._pure: list[_Compiled] = []
        self._key_cache: dict[str, bool] = {}
        self._set: Any = None
        self._set_index: list[int] = []  # set id -> index in _compiled
        self._always: list[int] = []  # rules the prefilter cannot vouch for
        for rule in rules:
            regex: _Pattern
            if re2_module is not None:
                try:
                    regex = re2_module.compile(rule.pattern)
                except re2_module.error:
                    # A custom pattern outside RE2's syntax (look-around...): Python's re.
                    regex = re.compile(rule.pattern)
            else:
                regex = re.compile(_sre_pattern(rule))
            literals = tuple(lit.lower() for lit in rule.literals) if rule.icase else rule.literals
            extend = re.compile(rule.extend) if rule.extend else None
            self._compiled.append(_Compiled(rule, regex, extend, literals))
            self._pure.append(_Compiled(rule, re.compile(_sre_pattern(rule)), extend, literals))
        if re2_module is not None:
            rset = re2_module.Set.SearchSet()
            for index, compiled in enumerate(self._compiled):
                pre = _prefilter_regex(compiled.rule)
                try:
                    rset.Add(pre)
                except re2_module.error:
                    self._always.append(index)
                    continue
                self._set_index.append(index)
            rset.Compile()
            self._set = rset
        # Python-re prefilters (rules without literal triggers), for might_contain.
        self._pre: dict[str, re.Pattern[str]] = {
            c.rule.name: re.compile(_prefilter_regex(c.rule)) for c in self._pure or self._compiled
        }
        self._needs_lower = any(c.rule.icase and c.literals for c in self._compiled)
        self._literal_table: list[tuple[str, bool, int]] = [
            (literal, compiled.rule.icase, index)
            for index, compiled in enumerate(self._compiled)
            for literal in compiled.literals
        ]

    # -- the public operations -------------------------------------------------------
    def covers(self, other: RedactionEngine) -> bool:
        """True when this engine finds everything ``other`` finds (same or more rules)."""
        return (
            self.categories >= other.categories
            and self.extra_keys >= other.extra_keys
            and self.custom_patterns.items() >= other.custom_patterns.items()
        )

    def secret_key(self, name: str) -> bool:
        cache = self._key_cache
        known = cache.get(name)
        if known is None:
            known = is_secret_key(name, self.extra_keys)
            if len(cache) >= 4096:  # key names are few; bound the cache anyway
                cache.clear()
            cache[name] = known
        return known

    def candidates(self, text: str) -> list[_Compiled]:
        """The rules that may match ``text`` (the prefilter)."""
        if self._set is not None and _utf8_ok(text):
            hits = self._set.Match(text)
            chosen = sorted({self._set_index[i] for i in hits} | set(self._always)) if hits else self._always
            return [self._compiled[i] for i in chosen]
        compiled_list = self._pure if self._set is not None else self._compiled
        lowered = text.lower() if self._needs_lower else text
        hit: set[int] = set()
        for literal, icase, index in self._literal_table:
            if index not in hit and literal in (lowered if icase else text):
                hit.add(index)
        long_enough = len(text) >= 40
        return [
            compiled
            for index, compiled in enumerate(compiled_list)
            if index in hit or (not compiled.literals and (long_enough or compiled.rule.name != "aws_secret"))
        ]

    def might_contain(self, text: str) -> bool:
        """Cheap check: False means :meth:`redact` would return ``text`` unchanged."""
        if self._pem and "-----BEGIN" in text:
            return True
        if self._set is not None and _utf8_ok(text):
            return bool(self._always) or self._set.Match(text) is not None
        for compiled in self.candidates(text):
            # Literal triggers already matched; a rule without them must show its prefix.
            if compiled.literals or self._pre[compiled.rule.name].search(text):
                return True
        return False

    def redact(self, text: str) -> str:
        if self._pem and "-----BEGIN" in text:
            text = self._redact_pem(text)
        for compiled in self.candidates(text):
            text = self._apply(compiled, text)
        return text

    # -- internals -------------------------------------------------------------------
    def _apply(self, compiled: _Compiled, text: str) -> str:
        rule = compiled.rule
        check = rule.check or _plain(rule.categories[0])
        pieces: list[str] = []
        cursor = 0
        for m in compiled.regex.finditer(text):
            if m.start() < cursor:
                continue
            if (
                rule.before
                and m.start() > 0
                and text[m.start() - 1] in rule.before
                and rule.group == 0
                and not rule.inside
            ):
                continue
            verdict = check(text, m, self)
            if verdict is None:
                continue
            category, start, end = verdict
            if category not in self.categories or start < cursor:
                continue
            if compiled.extend is not None and end == m.end():
                grown = compiled.extend.match(text, end)
                if grown is not None:
                    end = grown.end()
            if not _bounded(text, start, end, rule):
                continue
            value = text[start:end]
            if value.startswith(_MARK):
                continue
            pieces.append(text[cursor:start])
            pieces.append(self.token(category, value))
            cursor = end
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


def _prefilter_regex(rule: Rule) -> str:
    if rule.pre is not None:
        return rule.pre
    if rule.literals:
        body = "|".join(re.escape(lit) for lit in rule.literals)
        return f"(?i)(?:{body})" if rule.icase else body
    return rule.pattern
