"""The redactor: labelled corpus, categories, modes, structures, hostile input, both engines."""

from __future__ import annotations

import collections
import copy
import importlib.util
import json
import re
import subprocess
import sys
import time
from collections import OrderedDict, namedtuple
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardenkit.errors import ConfigurationError
from hardenkit.logs import Redactor
from hardenkit.logs.engine import CATEGORIES, DEFAULT_CATEGORIES
from hardenkit.logs.validators import luhn_ok

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "logs" / "redaction_corpus" / "corpus.jsonl"
ENGINES = ["re", "re2"]


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def redactor(engine: str) -> Redactor:
    return Redactor(engine=engine)  # type: ignore[arg-type]


# -- the labelled corpus ----------------------------------------------------------------


def test_corpus_is_reproducible_from_its_script() -> None:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS.parent / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(module.build()) == CORPUS.read_text(encoding="utf-8")


def test_corpus_covers_every_category_and_controls() -> None:
    entries = load_corpus()
    assert len(entries) >= 500
    counts = collections.Counter(entry["category"] for entry in entries)
    # Provider families are covered by the recall corpus (test_recall.py).
    from hardenkit.logs.providers import PROVIDER_RULES

    providers = {category for rule in PROVIDER_RULES for category in rule.categories}
    assert set(CATEGORIES) - providers - {"high_entropy"} <= set(counts), set(CATEGORIES) - set(counts)
    assert counts["control"] >= 100
    assert all(entry["secrets"] for entry in entries if entry["category"] != "control")


def test_corpus_every_planted_secret_removed_and_no_control_changed(engine: str) -> None:
    plain = Redactor(engine=engine)  # type: ignore[arg-type]
    with_ip = Redactor(engine=engine, enable=["ip"])  # type: ignore[arg-type]
    failures = []
    for entry in load_corpus():
        out = (with_ip if entry.get("opt_in") else plain).redact(entry["text"])
        leaked = [secret for secret in entry["secrets"] if secret in out]
        lost = [control for control in entry["controls"] if control not in out]
        if entry["category"] == "control" and out != entry["text"]:
            lost.append("<changed>")
        if leaked or lost:
            failures.append((entry["category"], entry["text"], out, leaked, lost))
    assert failures == []


def test_opt_in_ip_is_left_alone_by_default(redactor: Redactor) -> None:
    assert redactor.redact("client 203.0.113.9 and 2001:db8::1") == "client 203.0.113.9 and 2001:db8::1"


