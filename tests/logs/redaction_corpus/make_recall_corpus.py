"""Build the recall corpus: provider token formats in every shape, plus non-secret controls.

    .venv/bin/python tests/logs/redaction_corpus/make_recall_corpus.py            # rewrites recall_corpus.jsonl
    .venv/bin/python tests/logs/redaction_corpus/make_recall_corpus.py --report   # recall table for the docs

The token formats below are written from the providers' own descriptions of
their tokens (prefix, length, alphabet, checksum); the bodies are random with a
fixed seed. Nothing is copied from a secret scanner's fixtures, and nothing here
imports hardenkit's rules: the corpus is an independent check of them.

Each line of recall_corpus.jsonl is a JSON object: ``family`` (a provider, or
``control``), ``shape`` (``bare``, ``json``, ``query``, ``assign:<syntax>``,
``header``, ``yaml_env``; controls: ``log``, ``code``, ``template``, ``path``,
``url``), ``distinctive`` (the format has a prefix of its own), ``text`` and
``secrets`` (values that must not survive redaction).
"""

from __future__ import annotations

import json
import random
import string
import sys
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "recall_corpus.jsonl"
SEED = 20261201

ALPHABETS = {
    "an": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "up": string.ascii_uppercase + string.digits,
    "lo": string.ascii_lowercase + string.digits,
    "b64u": string.ascii_letters + string.digits + "-_",
    "b64": string.ascii_letters + string.digits + "+/",
    "d": string.digits,
    "L": string.ascii_letters,
    "b32": "abcdefghijklmnopqrstuvwxyz234567",
    "bech": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
    "azs": string.ascii_letters + string.digits + "_~.-",
}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def fill(rng: random.Random, template: str) -> str:
    """``ghp_{an:36}`` -> ``ghp_`` and 36 random characters of the ``an`` alphabet; ``{uuid}``."""
    out = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        spec, _, rest = tail.partition("}")
        out.append(head)
        if spec == "uuid":
            out.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            continue
        name, _, count = spec.partition(":")
        out.append("".join(rng.choice(ALPHABETS[name]) for _ in range(int(count))))
    out.append(rest)
    return "".join(out)


def crc_token(prefix: str) -> Callable[[random.Random], str]:
    """GitHub's and npm's format: 30 random base62 characters and their CRC32 in 6 base62 digits."""

    def make(rng: random.Random) -> str:
        body = fill(rng, "{an:30}")
        value = zlib.crc32(body.encode())
        digits = ""
        while value:
            value, rest = divmod(value, 62)
            digits = BASE62[rest] + digits
        return prefix + body + digits.rjust(6, "0")

    return make


Maker = Callable[[random.Random], "tuple[str, str] | str"]


def t(*templates: str) -> list[Maker]:
    return [_template(tpl) for tpl in templates]


def _template(template: str) -> Maker:
    def make(rng: random.Random) -> str:
        return fill(rng, template)

    return make


def url(template: str, secret: str) -> Maker:
    """A token that is a URL: the text to plant and the part that must disappear."""

    def make(rng: random.Random) -> tuple[str, str]:
        values = {name: fill(rng, spec) for name, spec in (part.split("=", 1) for part in secret.split(";"))}
        text = template
        for name, value in values.items():
            text = text.replace(f"<{name}>", value)
        return text, "".join(values.values()) if len(values) == 1 else values["s"]

    return make


def jwt(rng: random.Random) -> str:
    import base64

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    header = b64({"alg": "RS256", "kid": fill(rng, "{b64u:43}")})
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:default:{fill(rng, '{lo:8}')}",
    }
    return f"{header}.{b64(claims)}.{fill(rng, '{b64u:342}')}"


def pem_base64(rng: random.Random) -> str:
    """kubeconfig's client-key-data: a PEM private key, base64-encoded."""
    import base64

    body = "\n".join(fill(rng, "{b64:64}") for _ in range(4))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    return base64.b64encode(pem.encode()).decode()


