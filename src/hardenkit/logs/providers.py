"""Provider token formats: one rule per documented token shape, recognised bare, whatever surrounds them.

This module is long because it is one table: a reader who wants to know what
hardenkit does with a provider's tokens looks it up in one place, and the docs'
rule list (docs/redaction.md) is generated from the same rows.

Each row is written from the provider's own description of its token format
(prefix, length, alphabet, checksum) and gives a rule id (``Rule.name``) and a
category (the ``[REDACTED:<category>]`` label, one per provider family). Every
pattern is in the common subset of Python's ``re`` and RE2 (bounded repetition,
no look-around), starts with a literal prefix that the prefilter looks for, and
is refused inside a longer word (``before``/``after`` boundaries), so
``…-xoxo-indieweb-1.jpg`` is not a Slack token. A token whose format carries a
checksum (GitHub's and npm's CRC32 tail) is taken even glued to a word when the
checksum holds: the format alone then vouches for it. Standard library only.
"""

from __future__ import annotations

import base64
import zlib
from typing import TYPE_CHECKING, Any

from .rules import _ALNUM, _TOKEN_CHARS, _WORD, Check, Rule, Verdict, _check_group1, _plain

if TYPE_CHECKING:
    from .engine import RedactionEngine

__all__ = ["PROVIDER_RULES", "crc32_base62"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_AFTER_WORD = frozenset(_WORD)
_AFTER_TOKEN = frozenset(_TOKEN_CHARS)


def crc32_base62(body: str) -> str:
    """The 6-character base62 CRC32 tail GitHub and npm append to a token's random part."""
    value = zlib.crc32(body.encode("ascii", "replace"))
    digits = []
    while value:
        value, rest = divmod(value, 62)
        digits.append(_BASE62[rest])
    return "".join(reversed(digits)).rjust(6, "0")


def _check_crc_token(category: str, prefix_len: int) -> Check:
    """A 30-character body plus its CRC32 tail: inside a longer word only when the tail holds."""

    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span()
        if start > 0 and text[start - 1] in _ALNUM:
            value = text[start:end]
            body = value[prefix_len:]
            if len(body) != 36 or crc32_base62(body[:30]) != body[30:]:
                return None
        return category, start, end

    return check


def _check_random(category: str, *, digits: bool = True, cases: bool = True) -> Check:
    """The body must look random (a digit, both cases): keeps words with a prefix-like start out."""

    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span()
        value = text[start:end]
        if digits and not any(char.isdigit() for char in value):
            return None
        if cases and not (any(char.isupper() for char in value) and any(char.islower() for char in value)):
            return None
        return category, start, end

    return check


def _check_base64_pem(text: str, m: Any, engine: RedactionEngine) -> Verdict:
    """Base64 of a PEM block: a private key, not a certificate (those are public)."""
    start, end = m.span()
    head = text[start : start + 80]
    try:
        decoded = base64.b64decode(head[: len(head) // 4 * 4]).decode("ascii", "replace")
    except ValueError:
        return None
    return ("private_key", start, end) if "PRIVATE KEY" in decoded else None


def _rule(
    name: str,
    category: str,
    pattern: str,
    *literals: str,
    after: frozenset[str] = _AFTER_TOKEN,
    before: frozenset[str] = _AFTER_TOKEN,
    check: Check | None = None,
    extend: str | None = None,
    pre: str | None = None,
) -> Rule:
    return Rule(
        name,
        (category,),
        pattern,
        literals=literals,
        pre=pre,
        check=check or _plain(category),
        before=before,
        after=after,
        extend=extend,
    )


_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_OPEN = frozenset[str]()  # open-ended formats: the extend regex takes the rest of the run

PROVIDER_RULES: tuple[Rule, ...] = (
    # -- source hosting and package registries --------------------------------------------
    _rule(
        "github_token",
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{36,251}",
        "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
        before=_OPEN,
        check=_check_crc_token("github_token", 4),
        after=_AFTER_WORD,
    ),
    # hardenkit's own API keys (hardenkit.auth): masked on their shape alone, so a key with a
    # typo (its checksum then fails) is still hidden: it holds nearly the whole secret.
    _rule("hardenkit_api_key", "hardenkit_api_key", r"hkey_[a-z0-9]{12}_[0-9A-Za-z]{49}", "hkey_", after=_AFTER_WORD),
    _rule("github_fine_grained_pat", "github_token", r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}", "github_pat_", after=_AFTER_WORD),
    _rule(
        "gitlab_token",
        "gitlab_token",
        r"(?:glpat|gloas|gldt|glrtr|glrt|glcbt|glptt|glft|glimt|glagent|glsoat|glffct|glwt|glsa)-[A-Za-z0-9_\-]{20,255}",
        "glpat-", "gloas-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "glimt-", "glagent-", "glsoat-", "glffct-", "glwt-", "glsa-",
        after=_AFTER_TOKEN,
        # Routable tokens end in ".<version>.<length+crc>": the part after the dot is the token too.
        extend=r"[A-Za-z0-9_\-]*(?:\.[0-9a-z]{2}\.[0-9a-z]{2,20})?",
    ),
    _rule("gitlab_runner_registration", "gitlab_token", r"GR1348941[A-Za-z0-9_\-]{20,64}", "GR1348941"),
    _rule("bitbucket_app_password", "bitbucket_token", r"ATBB[A-Za-z0-9_=.\-]{32}[A-F0-9]{8}", "ATBB"),
    _rule("atlassian_api_token", "atlassian_token", r"AT(?:ATT|CTT)3xFfG[A-Za-z0-9_\-=]{140,300}", "ATATT3", "ATCTT3", after=_OPEN, extend=r"[A-Za-z0-9_\-=]*"),
    _rule("npm_token", "npm_token", r"npm_[A-Za-z0-9]{36}", "npm_", before=_OPEN, check=_check_crc_token("npm_token", 4), after=_AFTER_WORD),
    _rule("pypi_token", "pypi_token", r"pypi-AgE[A-Za-z0-9_\-]{40,400}", "pypi-AgE", after=_OPEN, extend=r"[A-Za-z0-9_\-]*"),
    _rule("rubygems_api_key", "rubygems_token", r"rubygems_[a-f0-9]{48}", "rubygems_"),
    _rule("nuget_api_key", "nuget_token", r"oy2[a-z0-9]{43}", "oy2", check=_check_random("nuget_token", cases=False)),
    _rule("crates_io_token", "crates_token", r"cio[A-Za-z0-9]{32}", "cio", before=frozenset(_WORD), check=_check_random("crates_token")),
    _rule("clojars_token", "clojars_token", r"CLOJARS_[a-z0-9]{60}", "CLOJARS_"),
    _rule("docker_hub_pat", "docker_token", r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,64}", "dckr_pat_", "dckr_oat_"),
    _rule("jfrog_api_key", "jfrog_token", r"AKCp[A-Za-z0-9]{69}", "AKCp"),
    _rule("jfrog_reference_token", "jfrog_token", r"cmVmdGtu[A-Za-z0-9]{56}", "cmVmdGtu"),
    _rule("sourcegraph_token", "sourcegraph_token", r"sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}", "sgp_"),
    _rule("sonarqube_token", "sonarqube_token", r"sq[upa]_[a-f0-9]{40}", "squ_", "sqp_", "sqa_"),
    # -- cloud providers --------------------------------------------------------------------
    _rule(
        "aws_session_token",
        "aws_session_token",
        r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE|FQoGZXIvYXdzE)[A-Za-z0-9/+]{80,400}",
        "IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE", "FQoGZXIvYXdzE",
        before=frozenset(_ALNUM | {"+", "/"}),
        after=_OPEN,
        extend=r"[A-Za-z0-9/+]*={0,2}",
    ),
    _rule("aws_bedrock_key", "aws_bedrock_key", r"ABSK[A-Za-z0-9+/]{40,400}", "ABSK", before=frozenset(_ALNUM | {"+", "/"}), after=_OPEN, extend=r"[A-Za-z0-9+/]*={0,2}"),
    _rule("aws_bedrock_short_term", "aws_bedrock_key", r"bedrock-api-key-[A-Za-z0-9+/]{40,400}", "bedrock-api-key-", after=_OPEN, extend=r"[A-Za-z0-9+/%]*={0,2}"),
    _rule("amazon_mws_token", "amazon_mws_token", r"amzn\.mws\." + _UUID, "amzn.mws."),
    _rule("amazon_lwa_secret", "amazon_lwa_secret", r"amzn1\.oa2-cs\.v1\.[a-f0-9]{64}", "amzn1.oa2-cs.v1."),
    _rule("gcp_oauth_client_secret", "gcp_oauth_secret", r"GOCSPX-[A-Za-z0-9_\-]{28}", "GOCSPX-"),
    _rule("google_oauth_access_token", "google_oauth_token", r"ya29\.[A-Za-z0-9_\-]{30,400}", "ya29.", after=_OPEN, extend=r"[A-Za-z0-9_\-.]*"),
    _rule("google_oauth_refresh_token", "google_oauth_token", r"1//0[A-Za-z0-9_\-]{40,500}", "1//0", before=frozenset(_ALNUM | {"/", ":"}), after=_OPEN, extend=r"[A-Za-z0-9_\-]*"),
    _rule("firebase_cloud_messaging_key", "firebase_key", r"AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{134}", ":APA91b"),
    _rule(
        "azure_ad_client_secret",
        "azure_ad_secret",
        r"[A-Za-z0-9_~.\-]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
        "Q~",
        before=frozenset(_TOKEN_CHARS | {"~", "."}),
        after=frozenset(_TOKEN_CHARS | {"~", "."}),
    ),
    _rule("alibaba_access_key", "alibaba_key", r"LTAI[A-Za-z0-9]{12,20}", "LTAI"),
    _rule("tencent_secret_id", "tencent_key", r"AKID[A-Za-z0-9]{32}", "AKID"),
    _rule("yandex_api_key", "yandex_key", r"AQVN[A-Za-z0-9_\-]{35,38}", "AQVN"),
    _rule("scaleway_access_key", "scaleway_key", r"SCW[A-Z0-9]{17}", "SCW"),
    _rule("digitalocean_token", "digitalocean_token", r"do[opr]_v1_[a-f0-9]{64}", "dop_v1_", "doo_v1_", "dor_v1_"),
    _rule("heroku_api_key", "heroku_token", r"HRKU-[A-Za-z0-9_\-]{20,80}", "HRKU-"),
    _rule("fly_io_token", "fly_token", r"(?:fm1[ar]|fm2|fo1)_[A-Za-z0-9+/=_\-]{40,400}", "fm1a_", "fm1r_", "fm2_", "fo1_", after=_OPEN, extend=r"[A-Za-z0-9+/=_\-]*"),
    _rule("render_api_key", "render_token", r"rnd_[A-Za-z0-9]{32}", "rnd_"),
    _rule("netlify_pat", "netlify_token", r"nfp_[A-Za-z0-9]{36,40}", "nfp_"),
    _rule("cloudflare_origin_ca_key", "cloudflare_key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", "v1.0-"),
    _rule("akamai_edgegrid_token", "akamai_token", r"akab-[a-z0-9]{16}-[a-z0-9]{16}", "akab-"),
    _rule("hashicorp_vault_token", "vault_token", r"hv[sbr]\.[A-Za-z0-9_\-]{24,255}", "hvs.", "hvb.", "hvr."),
    _rule("terraform_cloud_token", "terraform_token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,70}", ".atlasv1."),
    _rule("pulumi_access_token", "pulumi_token", r"pul-[a-f0-9]{40}", "pul-"),
    _rule("databricks_token", "databricks_token", r"dap[ia][a-f0-9]{32}(?:-[0-9])?", "dapi", "dapa", check=_check_random("databricks_token", cases=False)),
    _rule("databricks_oauth_secret", "databricks_token", r"dose[a-f0-9]{32}", "dose", check=_check_random("databricks_token", cases=False)),
    _rule("planetscale_token", "planetscale_token", r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.=]{32,64}", "pscale_tkn_", "pscale_pw_", "pscale_oauth_"),
    _rule("supabase_token", "supabase_token", r"sb(?:p_[a-f0-9]{40}|_secret_[A-Za-z0-9_\-]{20,64})", "sbp_", "sb_secret_"),
    _rule("neon_api_key", "neon_token", r"napi_[a-z0-9]{64}", "napi_"),
    _rule("elastic_cloud_key", "elastic_token", r"essu_[A-Za-z0-9+/=]{60,200}", "essu_"),
    _rule("tailscale_key", "tailscale_key", r"tskey-[a-z]{3,8}-[A-Za-z0-9]{8,20}-[A-Za-z0-9]{20,64}", "tskey-"),
    _rule("defined_networking_key", "defined_networking_key", r"dnkey-[a-z0-9=_\-]{26}-[a-z0-9=_\-]{52}", "dnkey-"),
    _rule("age_secret_key", "age_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", "AGE-SECRET-KEY-1"),
    _rule("onepassword_service_token", "onepassword_token", r"ops_eyJ[A-Za-z0-9_\-+/=]{100,400}", "ops_eyJ", after=_OPEN, extend=r"[A-Za-z0-9_\-+/=]*"),
    _rule("onepassword_secret_key", "onepassword_token", r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}", "A3-"),
    _rule("doppler_token", "doppler_token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}", "dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."),
    _rule("infracost_api_key", "infracost_token", r"ico-[A-Za-z0-9]{32}", "ico-"),
    _rule("octopus_deploy_api_key", "octopus_token", r"API-[A-Z0-9]{26,32}", "API-", check=_check_random("octopus_token", cases=False)),
    _rule("harness_token", "harness_token", r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}", "pat.", "sat."),
    _rule("circleci_token", "circleci_token", r"CCIP(?:AT|RJ)_[A-Za-z0-9_]{20,80}", "CCIPAT_", "CCIPRJ_"),
    _rule("buildkite_token", "buildkite_token", r"bkua_[a-f0-9]{40}", "bkua_"),
    _rule("scalingo_token", "scalingo_token", r"tk-us-[A-Za-z0-9_\-]{48}", "tk-us-"),
    _rule("prefect_api_key", "prefect_token", r"pnu_[A-Za-z0-9]{36}", "pnu_"),
    _rule("dbt_cloud_token", "dbt_token", r"dbtc_[A-Za-z0-9_\-]{40,80}", "dbtc_"),
    # -- AI and ML services ------------------------------------------------------------------
    _rule("anthropic_key", "anthropic_key", r"sk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_\-]{20,500}", "sk-ant-", before=frozenset(_ALNUM)),
    _rule("openrouter_key", "openrouter_key", r"sk-or-v1-[a-f0-9]{64}", "sk-or-v1-", before=frozenset(_ALNUM)),
    _rule("deepseek_key", "deepseek_key", r"sk-[a-f0-9]{32}", "sk-", before=frozenset(_ALNUM), after=_AFTER_TOKEN, check=_check_random("deepseek_key", cases=False)),
    _rule(
        "openai_key",
        "openai_key",
        r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,500}",
        "sk-",
        before=frozenset(_ALNUM),
        check=_check_random("openai_key"),
    ),
    _rule("huggingface_token", "huggingface_token", r"(?:hf_|api_org_)[A-Za-z0-9]{34}", "hf_", "api_org_", check=_check_random("huggingface_token", digits=False)),
    _rule("replicate_token", "replicate_token", r"r8_[A-Za-z0-9]{37}", "r8_"),
    _rule("groq_key", "groq_key", r"gsk_[A-Za-z0-9]{52}", "gsk_"),
    _rule("perplexity_key", "perplexity_key", r"pplx-[A-Za-z0-9]{48}", "pplx-"),
    _rule("xai_key", "xai_key", r"xai-[A-Za-z0-9]{80}", "xai-"),
    _rule("langsmith_key", "langsmith_key", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", "lsv2_pt_", "lsv2_sk_"),
    _rule("pinecone_key", "pinecone_key", r"pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{50,80}", "pcsk_"),
    _rule("together_key", "together_key", r"tgp_v1_[A-Za-z0-9_\-]{40,50}", "tgp_v1_"),
    _rule("elevenlabs_key", "elevenlabs_key", r"sk_[a-f0-9]{48}", "sk_", before=frozenset(_WORD), after=frozenset(_WORD)),
    _rule("firecrawl_key", "firecrawl_key", r"fc-[a-f0-9]{32}", "fc-", before=frozenset(_WORD)),
    _rule("tavily_key", "tavily_key", r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{32}", "tvly-"),
    # -- chat, collaboration, productivity ---------------------------------------------------
    _rule(
        "slack_token",
        "slack_token",
        r"(?:xox[abposrec]|xoxe\.xox[bp])-[0-9]{1,13}-[A-Za-z0-9\-]{8,255}",
        "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xoxc-", "xoxe.xox",
    ),
    _rule("slack_cookie_token", "slack_token", r"xoxd-[A-Za-z0-9%/+=]{20,400}", "xoxd-"),
    _rule("slack_app_token", "slack_token", r"xapp-[0-9]-[A-Z0-9]{6,15}-[0-9]{6,15}-[a-z0-9]{32,80}", "xapp-"),
    _rule("slack_webhook_url", "slack_webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{10,500}", "hooks.slack.com/", before=_OPEN, after=_OPEN, extend=r"[A-Za-z0-9/_\-]*"),
    _rule("discord_bot_token", "discord_token", r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}", ".", pre=r"\.[A-Za-z0-9_\-]{6}\.", check=_check_random("discord_token")),
    _rule("discord_webhook_url", "discord_webhook", r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,80}", "discord.com/api/webhooks/", "discordapp.com/api/webhooks/", before=_OPEN),
    _rule("telegram_bot_token", "telegram_token", r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}", ":AA", pre=r"[0-9]:AA", before=frozenset(_WORD)),
    _rule("teams_webhook_url", "teams_webhook", r"webhook\.office\.com/webhookb2/[A-Za-z0-9@/\-]{40,400}", "webhook.office.com/webhookb2/", before=_OPEN, after=_OPEN, extend=r"[A-Za-z0-9@/\-]*"),
    _rule("zapier_webhook_url", "zapier_webhook", r"hooks\.zapier\.com/hooks/catch/[0-9]{4,12}/[a-z0-9]{5,12}", "hooks.zapier.com/hooks/catch/", before=_OPEN),
    _rule("mattermost_webhook_url", "mattermost_webhook", r"/hooks/[a-z0-9]{26}", "/hooks/", before=_OPEN),
    _rule("linear_api_key", "linear_token", r"lin_(?:api|oauth)_[A-Za-z0-9]{40}", "lin_api_", "lin_oauth_"),
    _rule("notion_token", "notion_token", r"(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})", "secret_", "ntn_", check=_check_random("notion_token")),
    _rule("airtable_pat", "airtable_token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", "pat", pre=r"pat[A-Za-z0-9]{14}\."),
    _rule("asana_pat", "asana_token", r"[0-9]/[0-9]{13,19}(?:/[0-9]{13,19})?:[a-f0-9]{32}", ":", pre=r"[0-9]{4}:[a-f0-9]{4}", before=frozenset(_WORD | {"/"})),
    _rule("clickup_token", "clickup_token", r"pk_[0-9]{6,10}_[A-Z0-9]{32}", "pk_"),
    _rule("figma_pat", "figma_token", r"figd_[A-Za-z0-9_\-]{40,80}", "figd_"),
    _rule("typeform_pat", "typeform_token", r"tfp_[A-Za-z0-9_\-.=]{40,60}", "tfp_"),
    _rule("hubspot_pat", "hubspot_token", r"pat-(?:na|eu|ap)[0-9]-" + _UUID, "pat-na", "pat-eu", "pat-ap"),
    _rule("contentful_pat", "contentful_token", r"CFPAT-[A-Za-z0-9_\-]{43}", "CFPAT-"),
    _rule("postman_api_key", "postman_token", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", "PMAK-"),
    _rule("readme_api_key", "readme_token", r"rdme_[a-z0-9]{70}", "rdme_"),
    _rule("frameio_token", "frameio_token", r"fio-u-[A-Za-z0-9_\-=]{64}", "fio-u-"),
    _rule("dropbox_token", "dropbox_token", r"sl\.(?:u\.)?[A-Za-z0-9_\-]{130,400}", "sl.", after=_OPEN, extend=r"[A-Za-z0-9_\-]*"),
    _rule("salesforce_access_token", "salesforce_token", r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{80,255}", "00D", pre=r"00D[A-Za-z0-9]{12,15}!"),
    _rule("twitch_token", "twitch_token", r"oauth:[a-z0-9]{30}", "oauth:", before=frozenset(_WORD)),
    _rule("twitter_bearer_token", "twitter_token", r"A{22}[A-Za-z0-9%]{80,120}", "AAAAAAAAAAAAAAAAAAAAAA", before=frozenset(_ALNUM), after=frozenset(_ALNUM | {"%"})),
    _rule("facebook_access_token", "facebook_token", r"EAA[BCDGIJKLMNOPQRSTUVWXYZ][A-Za-z0-9]{80,400}", "EAA"),
    _rule("mapbox_token", "mapbox_token", r"[spt]k\.eyJ[A-Za-z0-9_\-]{20,400}\.[A-Za-z0-9_\-]{20,100}", "k.eyJ"),
    # -- payments and commerce ----------------------------------------------------------------
    _rule(
        "stripe_key",
        "stripe_key",
        r"(?:(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{16,255}|whsec_[A-Za-z0-9]{24,255})",
        "sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_", "pk_live_", "pk_test_", "pk_prod_", "whsec_",
        before=frozenset(_ALNUM),
        after=_AFTER_WORD,
    ),
    _rule("square_token", "square_token", r"(?:sq0atp-[A-Za-z0-9_\-]{22}|sq0csp-[A-Za-z0-9_\-]{43}|EAAA[A-Za-z0-9_\-+=]{60})", "sq0atp-", "sq0csp-", "EAAA"),
    _rule("braintree_access_token", "paypal_token", r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}", "access_token$"),
    _rule("plaid_access_token", "plaid_token", r"access-(?:sandbox|development|production)-" + _UUID, "access-sandbox-", "access-development-", "access-production-"),
    _rule("razorpay_key", "razorpay_key", r"rzp_(?:live|test)_[A-Za-z0-9]{14}", "rzp_live_", "rzp_test_"),
    _rule("flutterwave_key", "flutterwave_key", r"FLW(?:SECK|PUBK)(?:_TEST)?-[a-h0-9]{32}-X", "FLWSECK", "FLWPUBK"),
    _rule("shippo_token", "shippo_token", r"shippo_(?:live|test)_[a-f0-9]{40}", "shippo_live_", "shippo_test_"),
    _rule("easypost_key", "easypost_key", r"EZ[AT]K[A-Za-z0-9]{54}", "EZAK", "EZTK"),
    _rule("lob_key", "lob_key", r"(?:live|test)_(?:pub_)?[a-f0-9]{31,35}", "live_", "test_", check=_check_random("lob_key", cases=False)),
    _rule("shopify_token", "shopify_token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", "shpat_", "shpca_", "shppa_", "shpss_"),
    _rule("woocommerce_key", "woocommerce_key", r"c[ks]_[a-f0-9]{40}", "ck_", "cs_"),
    _rule("duffel_token", "duffel_token", r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}", "duffel_test_", "duffel_live_"),
    _rule("checkout_key", "checkout_key", r"sk_sbox_[a-z2-7]{26}", "sk_sbox_"),
    # -- email, messaging, marketing --------------------------------------------------------------
    _rule("sendgrid_key", "sendgrid_key", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", "SG."),
    _rule("mailgun_key", "mailgun_key", r"key-[a-f0-9]{32}", "key-", before=frozenset(_WORD)),
    _rule("mailgun_private_key", "mailgun_key", r"[a-f0-9]{32}-[a-f0-9]{8}-[a-f0-9]{8}", "-", pre=r"[a-f0-9]{4}-[a-f0-9]{8}-[a-f0-9]{8}", before=frozenset(_ALNUM | {"-"}), check=_check_random("mailgun_key", cases=False)),
    _rule("mailchimp_key", "mailchimp_key", r"[a-f0-9]{32}-us[0-9]{1,2}", "-us", pre=r"[a-f0-9]{4}-us[0-9]", before=frozenset(_ALNUM)),
    _rule("brevo_key", "brevo_key", r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}", "xkeysib-", "xsmtpsib-"),
    _rule("mandrill_key", "mandrill_key", r"md-[A-Za-z0-9_\-]{22}", "md-", check=_check_random("mandrill_key", digits=False)),
    _rule("resend_key", "resend_key", r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}", "re_"),
    _rule("twilio_key", "twilio_key", r"SK[0-9a-fA-F]{32}", "SK", before=frozenset(_ALNUM), after=frozenset(_ALNUM)),
    _rule("segment_token", "segment_token", r"sgp_[A-Za-z0-9]{64}", "sgp_"),
    _rule("posthog_key", "posthog_key", r"ph[cx]_[A-Za-z0-9]{43}", "phc_", "phx_"),
    # -- monitoring and observability ------------------------------------------------------------
    _rule("grafana_cloud_token", "grafana_token", r"glc_[A-Za-z0-9+/]{32,400}={0,2}", "glc_"),
    _rule("grafana_api_key", "grafana_token", r"eyJrIjoi[A-Za-z0-9+/_\-]{40,400}={0,2}", "eyJrIjoi"),
    _rule("grafana_service_account_token", "grafana_token", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}", "glsa_"),
    _rule("sentry_auth_token", "sentry_token", r"(?:sntrys_eyJ[A-Za-z0-9+/=_\-]{60,400}|sntryu_[a-f0-9]{64})", "sntrys_", "sntryu_"),
    _rule("sentry_dsn_key", "sentry_token", r"([a-f0-9]{32})@o[0-9]{1,12}\.ingest\.", ".ingest.", check=_check_group1("sentry_token"), pre=r"@o[0-9]{1,12}\.ingest\.", after=_OPEN),
    _rule("new_relic_key", "newrelic_key", r"NR(?:AK|AA|II|IQ|JS)-[A-Za-z0-9_\-]{19,40}", "NRAK-", "NRAA-", "NRII-", "NRIQ-", "NRJS-"),
    _rule("new_relic_license_key", "newrelic_key", r"[a-f0-9]{36}NRAL", "NRAL"),
    _rule("dynatrace_token", "dynatrace_token", r"dt0[a-z][0-9]{2}\.[A-Z0-9]{24}\.[A-Z0-9]{64}", "dt0"),
    _rule("honeycomb_key", "honeycomb_key", r"hc[a-z]{2}k_[a-z0-9]{58}", "hcaik_", "hcxik_", "hcamk_", "hcxmk_"),
    _rule("datadog_client_token", "datadog_key", r"pub[a-f0-9]{32}", "pub", before=frozenset(_WORD), check=_check_random("datadog_key", cases=False)),
    _rule("launchdarkly_key", "launchdarkly_key", r"(?:sdk|mob)-" + _UUID, "sdk-", "mob-", before=frozenset(_WORD)),
    _rule("splunk_hec_token", "splunk_token", r"Splunk [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "Splunk "),
    _rule("okta_api_token", "okta_token", r"SSWS 00[A-Za-z0-9_\-]{40}", "SSWS 00"),
    _rule("adafruit_io_key", "adafruit_key", r"aio_[A-Za-z0-9]{28}", "aio_", check=_check_random("adafruit_key", digits=False)),
    # kubeconfig's client-key-data and other base64-wrapped PEM private keys ("-----BEGIN" in base64).
    _rule(
        "base64_private_key",
        "private_key",
        r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{40,400}",
        "LS0tLS1CRUdJTi",
        check=_check_base64_pem,
        before=frozenset(_ALNUM | {"+", "/"}),
        after=_OPEN,
        extend=r"[A-Za-z0-9+/]*={0,2}",
    ),
    # -- more services with documented prefixes ----------------------------------------------
    _rule("google_api_key", "google_api_key", r"AIza[0-9A-Za-z_\-]{35}", "AIza", before=frozenset(_ALNUM)),
    _rule("amazon_lwa_token", "amazon_lwa_token", r"Atz[ar]\|[A-Za-z0-9_\-]{100,400}", "Atza|", "Atzr|", after=_OPEN, extend=r"[A-Za-z0-9_\-]*"),
    _rule("cloudinary_url", "cloudinary_key", r"cloudinary://[0-9]{10,20}:([A-Za-z0-9_\-]{20,40})@", "cloudinary://", check=_check_group1("cloudinary_key"), before=_OPEN, after=_OPEN),
    _rule("gocardless_token", "gocardless_token", r"live_[A-Za-z0-9_=\-]{40}", "live_", check=_check_random("gocardless_token")),
    _rule("stytch_secret", "stytch_secret", r"secret-(?:live|test)-[A-Za-z0-9_\-]{36}={0,2}", "secret-live-", "secret-test-"),
    _rule("paddle_api_key", "paddle_key", r"pdl_(?:live|sdbx)_apikey_[A-Za-z0-9_]{40,80}", "pdl_live_apikey_", "pdl_sdbx_apikey_"),
    _rule("backblaze_application_key", "backblaze_key", r"K00[A-Za-z0-9+/]{28}", "K00", check=_check_random("backblaze_key")),
    _rule("deno_deploy_token", "deno_token", r"dd[pw]_[A-Za-z0-9]{36}", "ddp_", "ddw_"),
    _rule("adobe_client_secret", "adobe_secret", r"p8e-[A-Za-z0-9_\-]{32}", "p8e-"),
    _rule("e2b_api_key", "e2b_key", r"e2b_[a-f0-9]{40}", "e2b_"),
    _rule("jina_api_key", "jina_key", r"jina_[A-Za-z0-9_\-]{40,80}", "jina_", check=_check_random("jina_key")),
    _rule("instagram_token", "instagram_token", r"IGQV[A-Za-z0-9_\-]{100,400}", "IGQV", after=_OPEN, extend=r"[A-Za-z0-9_\-]*"),
    _rule("pinterest_token", "pinterest_token", r"pina_[A-Z0-9]{30,120}", "pina_"),
    _rule("foursquare_key", "foursquare_key", r"fsq3[A-Za-z0-9+/=]{40,48}", "fsq3"),
)  # fmt: skip
