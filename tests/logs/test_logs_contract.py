"""Acceptance checks for issue 4 (log redactor, JSON logs, access log, ``hardenkit redact``).

Written from the issue's own words, black box, through the public API only:
``hk.Redactor``, ``hk.RedactingFilter``, ``hk.configure_logging``,
``hk.AccessLogMiddleware``, ``hk.harden`` and the ``hardenkit redact`` command.
"""

from __future__ import annotations

import collections
import copy
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import hardenkit as hk

ROOT = Path(__file__).resolve().parents[2]


def _luhn_complete(prefix: str, length: int) -> str:
    """``prefix`` padded with 1s to ``length - 1`` digits plus the Luhn check digit."""
    body = (prefix + "1" * length)[: length - 1]
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


B64 = "Zx9Qw3Er5Ty7Ui1Op2As4Df6Gh8Jk0LmNbVcXz" * 4
ALNUM = "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kL9" * 4
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
VISA19 = _luhn_complete("4", 19)

# (category as the issue names it, the line, the secret(s) that must disappear)
PLANTED: list[tuple[str, str, list[str]]] = [
    ("aws access key id", "using key AKIAZ3MPLEQ4RSTUV7WX for s3", ["AKIAZ3MPLEQ4RSTUV7WX"]),
    (
        "aws secret",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
        ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"],
    ),
    ("github token", f"git push with ghp_{ALNUM[:36]} now", [f"ghp_{ALNUM[:36]}"]),
    ("github fine-grained", f"pat github_pat_{ALNUM[:22]}_{ALNUM[:59]}", [ALNUM[:22]]),
    ("gitlab token", f"clone with glpat-{ALNUM[:20]} ok", [f"glpat-{ALNUM[:20]}"]),
    (
        "slack token",
        f"bot xoxb-2847561930-4928371650123-{ALNUM[:24]} posted",
        [ALNUM[:24]],
    ),
    (
        "slack webhook",
        f"POST https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/{ALNUM[:24]} 200",
        [ALNUM[:24], "B02GHIJKL"],
    ),
    (
        "jwt",
        "jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ["eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
    ),
    (
        "jwt bare",
        "got eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U from client",
        ["eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
    ),
    (
        "private key block",
        f"key: -----BEGIN RSA PRIVATE KEY-----\n{B64[:64]}\n{B64[64:120]}\n-----END RSA PRIVATE KEY----- done",
        [B64[:64], B64[64:120]],
    ),
    (
        "openssh private key",
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{B64[:70]}\n-----END OPENSSH PRIVATE KEY-----",
        [B64[:70]],
    ),
    ("bearer", "Authorization: Bearer abc123.def456-ghi789_jkl", ["abc123.def456-ghi789_jkl"]),
    ("basic", "Authorization: Basic dXNlcjpodW50ZXIy", ["dXNlcjpodW50ZXIy"]),
    ("bearer in text", "retrying with Bearer tok_9f8e7d6c5b4a39281", ["tok_9f8e7d6c5b4a39281"]),
    ("url password", "fetch https://alice:s3cr3tP4ss@example.com/feed", ["s3cr3tP4ss"]),
    ("password=", "login password=hunter2 ok", ["hunter2"]),
    ("passwd", "passwd: tr0ub4dor&3", ["tr0ub4dor"]),
    ("pwd", "pwd=Qwerty!234", ["Qwerty!234"]),
    ("secret", "secret=s-e-c-r-e-t-v4lue", ["s-e-c-r-e-t-v4lue"]),
    ("token", "token=0a1b2c3d4e5f", ["0a1b2c3d4e5f"]),
    ("api_key", "api_key=k3y-v4lu3", ["k3y-v4lu3"]),
    ("apikey", "apikey=k3y-v4lu3", ["k3y-v4lu3"]),
    ("access_key", "access_key=acc-v4lu3", ["acc-v4lu3"]),
    ("private_key", "private_key=prv-v4lu3", ["prv-v4lu3"]),
    ("client_secret", "client_secret=cs-v4lu3", ["cs-v4lu3"]),
    ("authorization key", "authorization=auth-v4lu3", ["auth-v4lu3"]),
    ("cookie", "Cookie: sessionid=abc123def456; csrftoken=zz9", ["abc123def456", "zz9"]),
    ("set-cookie", "Set-Cookie: sid=31d4d96e407aad42; Path=/; HttpOnly", ["31d4d96e407aad42"]),
    ("session", "session=5f2b9c8d7e6a", ["5f2b9c8d7e6a"]),
    ("json secret", '{"user": "bob", "password": "hunter2"}', ["hunter2"]),
    ("json token", '{"token":"t0k3n-v4lu3","n":1}', ["t0k3n-v4lu3"]),
    ("stripe", "charge via sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
    (
        "google api key",
        "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY used",
        ["AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"],
    ),
    ("openai", f"OPENAI sk-proj-{ALNUM[:48]} set", [ALNUM[:48]]),
    ("openai legacy", f"openai sk-{ALNUM[:48]} set", [ALNUM[:48]]),
    ("anthropic", f"claude sk-ant-api03-{ALNUM[:93]}AA set", [ALNUM[:93]]),
    ("npm", f"//registry.npmjs.org/:_authToken npm_{ALNUM[:36]}", [f"npm_{ALNUM[:36]}"]),
    ("pypi", f"upload with pypi-AgEIcHlwaS5vcmc{ALNUM[:60]}", [ALNUM[:60]]),
    ("sendgrid", f"mail SG.{ALNUM[:22]}.{ALNUM[:43]} ok", [ALNUM[:22], ALNUM[:43]]),
    ("twilio", "twilio SK0123456789abcdef0123456789abcdef used", ["SK0123456789abcdef0123456789abcdef"]),
    (
        "azure storage",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={B64[:86]}==;EndpointSuffix=core.windows.net",
        [B64[:86]],
    ),
    ("postgres", "db at postgresql://app:Pg-pass-123@db.internal:5432/app", ["Pg-pass-123"]),
    ("mysql", "mysql://root:rootpw99@localhost/shop", ["rootpw99"]),
    ("mongodb", "mongodb+srv://svc:m0ng0pw@cluster0.mongodb.net/db", ["m0ng0pw"]),
    ("redis url", "redis://:r3d1spw@cache:6379/0", ["r3d1spw"]),
    ("card spaced", "card 4111 1111 1111 1111 declined", ["4111 1111 1111 1111"]),
    ("card dashed", "card 5555-5555-5555-4444 declined", ["5555-5555-5555-4444"]),
    ("card plain", "card 4111111111111111 declined", ["4111111111111111"]),
    ("card amex", "amex 3782 822463 10005 ok", ["3782 822463 10005"]),
    ("card 13", "old visa 4222222222222 ok", ["4222222222222"]),
    ("card 19", f"long card {VISA19} ok", [VISA19]),
    ("iban spaced", "pay to GB82 WEST 1234 5698 7654 32 today", ["GB82 WEST 1234 5698 7654 32"]),
    ("iban compact", "iban DE89370400440532013000 ok", ["DE89370400440532013000"]),
    ("email", "mail bob.smith+tag@example.co.uk now", ["bob.smith+tag@example.co.uk"]),
    ("phone intl", "call +44 20 7946 0958 today", ["7946 0958"]),
    ("phone us", "call (415) 867-5309 today", ["867-5309"]),
    ("phone e164", "sms to +14158675309 sent", ["4158675309"]),
    ("ssn", "ssn 123-45-6789 on file", ["123-45-6789"]),
]

CONTROLS: list[str] = [
    "request_id=req-7f3a9c2b1e",
    "request id 01HZX3K8Q9V4M2N7P5R6S8T0WB",
    "trace 550e8400-e29b-41d4-a716-446655440000 done",
    "uuid=3fa85f64-5717-4562-b3fc-2c963f66afa6",
    f"sha256 {HEX}",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "commit 6f1457e",
    "at 2026-05-01T12:00:00.123Z",
    "at 2026-05-01 12:00:00,123",
    "epoch 1714564800 and 1714564800123",
    "order 4111111111111112 shipped",  # fails Luhn: an order number, not a card
    "order number 1234567890123 shipped",
    "total 42 items, port 8080, 3.14159",
    "tokenizer=bert-base-uncased",
    "credit=100",
    "max_tokens=256",
    "GET /api/v1/users/12345 200",
    "version 1.10.3",
]


@pytest.fixture(scope="module")
def redactor() -> hk.Redactor:
    return hk.Redactor()


# -- Redactor.redact: default categories ---------------------------------------------


@pytest.mark.parametrize(("label", "line", "secrets"), PLANTED, ids=[p[0] for p in PLANTED])
def test_default_categories_remove_planted_secrets(
    redactor: hk.Redactor, label: str, line: str, secrets: list[str]
) -> None:
    out = redactor.redact(line)
    assert isinstance(out, str)
    for secret in secrets:
        assert secret not in out, (label, out)
    assert "[REDACTED" in out


@pytest.mark.parametrize("line", CONTROLS)
def test_never_redacted(redactor: hk.Redactor, line: str) -> None:
    assert redactor.redact(line) == line


def test_url_password_only_the_password_is_masked(redactor: hk.Redactor) -> None:
    out = redactor.redact("fetch https://alice:s3cr3tP4ss@example.com/feed?x=1")
    assert "s3cr3tP4ss" not in out
    assert "https://alice:" in out and "@example.com/feed?x=1" in out


def test_db_connection_keeps_user_and_host(redactor: hk.Redactor) -> None:
    out = redactor.redact("postgresql://app:Pg-pass-123@db.internal:5432/app")
    assert "Pg-pass-123" not in out
    assert out.startswith("postgresql://app:") and "@db.internal:5432/app" in out


def test_key_value_keeps_the_key_and_other_values(redactor: hk.Redactor) -> None:
    out = redactor.redact("user=bob password=hunter2 page=3")
    assert out.startswith("user=bob password=") and out.endswith(" page=3")
    assert "hunter2" not in out


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "private_key",
        "client_secret",
        "authorization",
        "cookie",
        "set-cookie",
        "session",
        "PASSWORD",
        "db_password",
        "accessToken",
        "X-Api-Key",
    ],
)
def test_secret_key_names_hide_any_value(redactor: hk.Redactor, name: str) -> None:
    value = "plainvalue42"
    assert value not in redactor.redact(f"{name}={value}")
    assert value not in redactor.redact(json.dumps({name: value}))
    assert redactor.redact_obj({name: value})[name] != value