# family -> (distinctive prefix?, makers). Formats as the providers document them.
FAMILIES: dict[str, tuple[bool, list[Maker]]] = {
    "github": (True, [crc_token("ghp_"), crc_token("gho_"), crc_token("ghu_"), crc_token("ghs_"), crc_token("ghr_"), *t("github_pat_{an:22}_{an:59}")]),
    "gitlab": (True, t("glpat-{b64u:20}", "gloas-{b64u:64}", "gldt-{b64u:20}", "glrt-{b64u:20}", "glcbt-{hex:2}_{b64u:20}", "glptt-{hex:40}", "glft-{b64u:20}", "glimt-{lo:25}", "glagent-{b64u:50}", "glsoat-{b64u:20}", "glffct-{b64u:20}", "glpat-{b64u:27}{b64u:20}.01.{lo:9}", "GR1348941{b64u:20}")),
    "slack": (True, t("xoxb-{d:12}-{d:13}-{an:24}", "xoxp-{d:12}-{d:12}-{d:13}-{hex:32}", "xapp-1-{up:11}-{d:13}-{hex:64}", "xoxe.xoxp-1-{an:140}", "xoxe-1-{an:140}", "xoxc-{d:12}-{d:12}-{d:13}-{hex:64}", "xoxs-{d:12}-{d:12}-{d:13}-{hex:32}", "xoxd-{an:60}%2B{an:40}%3D")),
    "slack_webhook": (True, [url("https://hooks.slack.com/services/<s>", "s=T{up:8}/B{up:10}/{an:24}"), url("https://hooks.slack.com/workflows/<s>", "s=T{up:8}/A{up:10}/{d:18}/{an:24}")]),
    "stripe": (True, t("sk_live_{an:24}", "sk_test_{an:99}", "rk_live_{an:24}", "sk_prod_{an:24}", "whsec_{an:32}")),
    "google_api": (True, t("AIza{b64u:35}")),
    "gcp_oauth": (True, t("GOCSPX-{b64u:28}")),
    "google_oauth": (True, t("ya29.{b64u:150}", "1//0{b64u:100}")),
    "openai": (True, t("sk-proj-{b64u:72}T3BlbkFJ{b64u:72}", "sk-{an:20}T3BlbkFJ{an:20}", "sk-svcacct-{b64u:100}", "sk-admin-{b64u:100}")),
    "anthropic": (True, t("sk-ant-api03-{b64u:93}AA", "sk-ant-admin01-{b64u:93}AA")),
    "openrouter": (True, t("sk-or-v1-{hex:64}")),
    "deepseek": (True, t("sk-{hex:32}")),
    "huggingface": (True, t("hf_{L:34}", "api_org_{L:34}")),
    "replicate": (True, t("r8_{an:37}")),
    "groq": (True, t("gsk_{an:52}")),
    "perplexity": (True, t("pplx-{an:48}")),
    "xai": (True, t("xai-{an:80}")),
    "langsmith": (True, t("lsv2_pt_{hex:32}_{hex:10}", "lsv2_sk_{hex:32}_{hex:10}")),
    "pinecone": (True, t("pcsk_{an:5}_{an:64}")),
    "together": (True, t("tgp_v1_{b64u:43}")),
    "elevenlabs": (True, t("sk_{hex:48}")),
    "firecrawl": (True, t("fc-{hex:32}")),
    "tavily": (True, t("tvly-{an:32}", "tvly-dev-{an:32}")),
    "jina": (True, t("jina_{an:60}")),
    "e2b": (True, t("e2b_{hex:40}")),
    "npm": (True, [crc_token("npm_")]),
    "pypi": (True, t("pypi-AgEIcHlwaS5vcmc{b64u:150}")),
    "rubygems": (True, t("rubygems_{hex:48}")),
    "nuget": (True, t("oy2{lo:43}")),
    "crates": (True, t("cio{an:32}")),
    "clojars": (True, t("CLOJARS_{lo:60}")),
    "docker": (True, t("dckr_pat_{b64u:27}", "dckr_oat_{b64u:32}")),
    "jfrog": (True, t("AKCp{an:69}", "cmVmdGtu{an:56}")),
    "sourcegraph": (True, t("sgp_{hex:16}_{hex:40}", "sgp_local_{hex:40}")),
    "sonarqube": (True, t("squ_{hex:40}", "sqp_{hex:40}", "sqa_{hex:40}")),
    "bitbucket": (True, t("ATBB{an:32}{HEX:8}")),
    "atlassian": (True, t("ATATT3xFfGF0{b64u:170}={HEX:8}", "ATCTT3xFfGN0{b64u:170}={HEX:8}")),
    "aws_access_key": (True, t("AKIA{up:16}", "ASIA{up:16}")),
    "aws_session": (True, t("IQoJb3JpZ2luX2VjE{b64:300}", "FwoGZXIvYXdzE{b64:250}")),
    "aws_bedrock": (True, t("ABSKQmVkcm9ja0FQSUtleS1{b64:100}", "bedrock-api-key-{b64:200}")),
    "amazon_mws": (True, t("amzn.mws.{uuid}")),
    "amazon_lwa": (True, t("amzn1.oa2-cs.v1.{hex:64}", "Atza|{b64u:300}", "Atzr|{b64u:300}")),
    "firebase": (True, t("AAAA{b64u:7}:APA91b{b64u:134}")),
    "azure_ad": (True, t("{an:3}{d:1}Q~{azs:34}", "{an:3}{d:1}Q~{azs:31}")),
    "alibaba": (True, t("LTAI{an:20}", "LTAI{an:16}")),
    "tencent": (True, t("AKID{an:32}")),
    "yandex": (True, t("AQVN{b64u:36}")),
    "scaleway": (True, t("SCW{up:17}")),
    "digitalocean": (True, t("dop_v1_{hex:64}", "doo_v1_{hex:64}", "dor_v1_{hex:64}")),
    "heroku": (True, t("HRKU-AA{b64u:58}")),
    "fly": (True, t("fm2_{b64:200}", "fo1_{b64u:43}")),
    "render": (True, t("rnd_{an:32}")),
    "netlify": (True, t("nfp_{an:36}")),
    "cloudflare": (True, t("v1.0-{hex:24}-{hex:146}")),
    "akamai": (True, t("akab-{lo:16}-{lo:16}")),
    "vault": (True, t("hvs.{b64u:90}", "hvb.{b64u:138}", "hvr.{b64u:24}")),
    "terraform": (True, t("{an:14}.atlasv1.{b64u:67}")),
    "pulumi": (True, t("pul-{hex:40}")),
    "databricks": (True, t("dapi{hex:32}", "dapi{hex:32}-2", "dose{hex:32}")),
    "planetscale": (True, t("pscale_tkn_{b64u:43}", "pscale_pw_{b64u:43}", "pscale_oauth_{b64u:43}")),
    "supabase": (True, t("sbp_{hex:40}", "sb_secret_{b64u:31}")),
    "neon": (True, t("napi_{lo:64}")),
    "elastic": (True, t("essu_{b64:100}")),
    "tailscale": (True, t("tskey-api-{an:16}-{an:34}", "tskey-auth-{an:17}-{an:34}", "tskey-client-{an:16}-{an:34}")),
    "defined_networking": (True, t("dnkey-{lo:26}-{lo:52}")),
    "age": (True, t("AGE-SECRET-KEY-1{bech:58}")),
    "onepassword": (True, t("ops_eyJ{b64u:600}", "A3-{up:6}-{up:6}-{up:5}-{up:5}-{up:5}-{up:5}", "A3-{up:6}-{up:11}-{up:5}-{up:5}-{up:5}")),
    "doppler": (True, t("dp.pt.{an:43}", "dp.st.{an:43}", "dp.sa.{an:43}", "dp.ct.{an:43}", "dp.scim.{an:43}", "dp.audit.{an:43}")),
    "infracost": (True, t("ico-{an:32}")),
    "octopus": (True, t("API-{up:26}", "API-{up:32}")),
    "harness": (True, t("pat.{b64u:22}.{an:24}.{an:20}", "sat.{b64u:22}.{an:24}.{an:20}")),
    "circleci": (True, t("CCIPAT_{an:22}_{hex:40}", "CCIPRJ_{an:22}_{hex:40}")),
    "buildkite": (True, t("bkua_{hex:40}")),
    "scalingo": (True, t("tk-us-{b64u:48}")),
    "prefect": (True, t("pnu_{an:36}")),
    "dbt": (True, t("dbtc_{b64u:50}")),
    "discord": (True, t("M{b64u:25}.{b64u:6}.{b64u:38}", "N{b64u:25}.{b64u:6}.{b64u:27}", "O{b64u:23}.{b64u:6}.{b64u:38}")),
    "discord_webhook": (True, [url("https://discord.com/api/webhooks/<i>/<s>", "i={d:18};s={b64u:68}")]),
    "telegram": (True, t("{d:10}:AA{b64u:33}", "{d:9}:AA{b64u:33}")),
    "teams_webhook": (True, [url("https://contoso.webhook.office.com/webhookb2/<s>", "s={uuid}@{uuid}/IncomingWebhook/{hex:32}/{uuid}")]),
    "zapier_webhook": (True, [url("https://hooks.zapier.com/hooks/catch/<s>/", "s={d:7}/{lo:6}")]),
    "mattermost_webhook": (True, [url("https://chat.example.com/hooks/<s>", "s={lo:26}")]),
    "linear": (True, t("lin_api_{an:40}", "lin_oauth_{an:40}")),
    "notion": (True, t("secret_{an:43}", "ntn_{d:11}{an:35}")),
    "airtable": (True, t("pat{an:14}.{hex:64}")),
    "asana": (True, t("2/{d:16}/{d:16}:{hex:32}", "1/{d:16}:{hex:32}")),
    "clickup": (True, t("pk_{d:8}_{up:32}")),
    "figma": (True, t("figd_{b64u:40}")),
    "typeform": (True, t("tfp_{b64u:44}_{an:14}")),
    "hubspot": (True, t("pat-na1-{uuid}", "pat-eu1-{uuid}")),
    "contentful": (True, t("CFPAT-{b64u:43}")),
    "postman": (True, t("PMAK-{hex:24}-{hex:34}")),
    "readme": (True, t("rdme_{lo:70}")),
    "frameio": (True, t("fio-u-{b64u:64}")),
    "dropbox": (True, t("sl.{b64u:136}", "sl.u.{b64u:200}")),
    "salesforce": (True, t("00D{an:12}!AQ{an:100}", "00D{an:15}!AR{an:110}")),
    "twitch": (True, t("oauth:{lo:30}")),
    "twitter": (True, t("AAAAAAAAAAAAAAAAAAAAAA{an:90}")),
    "facebook": (True, t("EAAB{an:180}", "EAAG{an:200}")),
    "instagram": (True, t("IGQVJ{b64u:200}")),
    "pinterest": (True, t("pina_{up:96}")),
    "foursquare": (True, t("fsq3{b64:44}")),
    "mapbox": (True, t("sk.eyJ{b64u:60}.{b64u:22}", "pk.eyJ{b64u:60}.{b64u:22}")),
    "square": (True, t("sq0atp-{b64u:22}", "sq0csp-{b64u:43}", "EAAA{b64u:60}")),
    "braintree": (True, t("access_token$production${lo:16}${hex:32}", "access_token$sandbox${lo:16}${hex:32}")),
    "plaid": (True, t("access-sandbox-{uuid}", "access-production-{uuid}")),
    "razorpay": (True, t("rzp_live_{an:14}", "rzp_test_{an:14}")),
    "flutterwave": (True, t("FLWSECK-{hex:32}-X", "FLWSECK_TEST-{hex:32}-X", "FLWPUBK-{hex:32}-X")),
    "shippo": (True, t("shippo_live_{hex:40}", "shippo_test_{hex:40}")),
    "easypost": (True, t("EZAK{an:54}", "EZTK{an:54}")),
    "lob": (True, t("live_{hex:35}", "test_pub_{hex:31}")),
    "shopify": (True, t("shpat_{hex:32}", "shpca_{hex:32}", "shppa_{hex:32}", "shpss_{hex:32}")),
    "woocommerce": (True, t("ck_{hex:40}", "cs_{hex:40}")),
    "duffel": (True, t("duffel_test_{b64u:43}", "duffel_live_{b64u:43}")),
    "checkout": (True, t("sk_sbox_{b32:26}")),
    "gocardless": (True, t("live_{b64u:40}")),
    "stytch": (True, t("secret-live-{b64u:36}=", "secret-test-{b64u:36}=")),
    "paddle": (True, t("pdl_live_apikey_{lo:26}_{an:22}_{an:3}", "pdl_sdbx_apikey_{lo:26}_{an:22}_{an:3}")),
    "backblaze": (True, t("K00{an:28}")),
    "deno": (True, t("ddp_{an:36}", "ddw_{an:36}")),
    "adobe": (True, t("p8e-{b64u:32}")),
    "cloudinary": (True, [url("cloudinary://<i>:<s>@demo-cloud", "i={d:15};s={b64u:27}")]),
    "sendgrid": (True, t("SG.{b64u:22}.{b64u:43}")),
    "mailgun": (True, t("key-{hex:32}", "{hex:32}-{hex:8}-{hex:8}")),
    "mailchimp": (True, t("{hex:32}-us{d:2}", "{hex:32}-us{d:1}")),
    "brevo": (True, t("xkeysib-{hex:64}-{an:16}", "xsmtpsib-{hex:64}-{an:16}")),
    "mandrill": (True, t("md-{b64u:22}")),
    "resend": (True, t("re_{an:8}_{an:24}")),
    "twilio": (True, t("SK{hex:32}")),
    "segment": (True, t("sgp_{an:64}")),
    "posthog": (True, t("phx_{an:43}", "phc_{an:43}")),
    "grafana": (True, t("glc_eyJ{b64:120}", "glsa_{an:32}_{hex:8}", "eyJrIjoi{an:60}")),
    "sentry": (True, [*t("sntrys_eyJ{b64:150}", "sntryu_{hex:64}"), url("https://<s>@o<o>.ingest.sentry.io/4506", "s={hex:32};o={d:6}")]),
    "new_relic": (True, t("NRAK-{up:27}", "NRJS-{hex:19}", "NRIQ-{an:27}", "NRII-{b64u:32}", "{hex:36}NRAL")),
    "dynatrace": (True, t("dt0c01.{up:24}.{up:64}", "dt0s01.{up:24}.{up:64}")),
    "honeycomb": (True, t("hcaik_01{lo:56}", "hcxik_01{lo:56}")),
    "datadog_client": (True, t("pub{hex:32}")),
    "launchdarkly": (True, t("sdk-{uuid}", "mob-{uuid}")),
    "adafruit": (True, t("aio_{an:28}")),
    "kubernetes": (True, [jwt, lambda rng: pem_base64(rng)]),
    "okta": (True, [url("SSWS <s>", "s=00{b64u:40}")]),
    "splunk": (True, [url("Splunk <s>", "s={uuid}")]),
    # Formats without a prefix of their own: found by their key, header or URL, not bare.
    "aws_secret": (False, t("{b64:40}")),
    "azure_storage": (False, t("{b64:86}==")),
    "azure_devops": (False, t("{b32:52}")),
    "datadog_api": (False, t("{hex:32}", "{hex:40}")),

    "cohere": (False, t("{an:40}")),
    "mistral": (False, t("{an:32}")),
    "algolia": (False, t("{hex:32}")),
    "twilio_auth": (False, t("{hex:32}")),
    "snyk": (False, t("{uuid}")),
    "zendesk": (False, t("{an:40}")),
    "fastly": (False, t("{b64u:32}")),
    "hardenkit": (True, t("hkey_{lo:12}_{an:49}")),
}  # fmt: skip

