"""Build the labelled redaction corpus (deterministic: a fixed seed, no network).

    .venv/bin/python tests/redaction_corpus/make_corpus.py   # rewrites corpus.jsonl

Each line of corpus.jsonl is a JSON object: ``category``, ``text`` (one log
entry, a few of them span lines like a real private key), ``secrets`` (planted
values that must not survive redaction) and ``controls`` (values that must come
out unchanged). Entries of category ``control`` plant nothing: the redactor must
return them exactly as they are. ``opt_in`` entries need that category enabled.
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus.jsonl"
PER_CATEGORY = 16

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random text over ``alphabet`` with at least one upper, one lower letter and one digit."""
    while True:
        value = pick(rng, alphabet, n)
        if (
            any(c.isupper() for c in value)
            and any(c.islower() for c in value)
            and any(c.isdigit() for c in value)
        ):
            return value


def luhn_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def card(rng: random.Random) -> tuple[str, str]:
    prefix, length, groups = rng.choice(
        [
            ("4", 16, (4, 4, 4, 4)),
            ("51", 16, (4, 4, 4, 4)),
            ("55", 16, (4, 4, 4, 4)),
            ("2221", 16, (4, 4, 4, 4)),
            ("34", 15, (4, 6, 5)),
            ("37", 15, (4, 6, 5)),
            ("6011", 16, (4, 4, 4, 4)),
            ("65", 16, (4, 4, 4, 4)),
            ("3528", 16, (4, 4, 4, 4)),
            ("36", 14, (4, 6, 4)),
            ("4", 19, (4, 4, 4, 4, 3)),
            ("62", 16, (4, 4, 4, 4)),
        ]
    )
    body = prefix + pick(rng, string.digits, length - len(prefix) - 1)
    digits = body + luhn_digit(body)
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return digits, digits
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    return sep.join(parts), digits


def non_luhn(rng: random.Random, length: int) -> str:
    while True:
        body = rng.choice("123456789") + pick(rng, string.digits, length - 2)
        good = luhn_digit(body)
        bad = str((int(good) + rng.randint(1, 9)) % 10)
        return body + bad


IBAN_FORMATS = {
    "DE": "18n",
    "GB": "4a14n",
    "FR": "23n",
    "NL": "4a10n",
    "ES": "20n",
    "IT": "1a22n",
    "BE": "12n",
    "CH": "17n",
}


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_FORMATS))
    spec = IBAN_FORMATS[country]
    bban = ""
    number = ""
    for char in spec:
        if char.isdigit():
            number += char
            continue
        count = int(number)
        number = ""
        bban += pick(rng, string.ascii_uppercase if char == "a" else string.digits, count)
    rearranged = bban + country + "00"
    value = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - value % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"+1 {a} {b} {c:04d}",
            f"+1-{a}-{b}-{c:04d}",
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"{a}.{b}.{c:04d}",
            f"+44 20 {rng.randint(7000, 7999)} {c:04d}",
            f"+49{rng.randint(151, 179)}{rng.randint(1000000, 9999999)}",
            f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        ]
    )


def email(rng: random.Random) -> str:
    user = rng.choice(["alice", "bob.smith", "c.d_e", "ops+alerts", "j.doe", "x"]) + str(rng.randint(0, 999))
    domain = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "example.io"])
    return f"{user}@{domain}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(rng: random.Random) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(
        json.dumps({"sub": str(rng.randint(1, 10**9)), "name": "x" * rng.randint(1, 40)}).encode()
    )
    return f"{header}.{payload}.{pick(rng, B64URL, 43)}"


def pem(rng: random.Random) -> str:
    kind = rng.choice(
        ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
    )
    body = "\n".join(pick(rng, B64, 64) for _ in range(rng.randint(2, 6)))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def rid(rng: random.Random) -> str:
    return rng.choice(
        [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            pick(rng, HEX, 32),
            "req_" + pick(rng, ALNUM, 22),
            pick(rng, "0123456789ABCDEFGHJKMNPQRSTVWXYZ", 26),
            f"{pick(rng, HEX, 16)}:{pick(rng, HEX, 8)}:0:1",
            f"web-{rng.randint(1, 99)}.{pick(rng, ALNUM, 12)}",
        ]
    )


