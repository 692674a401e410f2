"""Scrubbing secrets out of what is kept: URL passwords, shipcaptain tokens, webhook paths;
a string with neither a URL's "://" nor a token's "sct_" is returned as it is without
running the patterns, which is the same as running them."""

from __future__ import annotations

import pytest

from shipcaptain import redact
from shipcaptain.redact import scrub, scrub_value


def every_pattern(text: str) -> str:
    """The three substitutions, always run."""
    text = redact._URL_PASSWORD.sub(r"\g<head>***@", text)
    text = redact._TOKEN.sub("sct_***", text)
    return redact._WEBHOOK.sub(redact._mask_webhook, text)


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("postgresql://sam:hunter22@db:5432/state", "postgresql://sam:***@db:5432/state"),
        ("HTTP://u:p@host/x", "HTTP://u:***@host/x"),
        ("token sct_abcdefgh12345 given", "token sct_*** given"),
        (
            "post to https://hooks.slack.com/services/T0/B0/xyz",
            "post to https://hooks.slack.com/***",
        ),
        ("https://ci.example.com/hooks/abc123 'q'", "https://ci.example.com/*** 'q'"),
        ("try 1 of shell started", "try 1 of shell started"),
        ("sct_short", "sct_short"),  # too short to be a token
        ("", ""),
    ],
)
def test_secrets_are_scrubbed(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


def test_the_shortcut_gives_what_the_patterns_give() -> None:
    parts = ["a", "://", "sct_", "abcdefgh1", "user:pw@", "https", "hooks.slack.com/services/x",
             "/webhooks/", "SCT_", ":/ /", "sct", "_", "@", " "]  # fmt: skip
    texts = {a + b + c for a in parts for b in parts for c in parts}
    assert len(texts) > 1000
    for text in texts:
        assert scrub(text) == every_pattern(text), text


def test_a_json_value_is_scrubbed_throughout() -> None:
    value = {
        "url": "https://u:secret@h/x",
        "list": ["sct_abcdefgh1234", 3, None, {"sct_abcdefgh9999": True}],
        "plain": "nothing to hide",
    }
    assert scrub_value(value) == {
        "url": "https://u:***@h/x",
        "list": ["sct_***", 3, None, {"sct_***": True}],
        "plain": "nothing to hide",
    }