# Secret-like key names, with every way of writing them.
KEYS = [
    "api_key", "apiKey", "API_KEY", "token", "access_token", "accessToken", "auth_token", "secret",
    "client_secret", "password", "secret_value", "token3", "user_auth", "x-api-key", "apiToken",
    "private_token", "SECRET_KEY", "credentials", "refresh_token", "db_password", "service_key",
]  # fmt: skip

ASSIGN: dict[str, Callable[[str, str], str]] = {
    "eq": lambda k, v: f"{k}={v}",
    "eq_spaced": lambda k, v: f"{k} = {v}",
    "colon": lambda k, v: f"level=info msg=loaded {k}: {v} in 3ms",
    "json": lambda k, v: f'{{"{k}": "{v}", "region": "eu-west-1"}}',
    "json_compact": lambda k, v: f'{{"user":"bob","{k}":"{v}"}}',
    "python_dict": lambda k, v: f"config = {{'{k}': '{v}', 'timeout': 30}}",
    "go_walrus": lambda k, v: f'{k} := "{v}"',
    "go_backquote": lambda k, v: f"{k} := `{v}`",
    "make_conditional": lambda k, v: f"{k} ?= {v}",
    "make_posix": lambda k, v: f"{k} ::= {v}",
    "make_immediate": lambda k, v: f"{k} := {v}",
    "php_concat": lambda k, v: f'${k} .= "{v}";',
    "arrow": lambda k, v: f"    '{k}' => '{v}',",
    "go_var": lambda k, v: f'var {k} string = "{v}"',
    "typed": lambda k, v: f'const {k}: string = "{v}";',
    "kotlin": lambda k, v: f'val {k}: String = "{v}"',
    "set_property": lambda k, v: f'System.setProperty("{k}", "{v}");',
    "xml_element": lambda k, v: f"<{k}>{v}</{k}>",
    "xml_attribute": lambda k, v: f'<add key="{k}" value="{v}"/>',
    "cli_flag": lambda k, v: f"deploy --{k.lower().replace('_', '-')} {v} --region eu",
    "cli_flag_eq": lambda k, v: f"deploy --{k.lower().replace('_', '-')}={v} --region eu",
    "export": lambda k, v: f"export {k.upper().replace('-', '_')}={v}",
    "export_quoted": lambda k, v: f'export {k.upper().replace("-", "_")}="{v}"',
    "toml": lambda k, v: f'{k} = "{v}"',
    "ini": lambda k, v: f"{k} = {v}",
    "form_body": lambda k, v: f"POST /login user=bob&{k}={v}&remember=1",
    "query_secret_key": lambda k, v: f"GET /v1/export?{k}={v}&format=csv 200",
    "kwargs": lambda k, v: f'client = Client({k}="{v}", timeout=10)',
    "logfmt": lambda k, v: f"ts=2026-05-01T12:00:00Z level=warn {k}={v} attempt=2",
}  # fmt: skip

