"""Printable URLs: a URL with its password masked, safe to show and log, and the password
itself (to scrub it out of a driver's message).

A bottom module (it imports nothing of shipcaptain's): the CLI, the web layer and the store
all print database URLs, and none of them needs the others for it. Which database a URL
means is the store's business (``shipcaptain.store.urls``).
"""

from __future__ import annotations

import re

# SQLAlchemy parses a URL that may hold a password (one with an "@"); imported there only, so
# that the commands that only read a SQLite database never import it.

_USERINFO = re.compile(r"(?P<head>://[^:/@]*:)[^@]*@")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, safe to show and log."""
    if "@" not in url:
        return url  # no user information: no password
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
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return None
    return str(password) if password else None
