"""Scrubbing secrets out of text meant to be shown or kept: passwords in URLs, shipcaptain
tokens and webhook URLs (Slack's, and any ``.../webhook(s)/...`` or ``.../hooks/...`` path).

The audit log (every event's message and data) and the evidence bundle pass through
:func:`scrub_value`; actions redact the secrets they are told about on top of this.
"""

from __future__ import annotations

import re
from typing import Any

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@")
_TOKEN = re.compile(r"sct_[A-Za-z0-9_-]{8,}")
_WEBHOOK = re.compile(
    r"https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)|[^\s/]+/(?:webhooks?|hooks))"
    r"/[^\s\"']+"
)


def scrub(text: str) -> str:
    """``text`` without secrets: URL passwords, shipcaptain tokens and webhook paths."""
    if "://" not in text and "sct_" not in text:
        # what every pattern needs (a URL's "://", a token's "sct_"): most of an event's
        # strings have neither, and three substitutions each cost every event ~20 us
        return text
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _TOKEN.sub("sct_***", text)
    return _WEBHOOK.sub(_mask_webhook, text)


def _mask_webhook(match: re.Match[str]) -> str:
    scheme, _, host = match.group(0).split("/", 3)[:3]
    return f"{scheme}//{host}/***"


def scrub_value(value: Any) -> Any:
    """:func:`scrub` every string inside a JSON value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