BARE = [
    "2026-05-01T12:00:00.123Z ERROR upstream rejected {v} after 3 attempts",
    "retrying request with '{v}' (attempt 2)",
    "[worker-3] loaded credentials ({v}) from cache",
    "found {v}, rotating",
]
JSON_NEUTRAL = ['{{"value": "{v}", "attempt": 2}}', '{{"data":{{"item":"{v}"}},"ok":true}}']
QUERY = ["GET https://api.example.com/v1/items?ref={v}&page=2 200", "redirect to /callback?x={v}"]
HEADERS = ["Authorization: Bearer {v}", "{h}: {v}"]
HEADER_NAMES = ["X-Api-Key", "X-Auth-Token", "PRIVATE-TOKEN", "X-Vault-Token", "DD-API-KEY", "X-Secret"]
YAML_ENV = ["  {k}: {v}", "{K}={v}"]


def family_entries(
    rng: random.Random, family: str, distinctive: bool, makers: list[Maker]
) -> list[dict[str, Any]]:
    entries = []
    index = 0

    def token() -> tuple[str, str]:
        nonlocal index
        made = makers[index % len(makers)](rng)
        index += 1
        return made if isinstance(made, tuple) else (made, made)

    def add(shape: str, text: str, secret: str) -> None:
        entries.append(
            {"family": family, "shape": shape, "distinctive": distinctive, "text": text, "secrets": [secret]}
        )

    for template in BARE:
        value, secret = token()
        add("bare", template.format(v=value), secret)
    for template in JSON_NEUTRAL:
        value, secret = token()
        add("json", template.format(v=value), secret)
    for template in QUERY:
        value, secret = token()
        add("query", template.format(v=value), secret)
    for syntax, render in ASSIGN.items():
        value, secret = token()
        key = rng.choice(KEYS)
        if syntax.startswith(("xml", "set_property", "go", "typed", "kotlin", "php", "kwargs")):
            key = key.replace("-", "_")
        add(f"assign:{syntax}", render(key, value), secret)
    for template in HEADERS:
        value, secret = token()
        add("header", template.format(v=value, h=rng.choice(HEADER_NAMES)), secret)
    for template in YAML_ENV:
        value, secret = token()
        name = family.upper() + rng.choice(["_TOKEN", "_API_KEY", "_SECRET", "_KEY"])
        add("yaml_env", template.format(v=value, k=rng.choice(KEYS), K=name), secret)
    return entries


