"""The built-in rule table, in the order rules run, and the categories it can produce.

Provider token formats run first (they name what they find), then the generic
credential shapes (JWTs, headers, URLs with passwords), then key contexts, then
personal data. Standard library only.
"""

from __future__ import annotations

from .context import CONTEXT_RULES, ENTROPY_RULES
from .providers import PROVIDER_RULES
from .rules import BASE_RULES, Rule

__all__ = ["CATEGORIES", "DEFAULT_CATEGORIES", "OPT_IN_CATEGORIES", "RULES"]

_GENERIC = ("jwt", "aws_key", "azure_key", "azure_sas", "azure_key_bare", "header", "bearer", "url_password")
_LATE = ("aws_secret", "card", "iban", "ssn", "phone", "email", "ipv4", "ipv6")

RULES: tuple[Rule, ...] = (
    *(rule for rule in BASE_RULES if rule.name == "aws_key"),
    *PROVIDER_RULES,
    *(rule for name in _GENERIC if name != "aws_key" for rule in BASE_RULES if rule.name == name),
    *CONTEXT_RULES,
    *(rule for name in _LATE for rule in BASE_RULES if rule.name == name),
    *ENTROPY_RULES,
)

#: Every built-in category, in the order rules run.
CATEGORIES: tuple[str, ...] = (
    "private_key",
    *dict.fromkeys(cat for rule in RULES for cat in rule.categories),
)
#: Off unless enabled: addresses are often needed in logs; entropy guesses can hit ids.
OPT_IN_CATEGORIES: frozenset[str] = frozenset({"ip", "high_entropy"})
DEFAULT_CATEGORIES: frozenset[str] = frozenset(CATEGORIES) - OPT_IN_CATEGORIES