def stamp(rng: random.Random) -> str:
    y, mo, d = rng.randint(2020, 2030), rng.randint(1, 12), rng.randint(1, 28)
    h, mi, s, ms = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999)
    return rng.choice(
        [
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}Z",
            f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{ms:03d}",
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+02:00",
            str(rng.randint(1_600_000_000, 1_900_000_000)),
            str(rng.randint(1_600_000_000_000, 1_900_000_000_000)),
            str(rng.randint(1_600_000_000_000_000_000, 1_900_000_000_000_000_000)),
            f"{y}{mo:02d}{d:02d}{h:02d}{mi:02d}{s:02d}",
            f"{d:02d}/Jan/{y}:{h:02d}:{mi:02d}:{s:02d} +0000",
        ]
    )


def digest(rng: random.Random) -> str:
    return pick(rng, HEX, rng.choice([32, 40, 56, 64, 128]))


# -- planted secrets: category -> generator of (text, secrets) ------------------------


def planted(category: str, rng: random.Random) -> tuple[str, list[str]]:
    r = rid(rng)
    ts = stamp(rng)
    if category == "private_key":
        key = pem(rng)
        body_lines = key.splitlines()[1:-1]
        return f"{ts} ERROR tls loading key request_id={r}\n{key}\nnext line", body_lines
    if category == "jwt":
        token = jwt(rng)
        return rng.choice(
            [
                f"{ts} INFO got token {token} request_id={r}",
                f'{{"jwt": "{token}", "ts": "{ts}"}}',
                f"id_token={token}&state=x",
            ]
        ), [token]
    if category == "aws_key":
        key = rng.choice(["AKIA", "ASIA"]) + pick(rng, string.ascii_uppercase + string.digits, 16)
        return f"{ts} INFO using credentials {key} for s3 request_id={r}", [key]
    if category == "aws_secret":
        secret = pick(rng, ALNUM, 20) + rng.choice("/+") + pick(rng, B64, 19)
        return rng.choice(
            [
                f"aws_secret_access_key = {secret}",
                f'{{"SecretAccessKey": "{secret}", "RequestId": "{r}"}}',
                f"{ts} WARN aws credentials leaked: {secret}",
            ]
        ), [secret]
    if category == "github_token":
        token = rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + pick(rng, ALNUM, 36)
        if rng.random() < 0.3:
            token = "github_pat_" + pick(rng, ALNUM, 22) + "_" + pick(rng, ALNUM, 59)
        return (
            f"{ts} INFO git clone https://x-access:{token}@github.com/org/repo.git failed; retrying with {token}",
            [token],
        )
    if category == "gitlab_token":
        token = "glpat-" + pick(rng, ALNUM + "_-", 20)
        return f"{ts} DEBUG PRIVATE-TOKEN {token} request_id={r}", [token]
    if category == "slack_token":
        token = (
            rng.choice(["xoxb-", "xoxp-"])
            + f"{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-{pick(rng, ALNUM, 24)}"
        )
        return f"{ts} INFO slack client token={token}", [token]
    if category == "slack_webhook":
        path = f"T{pick(rng, string.ascii_uppercase + string.digits, 8)}/B{pick(rng, string.ascii_uppercase + string.digits, 8)}/{pick(rng, ALNUM, 24)}"
        return f"{ts} INFO posting alert to https://hooks.slack.com/services/{path}", [path]
    if category == "stripe_key":
        key = rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + pick(rng, ALNUM, 24)
        return f"{ts} ERROR stripe auth failed for {key}", [key]
    if category == "google_api_key":
        key = "AIza" + pick(rng, ALNUM + "_-", 35)
        return f"GET /maps/api/geocode/json?address=x&key={key} 200", [key]
    if category == "openai_key":
        key = "sk-" + rng.choice(["", "proj-"]) + mixed(rng, ALNUM, 48)
        return f"{ts} INFO openai client configured with {key}", [key]
    if category == "anthropic_key":
        key = "sk-ant-api03-" + pick(rng, ALNUM + "_-", 93) + "AA"
        return f"{ts} INFO anthropic key {key} request_id={r}", [key]
    if category == "npm_token":
        token = "npm_" + pick(rng, ALNUM, 36)
        return f"//registry.npmjs.org/:_authToken={token}", [token]
    if category == "pypi_token":
        token = "pypi-AgEIcHlwaS5vcmc" + pick(rng, B64URL, rng.randint(60, 180))
        return f"{ts} INFO twine upload --password {token}", [token]
    if category == "sendgrid_key":
        key = "SG." + pick(rng, B64URL, 22) + "." + pick(rng, B64URL, 43)
        return f"{ts} INFO mailer using {key}", [key]
    if category == "twilio_key":
        key = "SK" + pick(rng, HEX, 32)
        return f"{ts} INFO twilio api key sid {key}", [key]
    if category == "azure_key":
        key = pick(rng, B64, 86) + "=="
        if rng.random() < 0.5:
            return (
                f"DefaultEndpointsProtocol=https;AccountName=acct{rng.randint(1, 99)};AccountKey={key};EndpointSuffix=core.windows.net",
                [key],
            )
        return f"{ts} INFO storage key {mixed(rng, B64, 86)}==".rsplit(" ", 1)[0] + f" {key}", [key]
    if category == "authorization":
        token = mixed(rng, ALNUM + "-._~", rng.randint(20, 60))
        basic = base64.b64encode(f"user{rng.randint(1, 99)}:{pick(rng, ALNUM, 12)}".encode()).decode()
        return rng.choice(
            [
                (f"Authorization: Bearer {token}", [token]),
                (f"{ts} DEBUG header Authorization: Basic {basic}", [basic]),
                (f'{{"headers": {{"authorization": "Bearer {token}"}}}}', [token]),
                (f"{ts} WARN rejected Bearer {token} request_id={r}", [token]),
            ]
        )
    if category == "cookie":
        sess = pick(rng, ALNUM, 32)
        csrf = pick(rng, ALNUM, 32)
        return rng.choice(
            [
                (f"Cookie: sessionid={sess}; csrftoken={csrf}", [sess, csrf]),
                (f"Set-Cookie: session={sess}; Path=/; HttpOnly; Secure", [sess]),
                (f"{ts} DEBUG cookie={sess} request_id={r}", [sess]),
            ]
        )
    if category == "url_password":
        password = pick(rng, ALNUM + "!$*", rng.randint(8, 20))
        return f"{ts} INFO fetching https://deploy:{password}@artifacts.example.com/releases/v1.tar.gz", [
            password
        ]
    if category == "db_connection":
        password = pick(rng, ALNUM + "!*", rng.randint(8, 20))
        return rng.choice(
            [
                (f"{ts} INFO connecting postgresql://app:{password}@db.internal:5432/orders", [password]),
                (
                    f"{ts} INFO mongodb+srv://svc:{password}@cluster0.example.mongodb.net/app?retryWrites=true",
                    [password],
                ),
                (f"DATABASE_URL=mysql://root:{password}@127.0.0.1:3306/shop", [password]),
                (
                    f"Server=tcp:sql.example.net,1433;Database=app;User ID=app;Password={password};Encrypt=True",
                    [password],
                ),
                (f"{ts} redis://:{password}@cache:6379/0 ready", [password]),
            ]
        )
    if category == "secret":
        value = pick(rng, ALNUM + "!@#%^*", rng.randint(6, 24))
        return rng.choice(
            [
                (f"{ts} INFO login user=bob password={value} request_id={r}", [value]),
                (f'{{"user": "bob", "api_key": "{value}", "request_id": "{r}"}}', [value]),
                (f"client_secret: {value}", [value]),
                (f"{ts} DEBUG config {{'db_password': '{value}', 'pool': 5}}", [value]),
                (f"POST /oauth/token grant_type=refresh&refresh_token={value}&x=1", [value]),
                (f'{ts} INFO {{"accessToken":"{value}","expires_in":3600}}', [value]),
                (f"X-Api-Key: {value}", [value]),
                (f"passwd={value} sessionId={value}x", [value, value + "x"]),
            ]
        )
    if category == "card":
        shown, _ = card(rng)
        return rng.choice(
            [
                f"{ts} INFO charge card={shown} amount=12.50 request_id={r}",
                f'{{"card_number": "{shown}", "order": {rng.randint(1000, 99999)}}}',
                f"{ts} WARN payment declined for {shown}",
            ]
        ), [shown]
    if category == "iban":
        value = iban(rng)
        return f"{ts} INFO payout to {value} amount=100.00 EUR request_id={r}", [value]
    if category == "email":
        value = email(rng)
        return rng.choice(
            [
                f"{ts} INFO sent receipt to {value}",
                f'{{"email": "{value}"}}',
                f"user <{value}> logged in from web",
            ]
        ), [value]
    if category == "phone":
        value = phone(rng)
        return rng.choice([f"{ts} INFO sms to {value} queued", f"contact phone: {value}; request_id={r}"]), [
            value
        ]
    if category == "ssn":
        value = ssn(rng)
        return f"{ts} INFO kyc check ssn {value} request_id={r}", [value]
    if category == "ip":
        value = rng.choice(
            [
                f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"2001:db8::{rng.randint(1, 65535):x}",
            ]
        )
        return f"{ts} INFO client {value} connected", [value]
    raise ValueError(category)