# -- controls: ordinary text that must come out unchanged ----------------------------------

CONTROL_TEMPLATES: dict[str, list[str]] = {
    "log": [
        '{ip} - - [01/May/2026:12:00:{s:02d} +0000] "GET /api/v1/items/{n} HTTP/1.1" 200 {n2} "-" "Mozilla/5.0 (X11; Linux x86_64)"',
        "2026-05-01T12:00:{s:02d}.{ms:03d}Z INFO app.views request_id={uuid} method=GET path=/api/items/{n} status=200 duration_ms={f}",
        "2026-05-01 12:00:{s:02d},{ms:03d} WARNING failed to refresh token: connection refused (attempt {n3})",
        'level=info msg="token expired, refreshing" user_id={n} trace_id={hex32}',
        "auth: token is expired by {n3}s",
        "token_type=Bearer expires_in=3600 scope=read:user",
        "max_tokens={n} temperature=0.{n3} model=gpt-4o-mini tokenizer=cl100k_base",
        'password_hint="your first pet" password_length={n3}',
        "token_count: {n} prompt_tokens: {n2} completion_tokens: {n3}",
        "auth_method=oauth2 auth_type=basic",
        "sort_key=created_at cache_key=user_{n} primary_key: id",
        "key=logs/2026/05/01/app-{n}.log.gz bucket=backups",
        "secretary=Jane passport=pending credit={n3} keyboard=us",
        "password reset email sent to user {n}",
        "user {n} changed their password at 2026-05-01T12:00:{s:02d}Z",
        "commit {hex40} (HEAD -> main, origin/main) fix tokenizer edge case",
        "pod api-{lo9}-{lo5} in namespace default is Running (restarts: {n3})",
        "pulled image registry.example.com/app@sha256:{hex64}",
        "GET /static/img/2018-250-xoxo-indieweb-{n3}.jpg 200 {n2}",
        'etag="{hex32}" last-modified="Fri, 01 May 2026 12:00:{s:02d} GMT"',
        "span_id={hex16} trace_id={hex32} parent_id={hex16}",
        "db query took {f}ms: SELECT id, email_verified FROM users WHERE id = {n}",
        "session started for user {n} (ttl 3600s)",
        "token_url=https://auth.example.com/oauth/token token_endpoint_auth_method=client_secret_basic",
        '{{"level":"info","msg":"login ok","user_id":{n},"auth":"none","duration":{f}}}',
        "secret_name=db-credentials secret_namespace=prod",
        "version {n3}.{n3}.{n3} build {hex12} released",
        "warning: the key 'monkey' is deprecated; use 'turkey' instead",
        "retrying in {n3}ms (key rotation in progress)",
        "request from {ip} rejected: missing Authorization header",
    ],
    "code": [
        'token = os.environ["API_TOKEN"]',
        "password = getpass.getpass()",
        "api_key = settings.API_KEY",
        "self.token = token",
        "if token is None:",
        'nonMatchingToken := os.Getenv("TOKEN_{n3}")',
        'nonMatchingToken := "not a token"',
        'const secretName = "db-credentials-{n3}"',
        "func getToken() (string, error) {{",
        'token := req.Header.Get("Authorization")',
        "password = password.strip()",
        "api_key = api_key or default_key",
        "return token, nil",
        "$password = $_POST['password'];",
        'String password = System.getenv("DB_PASSWORD");',
        "let token = localStorage.getItem('token');",
        "token: Optional[str] = None",
        "secret_key_base = Rails.application.credentials.secret_key_base",
        "def rotate_secret(secret_id: int) -> None:",
        "for key, value in sorted(items.items()):",
        "tokens = tokenizer.encode(text, max_tokens={n})",
        'private_key_path = Path("/etc/ssl/private/server.key")',
        "auth = HTTPBasicAuth(user, password)",
        "password_field = forms.CharField(widget=forms.PasswordInput)",
        "if (token == null) {{ throw new IllegalStateException(); }}",
        "const {{ token }} = await login(user, password);",
        "export TOKEN_FILE=/run/secrets/token",
        "session = requests.Session()",
        "cookie_jar = http.cookiejar.CookieJar()",
        "accessTokenExpiresAt: number = {n}",
    ],
    "template": [
        "password: {{{{ .Values.Password }}}}",
        'token: "{{{{ secrets.GITHUB_TOKEN }}}}"',
        "API_KEY=${{API_KEY}}",
        "password=$(cat /run/secrets/db_password)",
        '"password": "%(password)s"',
        "token=<your-token-here>",
        "api_key: <API_KEY>",
        "${{SUMO_ACCESS_KEY:=$2}}",
        "secret: ${{{{ secrets.DEPLOY_SECRET }}}}",
        "password: <%= ENV['DB_PASSWORD'] %>",
        "{{% if token %}}Authorization: Bearer {{{{ token }}}}{{% endif %}}",
        'password = "{{password}}"',
        "token: '{{{{token}}}}'",
        'curl -H "Authorization: Bearer $TOKEN" https://api.example.com/v1/me',
        "DB_PASSWORD=$DB_PASSWORD",
        "export GITHUB_TOKEN=${{GITHUB_TOKEN:-}}",
        "client_secret: ${{OAUTH_CLIENT_SECRET}}",
        'password="${{PGPASSWORD}}"',
        "api_key = %s",
        "token: !vault |",
    ],
    "path": [
        "/var/lib/app/secrets/db_password.txt",
        "/home/deploy/.ssh/id_rsa.pub",
        "/static/img/2018-250-xoxo-indieweb-{n3}.jpg",
        "s3://backups/keys/2026/05/token-rotation-{n}.json",
        "/api/v1/tokens/{n}/revoke",
        "C:\\Users\\bob\\AppData\\Local\\token.cache",
        "/etc/ssl/private/server.key",
        "/usr/lib/python3/dist-packages/keyring/backends/SecretService.py",
        "src/auth/password_reset_{n3}.py",
        "node_modules/@octokit/auth-token/dist-node/index.js",
        "/srv/app/releases/{hex12}/config/secrets.yml.example",
        "/run/secrets/api_key",
    ],
    "url": [
        "https://github.com/org/repo/blob/main/src/token_store_{n3}.py",
        "https://example.com/reset-password?user={n}&lang=en",
        "https://api.example.com/oauth/authorize?client_id=app{n3}&response_type=code&state={hex16}",
        "https://docs.example.com/api-keys#rotation",
        "https://example.com/blog/2018/xoxo-festival-recap",
        "https://cdn.example.com/assets/keyboard-shortcuts-{n3}.png",
        "https://auth.example.com/.well-known/openid-configuration",
        "https://example.com/search?q=password+manager&page={n3}",
        "https://registry.npmjs.org/@types/node/-/node-20.{n3}.0.tgz",
        "https://pypi.org/project/keyring/{n3}.0/",
    ],
}


