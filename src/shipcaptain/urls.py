"""Printable URLs: a URL with its password masked, safe to show and log, and the password
itself (to scrub it out of a driver's message).

A bottom module (it imports nothing of shipcaptain's): the CLI, the web layer and the store
all print database URLs, and none of them needs the others for it. Which database a URL
means is the store's business (``shipcaptain.store.urls``).
"""

from __future__ import annotations

import re

# SQLAlchemy parses a URL that may hold a password (one with an "@"), imported there only:
# the commands that only read never import it. A plain URL (no escapes, query or fragment; a
# user, host and port written as SQLAlchemy renders them) is read here instead, to the same
# result (tests/unit/test_urls.py compares the two over a corpus of URLs).

_USERINFO = re.compile(r"(?P<head>://[^:/@]*:)[^@]*@")
_PLAIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+]*)://(?P<user>[A-Za-z0-9_.~-]+)(?::(?P<password>[^@/:]+))?"
    r"@(?P<host>[A-Za-z0-9_.-]+)(?::[1-9][0-9]{0,4})?(?:/[A-Za-z0-9_.-]*)?"
)


def _plain(url: str) -> re.Match[str] | None:
    """``url`` read without SQLAlchemy, when it is plain (see above); None otherwise."""
    if any(c in url for c in "%?#[] "):
        return None
    return _PLAIN.fullmatch(url)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, safe to show and log."""
    if "@" not in url:
        return url  # no user information: no password
    if (plain := _plain(url)) is not None:
        if plain["password"] is None:
            return url
        start, end = plain.span("password")
        return f"{url[:start]}***{url[end:]}"
    return _sqlalchemy_mask(url)


def _sqlalchemy_mask(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _USERINFO.sub(r"\g<head>***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def password_of(url: str) -> str | None:
    """The password in ``url``, if any (used to scrub driver messages)."""
    if "@" not in url:
        return None
    if (plain := _plain(url)) is not None:
        return plain["password"]
    return _sqlalchemy_password(url)


def _sqlalchemy_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return None
    return str(password) if password else None
