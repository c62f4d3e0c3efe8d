"""hardenkit logging in a plain script: redacted JSON lines with request ids.

    python examples/logging_example.py

Log lines (JSON) go to stderr; the redact_obj / partial-mode demo prints to stdout.
"""

from __future__ import annotations

import logging

import hardenkit as hk
from hardenkit.headers import REQUEST_ID

hk.configure_logging(level="INFO", json=True, redact=True)
log = logging.getLogger("billing")

# Secrets in messages, args, extras and exceptions never reach the log line.
log.info("charging %s for order %d", "alice@example.com", 1042)
payment = {"card": "4111 1111 1111 1111", "amount": 12.5, "password": "hunter2"}
log.info("payment accepted", extra={"payment": payment})
assert payment["card"] == "4111 1111 1111 1111"  # the caller's dict is untouched

# Inside a request (HeaderContractMiddleware sets this for you) lines carry the id.
token = REQUEST_ID.set("demo-request-1")
try:
    try:
        raise RuntimeError("stripe rejected key sk_live_4eC39HqLyjWDarjtT1zdp7dc")
    except RuntimeError:
        log.exception("payment failed")
finally:
    REQUEST_ID.reset(token)

# The same engine for your own structures: cards keep their last four digits.
partial = hk.Redactor(mode="partial")
print(partial.redact_obj({"customer": "alice@example.com", "card": "4111 1111 1111 1111"}))