# -- categories, one behaviour each ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2 user=bob", "password=[REDACTED:secret] user=bob"),
        (
            '{"api_key": "abc123", "tokenizer": "bert", "credit": 5}',
            '{"api_key": "[REDACTED:secret]", "tokenizer": "bert", "credit": 5}',
        ),
        ("db_password: 'x y z'", "db_password: '[REDACTED:secret]'"),
        ("accessToken=Zm9v", "accessToken=[REDACTED:secret]"),
        ("Authorization: Bearer abc.def-123", "Authorization: [REDACTED:authorization]"),
        ("sent Bearer abcDEF123456 upstream", "sent Bearer [REDACTED:authorization] upstream"),
        ("Basic information and Bearer token words", "Basic information and Bearer token words"),
        ("Cookie: a=1; b=2", "Cookie: [REDACTED:cookie]"),
        ("https://bob:pw1@example.com/x", "https://bob:[REDACTED:url_password]@example.com/x"),
        ("postgres://app:s3cr3t@db:5432/app", "postgres://app:[REDACTED:db_connection]@db:5432/app"),
        (
            "redis://localhost:6379/0 and https://example.com/a@b",
            "redis://localhost:6379/0 and https://example.com/a@b",
        ),
        ("card 4111 1111 1111 1111.", "card [REDACTED:card]."),
        ("card 4111-1111-1111-1112", "card 4111-1111-1111-1112"),
        ("amex 3782 822463 10005", "amex [REDACTED:card]"),
        ("iban GB82WEST12345698765432", "iban [REDACTED:iban]"),
        ("iban GB82WEST12345698765433", "iban GB82WEST12345698765433"),
        ("mail a.b+c@example.co.uk!", "mail [REDACTED:email]!"),
        ("icon@2x.png and user@localhost", "icon@2x.png and user@localhost"),
        ("ssn 078-05-1120", "ssn [REDACTED:ssn]"),
        ("ssn 000-12-3456 and 666-12-3456", "ssn 000-12-3456 and 666-12-3456"),
        ("call +1 (415) 555-0100 now", "call [REDACTED:phone] now"),
        ("offset 2026-01-15T10:00:00+01:00", "offset 2026-01-15T10:00:00+01:00"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [REDACTED:aws_key]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x", "jwt [REDACTED:jwt]"),
    ],
)
def test_category_examples(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


@pytest.mark.parametrize(
    "control",
    [
        "123e4567-e89b-12d3-a456-426614174000",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "2026-05-01T12:00:00.123Z",
        "1700000000000",
        "1777060644123456789",
        "20260115103000",
        "req_4aZ9kP0qR2sT7uV1wX3yZ5",
        "01HZX3J4K5M6N7P8Q9R0STVWXY",
        "4111111111111112",
        "order 1234 5678 9012 3456",
    ],
)
def test_identifiers_and_ordinary_numbers_are_never_redacted(redactor: Redactor, control: str) -> None:
    assert not luhn_ok("4111111111111112")
    assert redactor.redact(f"request_id={control} x") == f"request_id={control} x"


def test_private_key_block_is_hidden_whole_and_unterminated_blocks_hide_the_rest(redactor: Redactor) -> None:
    block = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nAAAA\n-----END EC PRIVATE KEY-----"
    assert redactor.redact(f"a {block} b") == "a [REDACTED:private_key] b"
    assert redactor.redact("x -----BEGIN PRIVATE KEY-----\nMIIE never ends") == "x [REDACTED:private_key]"


def test_redact_lines_hides_a_key_block_spread_over_lines(redactor: Redactor) -> None:
    lines = [
        "before\n",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "MIIEpAIB\n",
        "-----END RSA PRIVATE KEY----- tail\n",
        "after\n",
    ]
    out = "".join(redactor.redact_lines(lines))
    assert "MIIEpAIB" not in out
    assert out == "before\n[REDACTED:private_key]\n tail\nafter\n"


# -- modes and options ---------------------------------------------------------------------


def test_hash_mode_gives_the_same_token_for_the_same_value_and_hides_it() -> None:
    redactor = Redactor(mode="hash", key="k1")
    one = redactor.redact("to alice@example.com")
    two = redactor.redact("from alice@example.com again")
    token = one.split()[-1]
    assert token.startswith("[REDACTED:email:") and token in two
    assert "alice" not in one
    assert Redactor(mode="hash", key="k2").redact("to alice@example.com") != one
    assert redactor.redact("to bob@example.com") != one


def test_hash_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENKIT_REDACT_KEY", "from-env")
    assert Redactor(mode="hash").redact("a@example.com") == Redactor(mode="hash", key="from-env").redact(
        "a@example.com"
    )


def test_partial_mode_keeps_the_last_four_digits_of_cards_only() -> None:
    redactor = Redactor(mode="partial")
    assert redactor.redact("card 4111 1111 1111 1111 a@example.com") == (
        "card [REDACTED:card:****1111] [REDACTED:email]"
    )


def test_categories_can_be_turned_off_and_ip_on() -> None:
    redactor = Redactor(disable=["email"], enable=["ip"])
    assert redactor.redact("a@example.com from 10.1.2.3") == "a@example.com from [REDACTED:ip]"
    assert "email" not in redactor.categories and "ip" in redactor.categories
    only = Redactor(categories=["card"])
    assert only.redact("a@example.com 4111111111111111") == "a@example.com [REDACTED:card]"


def test_custom_patterns_and_key_names() -> None:
    redactor = Redactor(patterns={"employee_id": r"EMP-[0-9]{6}", "pin": r"pin ([0-9]{4})"}, keys=["otp"])
    assert (
        redactor.redact("EMP-123456 pin 1234 otp=998877")
        == "[REDACTED:employee_id] pin [REDACTED:pin] otp=[REDACTED:secret]"
    )
    assert redactor.redact_obj({"OTP": 5}) == {"OTP": "[REDACTED:secret]"}


def test_custom_pattern_outside_re2_syntax_still_works() -> None:
    redactor = Redactor(patterns={"ticket": r"(?<=ticket )[0-9]{5}"})
    assert redactor.redact("ticket 12345 ok") == "ticket [REDACTED:ticket] ok"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "blur"}, "mode='blur'"),
        ({"categories": ["emails"]}, "unknown categories"),
        ({"enable": ["nope"]}, "unknown categories"),
        ({"disable": ["nope"]}, "unknown categories"),
        ({"disable": "email"}, "list of names"),
        ({"keys": [""]}, "non-empty"),
        ({"keys": [3]}, "names"),
        ({"patterns": {"email": "x"}}, "built-in"),
        ({"patterns": {"Bad Name": "x"}}, "lower-case"),
        ({"patterns": {"broken": "(x"}}, "does not compile"),
        ({"engine": "pcre"}, "engine='pcre'"),
        ({"key": 12}, "str or bytes"),
        ({"max_depth": 0}, "max_depth"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Redactor(**options)


def test_without_google_re2_the_pure_python_engine_is_used() -> None:
    code = (
        "import sys; sys.modules['re2'] = None\n"
        "from hardenkit.logs import Redactor\n"
        "from hardenkit.errors import ConfigurationError\n"
        "r = Redactor(); assert r.engine == 're', r.engine\n"
        "assert r.redact('a@example.com') == '[REDACTED:email]'\n"
        "try:\n    Redactor(engine='re2')\nexcept ConfigurationError as e:\n    print('refused', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused") and "google-re2" in out
    assert Redactor(engine="re2").engine == "re2"


def test_importing_the_redactor_does_not_import_the_web_stack() -> None:
    code = (
        "import sys\nimport hardenkit.logs\nfrom hardenkit import Redactor, RedactingFilter, configure_logging\n"
        "Redactor().redact('x')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'limits', 'anyio', 'redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- structures -----------------------------------------------------------------------------


def test_redact_obj_returns_a_redacted_copy_and_never_mutates() -> None:
    Point = namedtuple("Point", "x y")
    data: dict[str, Any] = {
        "user": {"email": "a@example.com", "password": "pw", "tags": ["ok", "b@example.com"]},
        "cards": ("4111111111111111", 4111111111111111, 42),
        "set": {"c@example.com"},
        "point": Point("d@example.com", 1),
        "raw": b"e@example.com",
        "od": OrderedDict(token="t"),
        "none": None,
        "flag": True,
    }
    before = copy.deepcopy(data)
    out = Redactor().redact_obj(data)
    assert data == before
    assert out == {
        "user": {
            "email": "[REDACTED:email]",
            "password": "[REDACTED:secret]",
            "tags": ["ok", "[REDACTED:email]"],
        },
        "cards": ("[REDACTED:card]", "[REDACTED:card]", 42),
        "set": {"[REDACTED:email]"},
        "point": Point("[REDACTED:email]", 1),
        "raw": "[REDACTED:email]",
        "od": OrderedDict(token="[REDACTED:secret]"),
        "none": None,
        "flag": True,
    }
    assert isinstance(out["od"], OrderedDict) and isinstance(out["point"], Point)


def test_redact_obj_handles_cycles_depth_and_huge_values() -> None:
    loop: list[Any] = ["a@example.com"]
    loop.append(loop)
    assert Redactor().redact_obj(loop) == ["[REDACTED:email]", "[REDACTED:cycle]"]
    shared = ["x"]
    assert Redactor().redact_obj([shared, shared]) == [["x"], ["x"]]  # shared is not a cycle
    deep: Any = "a@example.com"
    for _ in range(50):
        deep = [deep]
    out = Redactor(max_depth=5).redact_obj(deep)
    for _ in range(5):
        out = out[0]
    assert out == "[REDACTED:depth]"
    assert Redactor().redact_obj(10**5000) == "[REDACTED:error]"
    big = "x " * 200_000 + "a@example.com"
    assert Redactor().redact_obj({"m": big})["m"].endswith("[REDACTED:email]")


class _Account:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __str__(self) -> str:
        return f"Account(owner=alice@example.com, secret={self.secret})"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_other_objects_are_judged_by_their_text_and_unreadable_ones_replaced() -> None:
    account = _Account("s3")
    out = Redactor().redact_obj({"account": account, "plain": Path("/tmp"), "bad": _Unprintable()})
    assert out["account"] == "Account(owner=[REDACTED:email], secret=[REDACTED:secret])"
    assert out["plain"] == Path("/tmp")
    assert out["bad"] == "[REDACTED:error]"
    assert account.secret == "s3"


def test_redact_never_raises_on_objects_that_cannot_become_text() -> None:
    assert Redactor().redact(_Unprintable()) == "[REDACTED:error]"  # type: ignore[arg-type]
    assert Redactor().redact(12) == "12"  # type: ignore[arg-type]


# -- hostile input ----------------------------------------------------------------------------

ADVERSARIAL = {
    "digits_and_spaces": "1 2 3 4 5 6 7 8 9 0 " * 10_000,
    "digit_run": "4" * 200_000,
    "at_and_dots": "@." * 100_000,
    "local_parts": ("a" * 70 + "@") * 3_000,
    "base64": "QUJDRA+/" * 25_000,
    "unterminated_keys": "-----BEGIN PRIVATE KEY-----" * 8_000,
    "begin_without_key": "-----BEGIN " * 20_000,
    "key_names": "password=" * 25_000,
    "open_quote": 'token="' + "a\\" * 100_000,
    "jwt_prefixes": "eyJaaaaa.eyJ" * 20_000,
    "url_colons": "://a:" * 50_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_input_is_processed_without_hanging(redactor: Redactor, name: str) -> None:
    text = ADVERSARIAL[name]
    started = time.monotonic()
    out = redactor.redact(text)
    # Generous "did not hang" bound: backtracking would take minutes here.
    assert time.monotonic() - started < 20
    assert isinstance(out, str)
    assert redactor.redact(out) == out


# -- properties -----------------------------------------------------------------------------

SAFE_TEXT = st.text(alphabet="abcdefghij klmnop,;:=/", max_size=40)


def _card(body: str) -> str:
    digits = "4" + body
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


SECRETS = st.one_of(
    st.from_regex(r"\Aghp_[A-Za-z0-9]{36}\Z"),
    st.from_regex(r"\AAKIA[A-Z0-9]{16}\Z"),
    st.from_regex(r"\Axoxb-[0-9]{11}-[A-Za-z0-9]{24}\Z"),
    st.from_regex(r"\A[a-z]{1,10}@[a-z]{1,10}\.(com|org|net)\Z"),
    st.from_regex(r"\A[0-9]{14}\Z").map(_card),
    st.from_regex(r"\Ask_live_[A-Za-z0-9]{24}\Z"),
    st.from_regex(r"\AAIza[A-Za-z0-9_]{35}\Z"),
)


@settings(max_examples=150, deadline=None)
@given(before=SAFE_TEXT, secret=SECRETS, after=SAFE_TEXT)
def test_planted_secrets_never_survive(before: str, secret: str, after: str) -> None:
    out = _DEFAULT.redact(f"{before} {secret} {after}")
    assert secret not in out


@settings(max_examples=150, deadline=None)
@given(
    before=SAFE_TEXT,
    # Values already masked ("***", "xxxx"), placeholders ("%s", "%DB_PASS%") and null words
    # are left as they are: they are not secrets.
    secret=st.from_regex(r"\A[A-Za-z0-9!#%*]{1,30}\Z").filter(
        lambda value: (
            not re.fullmatch(r"[*xX#.-]{3,}|%[A-Za-z_][A-Za-z0-9_]*%|%[sdrifx]", value)
            and value not in ("null", "None", "nil", "undefined", "true", "false")
        )
    ),
    key=st.sampled_from(["password", "api_key", "client_secret", "token", "X-Api-Key"]),
)
def test_values_of_secret_keys_never_survive(before: str, secret: str, key: str) -> None:
    out = _DEFAULT.redact(f"{before} {key}={secret}")
    assert f"{key}={secret}" not in out
    assert _DEFAULT.redact_obj({key: secret}) == {key: "[REDACTED:secret]"}


LOGGY = st.text(
    alphabet=st.sampled_from(list("0123456789 -+.@:=/_\"'abcxyzAKIAGBSK{}[]()\n\t") + ["é", "\x00"]),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(text=LOGGY)
def test_redact_is_idempotent_and_never_raises(text: str) -> None:
    once = _DEFAULT.redact(text)
    assert _DEFAULT.redact(once) == once


@settings(max_examples=300, deadline=None)
@given(text=LOGGY)
def test_both_engines_agree(text: str) -> None:
    assert _PURE.redact(text) == _RE2.redact(text)


CHUNKS = st.lists(
    st.sampled_from(
        [
            "a" * 30,
            "b" * 64,
            "@",
            "x.com",
            ".",
            "QUJD+/",
            "A1b2" * 10,
            " ",
            "aws",
            "AKIA",
            "123-45-6789",
            "-",
            "4111",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=CHUNKS)
def test_runs_next_to_redacted_values_stay_idempotent_and_engines_agree(text: str) -> None:
    once = _RE2.redact(text)
    assert _RE2.redact(once) == once
    assert _PURE.redact(text) == once


@pytest.mark.parametrize(
    "text",
    [
        "a" * 90 + "@x.com@x.com",  # found by hypothesis: RE2 skipped the address inside a refused match
        "a" * 70 + "@x.com@y.org and b" * 3,
    ],
)
def test_a_match_refused_for_its_boundary_does_not_hide_one_inside_it(text: str) -> None:
    once = _RE2.redact(text)
    assert once == _PURE.redact(text)
    assert _RE2.redact(once) == once
    assert "[REDACTED:email]" in once


def test_a_token_next_to_a_run_is_not_a_new_boundary() -> None:
    # Found by hypothesis: the SSN's redaction must not turn the base64 run before it
    # into a "bounded" 40-character AWS secret on a second pass.
    text = "123-45-6789" + "a" * 30 + "QUJD+/123-45-6789"
    once = _DEFAULT.redact(text)
    assert once.endswith("QUJD+/[REDACTED:ssn]")
    assert _DEFAULT.redact(once) == once


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | SECRETS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(obj=JSONISH)
def test_redact_obj_never_mutates_and_is_idempotent(obj: Any) -> None:
    before = copy.deepcopy(obj)
    out = _DEFAULT.redact_obj(obj)
    assert obj == before
    assert _DEFAULT.redact_obj(out) == out


_DEFAULT = Redactor()
_PURE = Redactor(engine="re")
_RE2 = Redactor(engine="re2")


def test_default_categories_exclude_only_the_opt_in_ones() -> None:
    assert set(CATEGORIES) - DEFAULT_CATEGORIES == {"ip", "high_entropy"}


# -- near misses: every check's "not a secret" answer --------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111-1111 1111",  # mixed separators
        "1234 5678 1234 5670",  # Luhn-valid, no card network starts with 1
        "5105 1051 0510 515",  # Mastercard prefix, Luhn-valid, wrong length
        "5105105105105100005",  # Mastercard prefix, Luhn-valid, 19 digits
        "3782 822463 1000",  # Amex prefix, wrong length
        "6011 0009 9013 942",  # Discover prefix, wrong length
        "3530 1113 3330 000",  # JCB prefix, wrong length
        "8888 8888 8888 8888",  # no network starts with 8
        "1234 5678 9012 3456 7890",  # a long grouped number with no card inside
        "4111111111111112 3",  # non-Luhn run next to another number
        "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6",  # single digits are not how cards are printed
        "XX82 WEST 1234 5698 7654 32",  # no such country
        "DE89 3704",  # too short for its country
        "GB82WEST12345698765432X",  # runs on past its length
        "900-12-3456 and 123-00-4567 and 123-45-0000",  # never-issued SSNs
        "+1 234 5",  # too few digits for a phone
        "1 415-555-0100",  # part of a longer number
        "415-555-0100 7",  # part of a longer number
        ".a@example.com and b.@example.com",  # local parts cannot start or end with a dot
        "a@b.c1 and a@b.x",  # the top-level domain must be letters, 2+
        "sk-abcdefghijklmnopqrstuvwxyzABCD",  # no digit: a word, not an OpenAI key
        "sk-abcdefghijklmnopqrstuvwxyz1234",  # one case only
        "abcdefghijabcdefghijabcdefghij0123456789",  # 40 characters, one letter case
        "ABCDEFGHIJabcdefghij0123456789ABCDEFGHIJ",  # 40 characters, no AWS nearby, no / or +
        "Bearer abc1234",  # too short to be a credential
        "1http://user:pw@host and ://user:pw@host",  # no scheme
        "mytoken=abc and passwordHint=abc",  # the secret name is not the key's last word
        'password="" and token=',  # nothing to hide
        "mycookie: abc",  # a longer header name
        "k" * 70 + "password=abc",  # a key too long to be a key
    ],
)
def test_near_misses_are_left_alone(redactor: Redactor, text: str) -> None:
    assert redactor.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("diners 3056 9309 0259 04", "diners [REDACTED:card]"),
        ("jcb 3530 1113 3330 0000", "jcb [REDACTED:card]"),
        ("maestro 6759 6498 2643 8453", "maestro [REDACTED:card]"),
        ("mastercard 2223 0000 4841 0010", "mastercard [REDACTED:card]"),
        # a card next to other numbers: its whole groups are found inside the run
        ("card 4111 1111 1111 1111 12/25", "card [REDACTED:card] 12/25"),
        ("qty 12 4111 1111 1111 1111", "qty 12 [REDACTED:card]"),
        ("4111-1111-1111-1111-77", "[REDACTED:card]-77"),
        ("4111111111111111 3 items", "[REDACTED:card] 3 items"),
        ("amex 3782 822463 10005 9", "amex [REDACTED:card] 9"),
    ],
)
def test_card_networks(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4.5 and 300.1.1.1 and 10.0.0.1", "1.2.3.4.5 and 300.1.1.1 and [REDACTED:ip]"),
        ("a:b and 1:2:3 and fe80::1 and 12:00:00", "a:b and 1:2:3 and [REDACTED:ip] and 12:00:00"),
        ("x.10.0.0.1", "x.10.0.0.1"),
    ],
)
def test_ip_addresses_when_enabled(engine: str, text: str, expected: str) -> None:
    assert Redactor(engine=engine, enable=["ip"]).redact(text) == expected  # type: ignore[arg-type]


def test_text_re2_cannot_take_goes_through_python_re() -> None:
    # Lone surrogates come from undecodable input bytes (surrogateescape).
    redactor = Redactor(engine="re2")
    assert redactor.redact("\udcff a@example.com") == "\udcff [REDACTED:email]"
    assert redactor.might_contain("\udcff a@example.com")
    assert not redactor.might_contain("\udcff plain")


def test_might_contain_is_a_safe_prefilter(redactor: Redactor) -> None:
    assert not redactor.might_contain("2026-05-01T12:00:00Z GET /health 200")
    assert redactor.might_contain("-----BEGIN PRIVATE KEY-----")
    assert redactor.might_contain(None)  # type: ignore[arg-type]  # an error says "look closer"
    for text in ("a@example.com", "token=1", "4111111111111111"):
        assert redactor.might_contain(text)


def test_redactor_describes_itself_and_its_key_names() -> None:
    redactor = Redactor(mode="partial", engine="re")
    assert redactor.mode == "partial" and redactor.engine == "re"
    assert repr(redactor).startswith("Redactor(mode='partial', engine='re'")
    assert redactor.is_secret_key("X-Api-Key") and not redactor.is_secret_key("tokenizer")
    for index in range(5000):  # the key-name cache stays bounded
        redactor.is_secret_key(f"field{index}")
    assert len(redactor._engine._key_cache) <= 4096


class _BadMapping(dict[str, Any]):
    def __init__(self, *args: Any, required: bool) -> None:
        super().__init__(*args)


class _BadTuple(tuple[Any, ...]):
    def __new__(cls, values: Any, flag: bool) -> _BadTuple:
        return super().__new__(cls, values)


class _BrokenMapping(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("cannot iterate")


def test_containers_that_cannot_be_rebuilt_come_back_as_plain_ones() -> None:
    redactor = Redactor()
    out = redactor.redact_obj(
        {"m": _BadMapping({"e": "a@example.com"}, required=True), "t": _BadTuple(["x"], True)}
    )
    assert out == {"m": {"e": "[REDACTED:email]"}, "t": ("x",)}
    assert type(out["m"]) is dict and type(out["t"]) is tuple
    assert redactor.redact_obj(_BrokenMapping(a="b")) == "[REDACTED:error]"


def test_aws_secret_context_is_the_whole_line_so_redaction_stays_idempotent() -> None:
    # Found by hypothesis: a placeholder, or a shortened gap, must not make a second pass redact more.
    text = "aws" + "a" * 120 + "b" * 64 + "-" + "A1b2" * 10 + "@" + "A1b2" * 10 + "\n" + "C3d4" * 10
    for engine in ("re", "re2"):
        redactor = Redactor(engine=engine)
        once = redactor.redact(text)
        assert redactor.redact(once) == once
        assert once.count("[REDACTED:aws_secret]") == 2
        assert once.endswith("\n" + "C3d4" * 10)  # no marker on that line: left alone
