"""The built-in redaction rules: secret key names, the rule table, and the checks that confirm a match.

Every pattern is written in the common subset of Python's ``re`` and RE2 (see
:mod:`.engine`). This module is long because the rule table is one table: a
reader looks a category up in one place. Standard library only.
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
