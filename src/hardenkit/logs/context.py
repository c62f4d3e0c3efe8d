"""Context rules: a value is a secret because of the key it is assigned to, in any assignment syntax.

The regex only finds a secret-like word followed by an assignment operator; the
rest is decided in Python on that candidate, in one forward pass:

* the whole key is read back from the word (``db_password``, ``MAILCHIMP_KEY``,
  ``x-api-key``) and judged by its word parts (:func:`key_kind`);
* the operator says which syntax this is: ``=``, ``:``, ``:=``, ``::=``, ``?=``,
  ``.=``, ``+=``, ``=>``, ``var k string =``, ``k: str =``, call arguments
  (``setProperty("K", "v")``), XML elements and ``key=… value=…`` attributes,
  CLI flags (``--token v``);
* the value ends where that syntax says: at its closing quote, at ``<`` in XML,
  at ``&``/``#`` in a query string, at ``;`` in a connection string, else at
  whitespace (``&`` or ``#`` inside a value does not end it);
* template and variable references (``{{ … }}``, ``${…}``, ``$(…)``,
  ``%(name)s``, ``<placeholder>``, ``$VAR``) are left whole, and code-style
  operators only take literals that look like secrets.

Standard library only; the patterns are in the common subset of ``re`` and RE2.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from .rules import _KEY_CHARS, Rule, Verdict

if TYPE_CHECKING:
    from .engine import RedactionEngine

__all__ = ["CONTEXT_RULES", "ENTROPY_RULES", "is_secret_key", "key_kind", "shannon_entropy"]

KeyKind = Literal["secret", "care", "auth"] | None

#: Whole names (words joined) that are secret keys, as before: ``api_key``, ``accessToken``...
SECRET_KEY_NAMES: frozenset[str] = frozenset(
    {
        "password", "passwd", "pwd", "pass", "secret", "token", "apikey", "accesskey", "privatekey",
        "clientsecret", "authorization", "cookie", "setcookie", "session", "sessionid", "sessid",
        "passphrase", "credential", "credentials", "secretkey", "authtoken", "jwt", "bearer",
    }
)  # fmt: skip

#: Word parts that make a key secret wherever they stand (``secret_value``, ``token3``, ``x-auth``).
_CORE_PARTS = ("passw", "apikey", "privatekey", "accesskey", "credential", "passphrase")
_CORE_WORDS = frozenset({"token", "pwd", "passwd", "cookie", "sessionid", "jwt", "secret", "secrets"})

#: A last word that makes the key describe a secret rather than hold one (``token_type``).
_METADATA = frozenset(
    {
        "type", "types", "hint", "hints", "length", "len", "count", "size", "expiry", "expires",
        "expiration", "expire", "expiresat", "expiresin", "ttl", "url", "uri", "endpoint", "path",
        "file", "filename", "files", "dir", "name", "names", "label", "policy", "format", "prefix",
        "suffix", "field", "header", "version", "strength", "required", "enabled", "rotation",
        "reset", "changed", "updated", "created", "at", "valid", "validator", "validation", "regex",
        "pattern", "min", "max", "minlength", "maxlength", "env", "var", "variable", "ref", "source",
        "provider", "manager", "store", "namespace", "mode", "method", "scheme", "location", "arn", "usage",
        "limit", "limits", "window", "rule", "rules", "error", "errors", "missing", "invalid",
        "attempts", "retries", "encoding", "algorithm", "alg", "kind", "schema", "param", "input",
        "id", "ids", "index", "timeout", "age", "lifetime", "duration", "flow", "grant", "audience",
        "issuer", "service", "server", "host", "port", "user", "username", "login", "email",
        "status", "state", "result", "response", "request", "level", "score", "used", "tokens", "storage", "backend", "handler", "class", "module", "config", "settings", "option",
    }
)  # fmt: skip
_AUTH_SKIP = frozenset(
    {
        "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "required", "optional",
        "basic", "bearer", "digest", "ldap", "oauth", "oauth2", "saml", "oidc", "jwt", "token",
        "password", "apikey", "api_key", "disabled", "enabled", "anonymous", "public", "private",
        "internal", "external", "local", "sso", "mtls", "tls", "ntlm", "kerberos", "negotiate",
        "ok", "success", "succeeded", "failed", "fail", "failure", "denied", "granted", "valid",
        "invalid", "missing", "expired", "skipped", "pending",
    }
)  # fmt: skip
_ALREADY_HIDDEN = frozenset({"redacted", "filtered", "masked", "hidden", "removed", "omitted"})
_MASKED = re.compile(r"[*xX•#.\-]{3,}")
_YAML_TAG = re.compile(r"![A-Za-z][A-Za-z0-9_]*(?: |$)")
_SCHEMES = frozenset(
    {"bearer", "basic", "token", "digest", "ssws", "splunk", "apikey", "negotiate", "ntlm", "hmac"}
)
_NULL_WORDS = frozenset({"null", "None", "nil", "undefined", "true", "false", "|", ">", "|-", ">-"})
_GLUED = re.compile(
    r"(?:api|access|auth|refresh|id|bearer|session|client|private|app|bot|user|service|deploy|personal"
    r"|oauth|master|admin|root|db|signing|encryption)(?:token|secret|key|password|passwd|pwd)s?$"
)
_WORD_SPLIT = re.compile(r"[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*(?![a-z])|[0-9]+")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_TRAILING_DIGITS = re.compile(r"[0-9]+$")


def _normalise_key(name: str) -> str:
    return _NON_ALNUM.sub("", name.lower())


def key_kind(name: str, extra: frozenset[str] = frozenset()) -> KeyKind:
    """How a key name makes its value secret.

    ``"secret"``: always (``password``, ``db_password``, ``secret_value``, ``token3``);
    ``"auth"``: unless the value is a mode word (``user_auth``; ``auth=none`` is not a secret);
    ``"care"``: ``*_key`` names, only when the value looks random (``MAILCHIMP_KEY``, not
    ``sort_key``); ``None``: not a secret key (``tokenizer``, ``max_tokens``, ``token_type``).
    """
    if not name or len(name) > 128:
        return None
    words = [_TRAILING_DIGITS.sub("", word.lower()) for word in _WORD_SPLIT.findall(name)]
    words = [word for word in words if word]
    if not words:
        return None
    names = extra | SECRET_KEY_NAMES
    for index in range(len(words)):
        if "".join(words[index:]) in names:
            return "secret"
    if _normalise_key(name) in extra:
        return "secret"
    if words[-1] in _METADATA:
        return None
    for word in words:
        if word in _CORE_WORDS or any(word.startswith(part) for part in _CORE_PARTS):
            return "secret"
    if len(words) > 1 and words[-1] == "pass":
        return "secret"
    if any(_GLUED.match(word) for word in words):
        return "secret"  # APITOKEN, accesstoken: words written without a separator
    if "auth" in words:
        return "auth"
    if words[-1] == "key" or (len(words) == 1 and words[0].endswith("key") and len(words[0]) > 3):
        return "care"
    return None


def is_secret_key(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when ``name`` (a dict key, a ``key=value`` key) names a secret whatever its value."""
    return key_kind(name, extra) in ("secret", "auth")


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0.0 for an empty string)."""
    if not value:
        return 0.0
    total = len(value)
    return -sum(count / total * math.log2(count / total) for count in Counter(value).values())


# -- the rule ---------------------------------------------------------------------------

_FRAGMENTS = r"pass|pwd|secret|token|auth|key|credential|cookie|sess|jwt|bearer"
# group 2: what closes the key (a quote, ``"]``); group 3: the operator.
_OPERATORS = (
    r"(\\?[\"'`]?\]?)("
    r"[ \t]*:[ \t]*&?'?[A-Za-z]{0,8}[ \t]*(?:string|str)[ \t]*=[ \t]*"  # token: string = / &'static str
    r"|[ \t]+string[ \t]*=[ \t]*"  # Go: var token string = "…"
    r"|[ \t]*(?:::=|:=|\?=|\.=|\+=|=>|=|:)[ \t]*"
    r"|[ \t]*,[ \t]*"  # call arguments: setProperty("token", "…")
    r"|[ \t]+value[ \t]*=[ \t]*"  # <add key="Password" value="…"/>
    r"|>"  # <apiToken>…</apiToken>
    r"|[ \t]+"  # --token value
    r")"
)
_CODE_OPERATORS = frozenset({":=", ".=", "+=", "=>", "string", "typed", ","})
_QUERY_SEPARATORS = frozenset("?&")
_TEMPLATE_RE = re.compile(r"\{\{|\$\{|\$\(|%\(|#\{|<%|\{%|\$\$")
_SHELL_VAR = re.compile(
    r"\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9@*#?]|%[sdrifx]|\{[A-Za-z0-9_.]*\}|%[A-Za-z_][A-Za-z0-9_]*%"
)
# A call, an index or a dotted name: code that names a value, not a literal.
_CODE_REFERENCE = re.compile(
    r"(?:[A-Za-z_$][A-Za-z0-9_$]*\.)*[A-Za-z_$][A-Za-z0-9_$]*[(\[]"
    r"|(?:[A-Za-z_$][A-Za-z0-9_$]*\.)+[A-Za-z_$][A-Za-z0-9_$]*$"
)
_FRAGMENT_WORD = re.compile(_FRAGMENTS, re.IGNORECASE)
_DECIDE = 256  # characters read to decide on a value; an accepted value is then taken whole
_WINDOW = f"{{0,{_DECIDE}}}"
_UNQUOTED = re.compile(r"[^ \t\r\n\f\v\"'`]" + _WINDOW)
_UNQUOTED_TAIL = re.compile(r"[^ \t\r\n\f\v\"'`]*")
_LINE = re.compile(r"[^\r\n]" + _WINDOW)
_LINE_TAIL = re.compile(r"[^\r\n]*")
_XML_TEXT = re.compile(r"[^<\r\n]" + _WINDOW)
_NEXT_PAIR = {
    "&": re.compile(r"&[A-Za-z_][A-Za-z0-9_.\-\[\]]{0,64}="),
    ";": re.compile(r";[ \t]*[A-Za-z_][A-Za-z0-9_ .\-]{0,64}="),
}
_QUOTE_BODIES = {
    '"': re.compile(r'(?:[^"\\\r\n]|\\.)' + _WINDOW),
    "'": re.compile(r"(?:[^'\\\r\n]|\\.)" + _WINDOW),
    "`": re.compile(r"[^`\r\n]" + _WINDOW),
}
_ESCAPED_QUOTE_BODY = re.compile(r"(?:[^\\\r\n]|\\[^\"])" + _WINDOW)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_SECRET_LOOKING = re.compile(r"[^\s]{8,}")


def _op_kind(op: str, close: str) -> str:
    stripped = op.strip(" \t")
    if stripped.endswith("=") and ("string" in stripped or "str" in stripped):
        return "typed" if stripped.startswith(":") else "string"
    if stripped.startswith("value"):
        return "attribute"
    if not stripped:
        return "flag"
    return stripped


_DIGIT = re.compile(r"[0-9]")
_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")
_LETTER = re.compile(r"[A-Za-z]")
_SYMBOL = re.compile(r"[^A-Za-z0-9]")
_RANDOM_CHARS = re.compile(r"[A-Za-z0-9+/=_\-.~]{16,}")


def _looks_secret(value: str) -> bool:
    """A literal that could be a credential: 8+ characters, no spaces, at least two kinds of character."""
    if _SECRET_LOOKING.fullmatch(value) is None:
        return False
    kinds = sum(1 for kind in (_LOWER, _UPPER, _DIGIT, _SYMBOL) if kind.search(value))
    return kinds >= 2


def _looks_random(value: str) -> bool:
    """A ``*_key`` value that is a key, not a name: 16+ token characters, letters and digits, dense."""
    if _RANDOM_CHARS.fullmatch(value) is None:
        return False
    if "/" in value and "." in value:  # a path or a URL
        return False
    mixed_case = _UPPER.search(value) is not None and _LOWER.search(value) is not None
    if not (_DIGIT.search(value) and _LETTER.search(value)) and not (len(value) >= 20 and mixed_case):
        return False
    return shannon_entropy(value) >= 3.0


def _is_reference(value: str, code: bool = False) -> bool:
    """Template and variable references, placeholders and code that names a value (``code``:
    the syntax is a program's, where a bare name is a variable)."""
    if _TEMPLATE_RE.search(value):
        return True
    if value.startswith("<") and value.endswith(">"):
        return True
    if _SHELL_VAR.fullmatch(value):
        return True
    if value in _NULL_WORDS or value.lower() in _ALREADY_HIDDEN or _MASKED.fullmatch(value):
        return True
    if value.startswith("[REDACTED"):
        return True
    if code:
        if _CODE_REFERENCE.match(value) is not None:
            return True  # token := req.Header.Get(, password = settings.DB_PASSWORD
        if re.fullmatch(r"[A-Za-z_]+", value) and _FRAGMENT_WORD.search(value):
            return True  # password = password, token: apiToken
    return False


def _trim(text: str, start: int, end: int) -> int:
    """Drop trailing punctuation that belongs to the sentence or an enclosing bracket."""
    while end > start:
        last = text[end - 1]
        if last in ",;.":
            end -= 1
            continue
        opener = _CLOSERS.get(last)
        if opener is not None and opener not in text[start : end - 1]:
            end -= 1
            continue
        break
    return end


def _at_line_start(text: str, pos: int, words: tuple[str, ...] = ("export", "set", "setenv")) -> bool:
    """Only indentation, a list dash or ``export`` between the start of the line and ``pos``
    (looked for within 80 characters, so long lines cost no more than short ones)."""
    line_start = text.rfind("\n", max(0, pos - 80), pos) + 1
    if line_start == 0 and pos > 80:
        return False
    head = text[line_start:pos].strip(" \t-")
    return head == "" or head in words


def _value_span(text: str, pos: int, kind: str, key_start: int) -> tuple[int, int, bool, bool] | None:
    """(start, end, quoted, cut) of the value at ``pos``; ``cut`` when the decision window ended it."""
    if pos >= len(text):
        return None
    first = text[pos]
    if kind == ">":
        m = _XML_TEXT.match(text, pos)
        assert m is not None
        end = m.end()
        if end < len(text) and text[end] != "<":
            return None
        return pos, end, True, False
    if first in _QUOTE_BODIES:
        m = _QUOTE_BODIES[first].match(text, pos + 1)
        assert m is not None
        end = m.end()
        closed = end < len(text) and text[end] == first
        return pos + 1, end, True, not closed and end - pos - 1 >= _DECIDE
    if text.startswith('\\"', pos):  # a JSON document inside a JSON string
        m = _ESCAPED_QUOTE_BODY.match(text, pos + 2)
        assert m is not None
        return pos + 2, m.end(), True, False
    if kind in ("attribute", ","):
        return None  # these syntaxes always quote their values
    at_line_start = _at_line_start(text, key_start)
    if kind == ":" and at_line_start:  # YAML and HTTP headers: the rest of the line
        m = _LINE.match(text, pos)
        assert m is not None
        end = m.end()
        comment = text.find(" #", pos, end)
        if comment >= 0:
            end = comment
        while end > pos and text[end - 1] in " \t":
            end -= 1
        return pos, end, False, end - pos >= _DECIDE
    m = _UNQUOTED.match(text, pos)
    assert m is not None
    end = m.end()
    cut = end - pos >= _DECIDE
    before = text[key_start - 1] if key_start > 0 else ""
    if before in _QUERY_SEPARATORS:
        for stop in "&#":
            found = text.find(stop, pos, end)
            if found >= 0:
                end, cut = found, False
    elif before == ";":
        found = text.find(";", pos, end)
        if found >= 0:
            end, cut = found, False
    else:
        for separator, pair in _NEXT_PAIR.items():
            if separator in text[pos:end]:
                found_pair = pair.search(text, pos, end + 66)
                if found_pair is not None and found_pair.start() < end:
                    end, cut = found_pair.start(), False
    if not cut:
        end = _trim(text, pos, end)
    return pos, end, False, cut


def _check_context(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    word_start, word_end = m.span(1)
    start = word_start
    while start > 0 and word_start - start < 64 and text[start - 1] in _KEY_CHARS:
        start -= 1
    if start > 0 and text[start - 1] in _KEY_CHARS:
        return None
    close_start, close_end = m.span(2)
    key_end = close_start
    key = text[start:key_end]
    if start >= 2 and text[start - 1] == "{" and text[start - 2] == "$":
        return None  # ${NAME:=default} is a shell expansion, not an assignment
    if start > 0 and text[start - 1] == ":":
        mark = text.rfind("[REDACTED", max(0, start - 60), start)
        if mark >= 0 and "]" not in text[mark:start]:
            return None  # the label of a redaction token ("[REDACTED:github_token]:0")
    kind_of_key = engine.key_kind(key.lstrip("-."))
    if kind_of_key is None:
        return None
    op = m.group(3) or ""
    kind = _op_kind(op, text[close_start:close_end])
    quoted_key = close_end > close_start and text[close_start:close_end].strip("\\]") != ""
    if kind == "flag":
        if not key.startswith("-") or quoted_key or (start > 0 and text[start - 1] not in " \t\"'="):
            return None
    elif kind in (",", "attribute") and not quoted_key:
        return None
    elif (
        kind == ">"
        and not (start > 0 and text[start - 1] == "<")
        and not _named_element(text, start, quoted_key)
    ):
        return None
    elif kind == "=" and text.startswith("=", m.end()):
        return None  # == is a comparison
    span = _value_span(text, m.end(), kind, start)
    if span is None:
        return None
    value_start, value_end, quoted, cut = span
    if value_end <= value_start:
        return None
    value = text[value_start:value_end]
    if not quoted and value[0] in "{[" and not value.startswith("[REDACTED"):
        return None  # a structure ({"user": …}, [a, b]): its own keys are judged one by one
    if value.lower() in _SCHEMES and text.startswith(" ", value_end):
        return None  # "Authorization: Bearer …": the header and bearer rules judge the credential
    code_style = kind in _CODE_OPERATORS or kind in ("flag", ",")
    if _is_reference(value, code=not quoted and (code_style or op.startswith((" ", "\t")))):
        return None
    if kind_of_key == "care":
        if not _looks_random(value):
            return None
    elif (
        kind == ":"
        and not quoted
        and (
            " = " in value
            or _YAML_TAG.match(value)
            or text[value_end : value_end + 3].lstrip(" \t").startswith("=")
        )
    ):
        return None  # token: Optional[str] = None (an annotation); token: !vault | (a YAML tag)
    elif kind_of_key == "auth":
        if not quoted and " " in value:
            value_end = value_start + value.index(" ")
            value = value[: value.index(" ")]
        if value.lower() in _AUTH_SKIP or (code_style and not _looks_secret(value)):
            return None
    elif code_style and not _looks_secret(value) and not (kind == "flag" and len(value) >= 6):
        return None
    elif kind == ":" and not quoted and value.isalpha() and value.islower():
        # "refresh token: connection refused" is a message, not a key and its value.
        if not _at_line_start(text, start, words=()):
            return None
    if cut:
        tail = _LINE_TAIL if not quoted and kind == ":" else _UNQUOTED_TAIL
        grown = tail.match(text, value_end)
        value_end = grown.end() if grown is not None else value_end
    return "secret", value_start, value_end


def _named_element(text: str, start: int, quoted_key: bool) -> bool:
    """``<entry key="password">…</entry>``: the key is the element's ``key``/``name`` attribute."""
    if not quoted_key or start < 6 or text[start - 1] not in "\"'":
        return False
    head = text[max(0, start - 6) : start - 1].lower()
    return head.endswith(("key=", "name="))


def _check_cli_user(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    """``curl -u user:password`` (and ``--user``): the part after the colon."""
    if m.start() > 0 and text[m.start() - 1] not in " \t\"'":
        return None
    value_start = m.end()
    found = _UNQUOTED.match(text, value_start)
    assert found is not None
    value_end = _trim(text, value_start, found.end())
    value = text[value_start:value_end]
    if not value or _is_reference(value):
        return None
    return "secret", value_start, value_end


#: Keys whose values are identifiers, not secrets, even when they look random.
_ENTROPY_SKIP = frozenset(
    {
        "id", "uuid", "guid", "sha", "digest", "hash", "etag", "commit", "checksum", "rev",
        "revision", "version", "trace", "span", "parent", "request", "correlation", "nonce",
    }
)  # fmt: skip


def _check_entropy(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    """Opt-in: a dense random value under any key that is not an identifier's (``signature=…``)."""
    key_start, key_end = m.span(1)
    if key_start > 0 and text[key_start - 1] in _KEY_CHARS:
        return None
    words = {_TRAILING_DIGITS.sub("", w.lower()) for w in _WORD_SPLIT.findall(text[key_start:key_end])}
    if words & _ENTROPY_SKIP:
        return None
    value_start, value_end = m.span(3)
    value = text[value_start:value_end]
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return None
    hexadecimal = re.fullmatch(r"[0-9a-fA-F]+", value) is not None
    if shannon_entropy(value) < (3.0 if hexadecimal else 4.0):
        return None
    return "high_entropy", value_start, value_end


CONTEXT_RULES: tuple[Rule, ...] = (
    Rule(
        "key_value",
        ("secret",),
        r"(?i)(" + _FRAGMENTS + r")[A-Za-z0-9_.\-]{0,64}" + _OPERATORS,
        literals=(
            "pass",
            "pwd",
            "secret",
            "token",
            "auth",
            "key",
            "credential",
            "cookie",
            "sess",
            "jwt",
            "bearer",
        ),
        icase=True,
        check=_check_context,
    ),
    Rule(
        "cli_user_password",
        ("secret",),
        r"-(?:u|-user)[ \t=]+[\"']?[^ \t\r\n:'\"]{1,128}:",
        literals=("-u", "--user"),
        check=_check_cli_user,
    ),
)

ENTROPY_RULES: tuple[Rule, ...] = (
    Rule(
        "high_entropy",
        ("high_entropy",),
        r"([A-Za-z][A-Za-z0-9_.\-]{0,63})([\"']?[ \t]*[:=][ \t]*[\"']?)([A-Za-z0-9+/_\-]{20,200}={0,2})",
        pre=r"[:=][ \t]*[\"']?[A-Za-z0-9+/_\-]{20}",
        check=_check_entropy,
        after=frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="),
    ),
)