@pytest.mark.parametrize("name", ["tokenizer", "credit", "max_tokens", "secretary", "passport"])
def test_words_containing_key_names_are_not_secret_keys(redactor: hk.Redactor, name: str) -> None:
    assert redactor.redact(f"{name}=plainvalue42") == f"{name}=plainvalue42"
    assert redactor.redact_obj({name: "plainvalue42"}) == {name: "plainvalue42"}


def test_bad_checksums_are_not_redacted(redactor: hk.Redactor) -> None:
    assert redactor.redact("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"
    assert redactor.redact("iban GB82WEST12345698765433") == "iban GB82WEST12345698765433"


def test_ip_addresses_are_opt_in() -> None:
    line = "from 10.0.0.7 and 2001:db8::8a2e:370:7334"
    assert hk.Redactor().redact(line) == line
    out = hk.Redactor(enable=["ip"]).redact(line)
    assert "10.0.0.7" not in out and "2001:db8::8a2e:370:7334" not in out
    assert "[REDACTED:ip]" in out


# -- modes ------------------------------------------------------------------------------


def test_mask_mode_writes_the_category(redactor: hk.Redactor) -> None:
    assert hk.Redactor(mode="mask").redact("bob@example.com") == "[REDACTED:email]"
    assert redactor.redact("to bob@example.com") == "to [REDACTED:email]"


def test_hash_mode_same_value_same_token_no_exposure() -> None:
    hashed = hk.Redactor(mode="hash", key="k1")
    one = hashed.redact("from bob@example.com")
    two = hashed.redact("to bob@example.com again")
    token = one.split()[-1]
    assert "bob@example.com" not in one and token.startswith("[REDACTED")
    assert token in two
    assert hashed.redact("from eve@example.com").split()[-1] != token
    # keyed: another key gives another token, the same key in another instance the same one
    assert hk.Redactor(mode="hash", key="k2").redact("from bob@example.com") != one
    assert hk.Redactor(mode="hash", key="k1").redact("from bob@example.com") == one
    assert hk.Redactor(mode="hash", key=b"k1").redact("from bob@example.com") == one


def test_hash_mode_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = hk.Redactor(mode="hash", key="env-key").redact("bob@example.com")
    monkeypatch.setenv("HARDENKIT_REDACT_KEY", "env-key")
    assert hk.Redactor(mode="hash").redact("bob@example.com") == explicit
    monkeypatch.setenv("HARDENKIT_REDACT_KEY", "other-key")
    assert hk.Redactor(mode="hash").redact("bob@example.com") != explicit


def test_hash_mode_token_is_stable_across_processes() -> None:
    code = "import hardenkit as hk; print(hk.Redactor(mode='hash').redact('bob@example.com'))"
    env = {**os.environ, "HARDENKIT_REDACT_KEY": "shared"}
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(outs) == 1
    assert outs == {hk.Redactor(mode="hash", key="shared").redact("bob@example.com")}


def test_partial_mode_cards_keep_last_four() -> None:
    partial = hk.Redactor(mode="partial")
    out = partial.redact("card 5555 5555 5555 4444 ok")
    assert "4444" in out and "5555 5555 5555" not in out and "[REDACTED" in out
    # other categories are still masked whole
    assert partial.redact("bob@example.com") == "[REDACTED:email]"


def test_unknown_mode_is_a_configuration_error() -> None:
    with pytest.raises(hk.ConfigurationError):
        hk.Redactor(mode="scramble")  # type: ignore[arg-type]


def test_custom_patterns_and_key_names() -> None:
    custom = hk.Redactor(patterns={"employee_id": r"EMP-[0-9]{6}"}, keys=["pin", "otp"])
    out = custom.redact("EMP-123456 pin=4242 otp=987654 ok")
    assert "EMP-123456" not in out and "4242" not in out and "987654" not in out
    assert custom.redact_obj({"pin": "4242"}) != {"pin": "4242"}


def test_categories_can_be_turned_off() -> None:
    line = "mail bob@example.com card 4111 1111 1111 1111"
    out = hk.Redactor(disable=["email"]).redact(line)
    assert "bob@example.com" in out and "4111 1111 1111 1111" not in out


def test_unknown_category_is_a_configuration_error() -> None:
    with pytest.raises(hk.ConfigurationError):
        hk.Redactor(disable=["emails"])
    with pytest.raises(hk.ConfigurationError):
        hk.Redactor(enable=["ipv9"])


def test_bad_custom_pattern_is_a_configuration_error() -> None:
    with pytest.raises(hk.ConfigurationError):
        hk.Redactor(patterns={"broken": "([unclosed"})


# -- Redactor.redact_obj ------------------------------------------------------------------


def test_redact_obj_copies_containers_and_never_mutates(redactor: hk.Redactor) -> None:
    event: dict[str, Any] = {
        "user": {"email": "a@example.com", "password": "pw", "name": "Ann"},
        "cards": ["4111 1111 1111 1111", "note"],
        "pair": ("bob@example.com", 42),
        "tags": {"x", "c@example.com"},
        "frozen": frozenset({"d@example.com"}),
        "n": 1.5,
        "ok": True,
        "none": None,
    }
    before = copy.deepcopy(event)
    out = redactor.redact_obj(event)
    assert event == before
    assert out is not event and out["user"] is not event["user"]
    assert (
        out["user"]["name"] == "Ann" and "a@example.com" not in str(out) and "pw" not in out["user"].values()
    )
    assert isinstance(out["cards"], list) and out["cards"][1] == "note"
    assert "4111 1111 1111 1111" not in out["cards"]
    assert isinstance(out["pair"], tuple) and out["pair"][1] == 42
    assert isinstance(out["tags"], set) and "x" in out["tags"] and "c@example.com" not in out["tags"]
    assert isinstance(out["frozen"], frozenset) and "d@example.com" not in out["frozen"]
    assert out["n"] == 1.5 and out["ok"] is True and out["none"] is None


class _Point(NamedTuple):
    who: str
    n: int


def test_redact_obj_other_containers(redactor: hk.Redactor) -> None:
    ordered = collections.OrderedDict([("email", "a@example.com"), ("k", 1)])
    dd: collections.defaultdict[str, list[str]] = collections.defaultdict(list, {"to": ["b@example.com"]})
    queue = collections.deque(["c@example.com", "plain"])
    point = _Point("d@example.com", 3)
    out = redactor.redact_obj({"o": ordered, "d": dd, "q": queue, "p": point})
    assert isinstance(out["o"], collections.OrderedDict) and out["o"]["k"] == 1
    assert out["o"]["email"] == "[REDACTED:email]"
    assert isinstance(out["d"], collections.defaultdict) and out["d"]["to"] == ["[REDACTED:email]"]
    assert isinstance(out["q"], collections.deque) and list(out["q"]) == ["[REDACTED:email]", "plain"]
    assert type(out["p"]) is type(point) and out["p"].who == "[REDACTED:email]" and out["p"].n == 3
    assert list(queue) == ["c@example.com", "plain"] and ordered["email"] == "a@example.com"


def test_redact_obj_cycles(redactor: hk.Redactor) -> None:
    loop: list[Any] = ["a@example.com"]
    loop.append(loop)
    out = redactor.redact_obj(loop)
    assert out[0] == "[REDACTED:email]" and isinstance(out[1], str)
    node: dict[str, Any] = {"email": "b@example.com"}
    node["self"] = node
    out2 = redactor.redact_obj(node)
    assert out2["email"] == "[REDACTED:email]" and isinstance(out2["self"], str)


def test_redact_obj_huge_values(redactor: hk.Redactor) -> None:
    deep: list[Any] = []
    cursor = deep
    for _ in range(5000):
        nxt: list[Any] = []
        cursor.append(nxt)
        cursor = nxt
    cursor.append("a@example.com")
    out = redactor.redact_obj(deep)
    assert "a@example.com" not in repr(out)[-2000:]  # no recursion error, nothing leaks
    big_int = 10**5000
    assert redactor.redact_obj(big_int) is not None
    big_text = ("x" * 1000 + " a@example.com ") * 2000
    redacted = redactor.redact_obj([big_text])[0]
    assert "a@example.com" not in redacted and redacted.count("[REDACTED:email]") == 2000
    wide = {f"k{i}": f"u{i}@example.com" for i in range(20_000)}
    assert all(v == "[REDACTED:email]" for v in redactor.redact_obj(wide).values())


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


class _BrokenMapping(collections.abc.Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("broken")

    def __iter__(self) -> Iterator[str]:
        yield "email"

    def __len__(self) -> int:
        return 1


def test_redact_obj_never_raises_and_never_passes_through(redactor: hk.Redactor) -> None:
    out = redactor.redact_obj({"who": _Unprintable(), "email": "a@example.com"})
    assert isinstance(out["who"], str) and out["who"].startswith("[REDACTED")
    assert out["email"] == "[REDACTED:email]"
    broken = redactor.redact_obj(_BrokenMapping())
    assert isinstance(broken, str) and broken.startswith("[REDACTED")
    assert redactor.redact_obj(b"mail a@example.com") != b"mail a@example.com"


def test_redact_never_raises_on_odd_input(redactor: hk.Redactor) -> None:
    for text in ["", "\x00" * 50, "\ud800 lone surrogate a@example.com", "é" * 1000, "[REDACTED"]:
        assert isinstance(redactor.redact(text), str)
    assert "a@example.com" not in redactor.redact("\ud800 lone surrogate a@example.com")


# -- properties (hypothesis) ----------------------------------------------------------------

_SECRETS = st.sampled_from(
    [
        "4111 1111 1111 1111",
        "bob@example.com",
        "AKIAZ3MPLEQ4RSTUV7WX",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        f"ghp_{ALNUM[:36]}",
        "123-45-6789",
        "GB82 WEST 1234 5698 7654 32",
    ]
)
_FILLER = st.text(alphabet=st.sampled_from("ab xyz019.,;:-_=/\"'\n"), max_size=30)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(before=_FILLER, secret=_SECRETS, after=_FILLER)
def test_property_planted_secret_never_survives(before: str, secret: str, after: str) -> None:
    out = hk.Redactor().redact(f"{before} {secret} {after}")
    assert secret not in out


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=200) | st.builds(lambda a, s, b: a + s + b, _FILLER, _SECRETS, _FILLER))
def test_property_idempotent_and_never_raises(text: str) -> None:
    redactor = hk.Redactor()
    once = redactor.redact(text)
    assert isinstance(once, str)
    assert redactor.redact(once) == once


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | _SECRETS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "password", "email", "n"]) | st.text(max_size=5), children, max_size=4
        )
    ),
    max_leaves=15,
)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(obj=_JSONISH)
def test_property_redact_obj_never_mutates(obj: Any) -> None:
    before = copy.deepcopy(obj)
    hk.Redactor().redact_obj(obj)
    assert obj == before