PREFIXES = [
    "",
    "2026-05-01T12:00:{s:02d}.{ms:03d}Z INFO app: ",
    "May  1 12:00:{s:02d} web-{n3} app[{n}]: ",
    "I0501 12:00:{s:02d}.{ms:03d}123       1 controller.go:{n3}] ",
    "[2026-05-01 12:00:{s:02d},{ms:03d}] DEBUG worker.{n3} - ",
    "web.{n3} | ",
]


def control_entries(rng: random.Random) -> list[dict[str, Any]]:
    entries = []
    seen: set[str] = set()
    for kind, templates in CONTROL_TEMPLATES.items():
        rounds = {"log": 6, "code": 5, "template": 5, "path": 5, "url": 5}[kind]
        for round_ in range(rounds):
            for template in templates:
                values = {
                    "s": rng.randint(0, 59), "ms": rng.randint(0, 999), "n": rng.randint(1, 99999),
                    "n2": rng.randint(100, 99999), "n3": rng.randint(1, 999), "f": f"{rng.random() * 300:.2f}",
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "hex32": fill(rng, "{hex:32}"),
                    "hex40": fill(rng, "{hex:40}"), "hex64": fill(rng, "{hex:64}"), "hex16": fill(rng, "{hex:16}"),
                    "hex12": fill(rng, "{hex:12}"), "lo9": fill(rng, "{lo:9}"), "lo5": fill(rng, "{lo:5}"),
                    "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                }  # fmt: skip
                text = template.format(**values)
                if round_:  # the same line as different loggers and shippers print it
                    text = PREFIXES[round_ % len(PREFIXES)].format(**values) + text
                if text in seen:
                    continue
                seen.add(text)
                entries.append(
                    {"family": "control", "shape": kind, "distinctive": False, "text": text, "secrets": []}
                )
    return entries


def build() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    entries: list[dict[str, Any]] = []
    for family, (distinctive, makers) in FAMILIES.items():
        entries.extend(family_entries(rng, family, distinctive, makers))
    entries.extend(control_entries(rng))
    return entries


def render(entries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)


CONTEXT_SHAPES = ("assign", "header", "yaml_env")


def recall_table(redact: Callable[[str], str], entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family: planted secrets removed, bare (free text, neutral JSON, query) and with context."""
    table: dict[str, dict[str, Any]] = {}
    for entry in entries:
        out = redact(entry["text"])
        family = entry["family"]
        row = table.setdefault(
            family, {"distinctive": entry["distinctive"], "bare": [0, 0], "context": [0, 0], "changed": 0}
        )
        if family == "control":
            row["context"][1] += 1
            row["changed"] += out != entry["text"]
            continue
        group = "context" if entry["shape"].startswith(CONTEXT_SHAPES) else "bare"
        row[group][1] += 1
        row[group][0] += all(secret not in out for secret in entry["secrets"])
    return table


def main(argv: list[str]) -> int:
    entries = build()
    if "--report" in argv:
        sys.path.insert(0, str(HERE.parents[2] / "src"))
        from hardenkit.logs import Redactor

        table = recall_table(Redactor().redact, entries)
        print(
            "| family | prefix | bare (free text, JSON, query) | with context (assignments, headers, YAML/env) |"
        )
        print("|---|---|---:|---:|")
        for family, row in sorted(table.items()):
            if family == "control":
                continue
            bare = f"{row['bare'][0]}/{row['bare'][1]}"
            context = f"{row['context'][0]}/{row['context'][1]}"
            print(f"| {family} | {'yes' if row['distinctive'] else 'no'} | {bare} | {context} |")
        control = table["control"]
        print(f"\ncontrols changed: {control['changed']}/{control['context'][1]}")
        return 0
    OUT.write_text(render(entries), encoding="utf-8")
    print(f"wrote {len(entries)} entries to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