CATEGORIES = [
    "private_key", "jwt", "aws_key", "aws_secret", "github_token", "gitlab_token", "slack_token", "slack_webhook",
    "stripe_key", "google_api_key", "openai_key", "anthropic_key", "npm_token", "pypi_token", "sendgrid_key",
    "twilio_key", "azure_key", "authorization", "cookie", "url_password", "db_connection", "secret", "card",
    "iban", "email", "phone", "ssn", "ip",
]  # fmt: skip


def control(rng: random.Random) -> tuple[str, list[str]]:
    r = rid(rng)
    ts = stamp(rng)
    kind = rng.randrange(12)
    if kind == 0:
        return (
            f"{ts} INFO request_id={r} GET /api/orders/{rng.randint(1, 10**6)} 200 {rng.randint(1, 900)}ms",
            [r, ts],
        )
    if kind == 1:
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return f'{{"time": "{ts}", "trace_id": "{u}", "span": "{pick(rng, HEX, 16)}"}}', [u, ts]
    if kind == 2:
        d = digest(rng)
        return f"{ts} INFO artifact sha={d} verified", [d]
    if kind == 3:
        n = non_luhn(rng, rng.randint(13, 19))
        return f"{ts} INFO order number {n} shipped", [n]
    if kind == 4:
        n = non_luhn(rng, 16)
        spaced = " ".join(n[i : i + 4] for i in range(0, 16, 4))
        return f"{ts} INFO reference {spaced} accepted", [spaced]
    if kind == 5:
        return (
            f"{ts} INFO tokenizer=bert-base credit={rng.randint(0, 500)} max_tokens={rng.randint(1, 4096)}",
            ["bert-base"],
        )
    if kind == 6:
        return f"{ts} INFO Basic information about the plan; Bearer token expected; keyboard ok", [
            "information"
        ]
    if kind == 7:
        return (
            f"{ts} INFO commit {pick(rng, HEX, 40)} deployed v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
            [],
        )
    if kind == 8:
        return (
            f"{ts} DEBUG x-request-id: {r} latency_ms={rng.random() * 1000:.3f} bytes={rng.randint(0, 10**7)}",
            [r],
        )
    if kind == 9:
        return (
            f"{ts} INFO user_id={rng.randint(1, 10**9)} tenant={pick(rng, string.ascii_lowercase, 8)} ok",
            [],
        )
    if kind == 10:
        return (
            f'{ts} INFO ssh git@github path=/v1/items?page={rng.randint(1, 99)}&limit=50 etag="{pick(rng, HEX, 32)}"',
            [],
        )
    return (
        f"{ts} INFO cache hit ratio {rng.random():.4f} for {pick(rng, string.ascii_lowercase, 6)}.{pick(rng, string.ascii_lowercase, 4)}",
        [],
    )


def build() -> list[dict[str, Any]]:
    rng = random.Random(20260504)
    entries: list[dict[str, Any]] = []
    for category in CATEGORIES:
        for _ in range(PER_CATEGORY):
            text, secrets = planted(category, rng)
            entry: dict[str, Any] = {"category": category, "text": text, "secrets": secrets, "controls": []}
            if category == "ip":
                entry["opt_in"] = True
            entries.append(entry)
    for _ in range(130):
        text, controls = control(rng)
        entries.append({"category": "control", "text": text, "secrets": [], "controls": controls})
    return entries


def render(entries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n" for entry in entries)


def main() -> int:
    OUT.write_text(render(build()), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