# -- hostile input ---------------------------------------------------------------------------

ADVERSARIAL = {
    "digits and spaces": "1 2 3 4 5 6 7 8 9 0 " * 20_000,
    "digit runs": "4" * 200_000,
    "ats and dots": "@." * 100_000 + "a@" * 50_000,
    "local parts": ("a" * 5000 + "@") * 40,
    "base64": "QUJD" * 50_000,
    "unterminated key": "-----BEGIN RSA PRIVATE KEY-----\n" * 5000,
    "endless password=": "password=" * 20_000,
    "eyJ runs": "eyJ" * 60_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_input_does_not_hang(redactor: hk.Redactor, name: str) -> None:
    text = ADVERSARIAL[name]
    started = time.monotonic()
    out = redactor.redact(text)
    assert isinstance(out, str)
    assert time.monotonic() - started < 15.0  # did not hang (a backtracking regex takes hours)


# -- RedactingFilter ---------------------------------------------------------------------------


def _logger_with_filter(name: str, flt: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(flt)
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log, stream


def test_filter_redacts_message_args_extras_exception_and_stack() -> None:
    log, stream = _logger_with_filter("contract.filter", hk.RedactingFilter())
    args_obj = {"card": "4111 1111 1111 1111"}
    extra_obj = {"email": "a@example.com", "nested": ["password=hunter2"]}
    extra_before = copy.deepcopy(extra_obj)
    catcher = _Collect()
    log.addHandler(catcher)
    records = catcher.records
    try:
        raise ValueError("bad key sk_live_4eC39HqLyjWDarjtT1zdp7dc for bob@example.com")
    except ValueError:
        log.exception("charge for %s failed: %s", "c@example.com", args_obj, extra={"details": extra_obj})
    pw = "hunter2"  # a variable: the stack text shows source lines
    log.warning("where is password=%s", pw, stack_info=True, extra={"who": "d@example.com"})
    text = stream.getvalue()
    for secret in (
        "4111 1111 1111 1111",
        "a@example.com",
        "hunter2",
        "sk_live_",
        "bob@example.com",
        "c@example.com",
    ):
        assert secret not in text
    assert "ValueError" in text and "Traceback" in text  # the exception is still there, redacted
    assert "Stack (most recent call last)" in text
    # the caller's objects are untouched
    assert args_obj == {"card": "4111 1111 1111 1111"}
    assert extra_obj == extra_before
    # the record's extras are redacted too (for any formatter that prints them)
    first, second = records
    assert "a@example.com" not in str(vars(first)["details"]) and vars(first)["details"] is not extra_obj
    assert vars(second)["who"] == "[REDACTED:email]"


def test_filter_with_a_custom_redactor_and_dict_args() -> None:
    log, stream = _logger_with_filter(
        "contract.filter2", hk.RedactingFilter(hk.Redactor(mode="hash", key="k"))
    )
    log.info("user %(email)s", {"email": "a@example.com"})
    text = stream.getvalue()
    assert "a@example.com" not in text and "[REDACTED:email:" in text


def test_filter_on_a_logger_works_with_caplog(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("contract.loggerfilter")
    flt = hk.RedactingFilter()
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="contract.loggerfilter"):
            log.info("token=%s for %s", "abc123secret", "e@example.com")
    finally:
        log.removeFilter(flt)
    assert "abc123secret" not in caplog.text and "e@example.com" not in caplog.text


# -- configure_logging ---------------------------------------------------------------------------


@pytest.fixture
def clean_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uv = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (hs, prop) in uv.items():
        logging.getLogger(name).handlers[:] = hs
        logging.getLogger(name).propagate = prop


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_configure_logging_json_lines_to_stderr(clean_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    hk.configure_logging(level="INFO", json=True, redact=True)
    log = logging.getLogger("contract.json")
    log.debug("not shown")
    log.info(
        "login for %s with password=%s",
        "alice@example.com",
        "hunter2",
        extra={"order": 7, "to": "b@example.com"},
    )
    (line,) = _json_lines(capsys.readouterr().err)
    assert line["level"] == "INFO" and line["logger"] == "contract.json"
    assert line["message"] == "login for [REDACTED:email] with password=[REDACTED:secret]"
    assert line["order"] == 7 and line["to"] == "[REDACTED:email]"
    stamp = line["timestamp"]
    assert isinstance(stamp, str) and stamp.endswith(("Z", "+00:00"))
    from datetime import datetime, timezone

    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and abs(parsed - datetime.now(timezone.utc)).total_seconds() < 300


def test_configure_logging_is_idempotent(clean_root: None) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    hk.configure_logging(stream=stream)
    count = len(root.handlers)
    hk.configure_logging(stream=stream)
    hk.configure_logging(level="INFO", json=True, redact=True, stream=stream)
    assert len(root.handlers) == count
    logging.getLogger("contract.idem").warning("once")
    assert len(_json_lines(stream.getvalue())) == 1


def test_configure_logging_structured_exception(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(stream=stream)
    try:
        raise KeyError("api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc")
    except KeyError:
        logging.getLogger("contract.exc").exception("failed")
    (line,) = _json_lines(stream.getvalue())
    assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" not in stream.getvalue()
    exc = line["exception"]
    assert isinstance(exc, dict) and "KeyError" in exc["type"] and "Traceback" in exc["traceback"]
    assert line["level"] == "ERROR"


def test_configure_logging_request_id_inside_a_request(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(stream=stream)

    async def endpoint(request: Request) -> Response:
        logging.getLogger("contract.app").info("handling", extra={"seen": hk.request_id()})
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(hk.HeaderContractMiddleware)
    with TestClient(app) as client:
        response = client.get("/", headers={"X-Request-ID": "contract-req-1"})
    lines = [line for line in _json_lines(stream.getvalue()) if line["logger"] == "contract.app"]
    assert lines and lines[0]["request_id"] == "contract-req-1" == response.headers["x-request-id"]
    logging.getLogger("contract.app").info("outside")
    assert "request_id" not in _json_lines(stream.getvalue())[-1] or _json_lines(stream.getvalue())[-1][
        "request_id"
    ] in (None, "")


def test_configure_logging_text_mode_one_line_per_record(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(level="DEBUG", json=False, stream=stream)
    log = logging.getLogger("contract.text")
    log.info("user input: %s", "x\r\nINFO forged line password=hunter2", extra={"note": "a\nb"})
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert "INFO" in text and "contract.text" in text and "hunter2" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_configure_logging_json_escapes_crlf(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(stream=stream)
    logging.getLogger("contract.inj").info('x\n{"level": "CRITICAL"}\r\nforged')
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["level"] == "INFO"


def test_configure_logging_redact_false_and_custom_redactor(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(redact=False, stream=stream)
    logging.getLogger("contract.raw").warning("mail a@example.com")
    assert "a@example.com" in stream.getvalue()
    stream2 = io.StringIO()
    hk.configure_logging(redact=hk.Redactor(mode="hash", key="k"), stream=stream2)
    logging.getLogger("contract.raw").warning("mail a@example.com")
    assert "[REDACTED:email:" in stream2.getvalue()


def test_configure_logging_bad_level(clean_root: None) -> None:
    with pytest.raises(hk.ConfigurationError):
        hk.configure_logging(level="LOUD")


def test_configure_logging_numeric_level(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(level=logging.WARNING, stream=stream)
    logging.getLogger("contract.num").info("hidden")
    logging.getLogger("contract.num").warning("shown")
    assert [line["message"] for line in _json_lines(stream.getvalue())] == ["shown"]


def test_configure_logging_brings_uvicorn_loggers_in(clean_root: None) -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.StreamHandler(io.StringIO()))
        logger.propagate = False
    stream = io.StringIO()
    hk.configure_logging(stream=stream)
    logging.getLogger("uvicorn.error").warning("server says token=abc123zz")
    logging.getLogger("uvicorn.access").warning('127.0.0.1 - "GET /?password=pw1 HTTP/1.1" 200')
    lines = _json_lines(stream.getvalue())
    assert [line["logger"] for line in lines] == ["uvicorn.error", "uvicorn.access"]
    assert "abc123zz" not in stream.getvalue() and "pw1" not in stream.getvalue()


def test_configure_logging_redacts_for_caplog_too(clean_root: None, caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    hk.configure_logging(stream=stream)
    with caplog.at_level(logging.INFO):
        logging.getLogger("contract.cap").info("mail %s", "z@example.com")
    assert "z@example.com" not in stream.getvalue()
    assert "z@example.com" not in caplog.text


# -- AccessLogMiddleware ---------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access() -> Iterator[_Collect]:
    handler = _Collect()
    log = logging.getLogger("hardenkit.access")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old_level)


async def _hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def _slow(request: Request) -> Response:
    await anyio.sleep(0.05)
    return PlainTextResponse("slow")


async def _boom(request: Request) -> Response:
    raise RuntimeError("exploded with password=hunter2")


def _app(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/", _hello), Route("/slow", _slow), Route("/boom", _boom)])
    app.add_middleware(hk.AccessLogMiddleware, **options)
    app.add_middleware(hk.HeaderContractMiddleware)
    return app


def test_access_log_one_line_with_all_fields(access: _Collect) -> None:
    with TestClient(_app()) as client:
        response = client.get(
            "/?page=2&token=abc123&email=a%40example.com", headers={"User-Agent": "contract/1"}
        )
    (record,) = access.records
    assert record.levelno == logging.INFO
    fields = vars(record)
    assert fields["method"] == "GET" and fields["path"] == "/" and fields["status"] == 200
    assert "abc123" not in fields["query"] and fields["query"].startswith("page=2&token=")
    assert isinstance(fields["duration_ms"], float) and fields["duration_ms"] >= 0
    assert fields["response_bytes"] == len(b"hello")
    assert "bytes" not in fields
    assert fields["client"] and fields["user_agent"] == "contract/1"
    assert fields["request_id"] == response.headers["x-request-id"]
    assert "GET" in record.getMessage() and "/" in record.getMessage()


def test_access_log_as_json_through_configure_logging(clean_root: None) -> None:
    stream = io.StringIO()
    hk.configure_logging(stream=stream)
    with TestClient(_app()) as client:
        client.get("/?password=pw99", headers={"User-Agent": "json/1"})
    (line,) = [line for line in _json_lines(stream.getvalue()) if line["logger"] == "hardenkit.access"]
    for key in (
        "method",
        "path",
        "query",
        "status",
        "duration_ms",
        "response_bytes",
        "client",
        "user_agent",
        "request_id",
        "timestamp",
        "level",
        "logger",
        "message",
    ):
        assert key in line, key
    assert "pw99" not in stream.getvalue()
    assert line["status"] == 200 and line["user_agent"] == "json/1"


def test_access_log_app_error_is_status_500(access: _Collect) -> None:
    with TestClient(_app()) as client, pytest.raises(RuntimeError):
        client.get("/boom")
    (record,) = access.records
    assert vars(record)["status"] == 500 and record.levelno >= logging.ERROR
    assert "hunter2" not in str(vars(record))


def test_access_log_app_error_with_server_answering(access: _Collect) -> None:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    assert [vars(r)["status"] for r in access.records] == [500]


def test_access_log_slow_requests_at_warning(access: _Collect) -> None:
    with TestClient(_app(slow_ms=1)) as client:
        client.get("/slow")
    with TestClient(_app()) as client:
        client.get("/")
    slow, fast = access.records
    assert slow.levelno == logging.WARNING and vars(slow)["duration_ms"] >= 1
    assert fast.levelno == logging.INFO


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_access_log_client_disconnect(access: _Collect, anyio_backend: str) -> None:
    async def waits(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    middleware = hk.AccessLogMiddleware(waits)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "headers": [(b"user-agent", b"gone/1")],
        "client": ("203.0.113.9", 4444),
        "server": ("127.0.0.1", 80),
    }
    messages = iter([{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    with anyio.fail_after(10):
        await middleware(scope, receive, send)
    (record,) = access.records
    assert (
        vars(record)["path"] == "/upload"
        and vars(record)["client"] == "203.0.113.9"
        and vars(record)["user_agent"] == "gone/1"
    )
    assert getattr(record, "disconnected", False) is True


@pytest.mark.anyio
async def test_access_log_passes_lifespan_through(access: _Collect) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    nothing: Any = None
    await hk.AccessLogMiddleware(app)({"type": "lifespan"}, nothing, nothing)
    assert seen == ["lifespan"] and access.records == []


def test_access_log_probe_paths_exempt_in_harden(access: _Collect) -> None:
    app = hk.harden(Starlette(routes=[Route("/", _hello)]), env=False)
    with TestClient(app) as client:
        assert client.get("/livez").status_code == 200
        client.get("/readyz")
        assert client.get("/").status_code == 200
    assert [vars(r)["path"] for r in access.records] == ["/"]


def test_access_log_exclude_paths(access: _Collect) -> None:
    with TestClient(_app(exclude_paths=["/slow"])) as client:
        client.get("/slow")
        client.get("/")
    assert [vars(r)["path"] for r in access.records] == ["/"]


def test_access_log_bad_options() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(hk.ConfigurationError):
        hk.AccessLogMiddleware(app, slow_ms=-1)
    with pytest.raises(hk.ConfigurationError):
        hk.AccessLogMiddleware(app, exclude_paths="/livez")


# -- hardenkit redact -----------------------------------------------------------------------------


def _cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hardenkit", "redact", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_cli_stdin_text_and_json_lines() -> None:
    record = {"level": "INFO", "message": "login bob@example.com", "password": "hunter2", "n": 5, "ok": True}
    stdin = "plain line card 4111 1111 1111 1111\n" + json.dumps(record) + "\nclean line\n"
    done = _cli(stdin=stdin)
    assert done.returncode == 0, done.stderr
    text_line, json_line, clean = done.stdout.splitlines()
    assert text_line == "plain line card [REDACTED:card]"
    parsed = json.loads(json_line)
    assert parsed["level"] == "INFO" and parsed["n"] == 5 and parsed["ok"] is True
    assert parsed["message"] == "login [REDACTED:email]" and parsed["password"] != "hunter2"
    assert set(parsed) == set(record)
    assert clean == "clean line"


def test_cli_files_and_a_missing_file(tmp_path: Path) -> None:
    one = tmp_path / "one.log"
    one.write_text("token=abc123zz\n", encoding="utf-8")
    two = tmp_path / "two.log"
    two.write_text(
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nafter\n",
        encoding="utf-8",
    )
    done = _cli(str(one), str(two))
    assert done.returncode == 0, done.stderr
    assert "abc123zz" not in done.stdout and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in done.stdout
    assert done.stdout.startswith("token=[REDACTED:secret]\n") and done.stdout.endswith("after\n")
    missing = _cli(str(one), str(tmp_path / "nope.log"))
    assert missing.returncode != 0 and "nope.log" in missing.stderr
    assert "token=[REDACTED:secret]" in missing.stdout


def test_cli_modes_and_bad_options() -> None:
    hashed = _cli("--mode", "hash", stdin="bob@example.com\n", env={"HARDENKIT_REDACT_KEY": "k"})
    assert hashed.returncode == 0
    assert hashed.stdout.strip() == hk.Redactor(mode="hash", key="k").redact("bob@example.com")
    assert _cli("--mode", "nonsense", stdin="").returncode == 2


def test_cli_console_script() -> None:
    script = Path(sys.executable).parent / "hardenkit"
    if not script.exists():
        pytest.skip("console script not installed next to the interpreter")
    done = subprocess.run(
        [str(script), "redact"], input="mail a@example.com\n", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "mail [REDACTED:email]\n"


def test_example_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "logging_example.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for secret in ("alice@example.com", "hunter2", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4111 1111 1111 1111"):
        assert secret not in done.stdout + done.stderr


def test_configure_logging_follows_a_later_stderr(clean_root: None) -> None:
    import contextlib

    hk.configure_logging()
    later = io.StringIO()
    with contextlib.redirect_stderr(later):
        logging.getLogger("contract.later").warning("mail %s", "f@example.com")
    (line,) = _json_lines(later.getvalue())
    assert line["message"] == "mail [REDACTED:email]"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("card 4111 1111 1111 1111 12/25", "card [REDACTED:card] 12/25"),
        ("qty 12 4111 1111 1111 1111", "qty 12 [REDACTED:card]"),
        ("ref42 4111 1111 1111 1111 ok", "ref42 [REDACTED:card] ok"),
        ("4111111111111111 3 items", "[REDACTED:card] 3 items"),
    ],
)
def test_card_next_to_other_numbers(redactor: hk.Redactor, line: str, expected: str) -> None:
    assert redactor.redact(line) == expected
