"""Masking a URL's password without SQLAlchemy (``shipcaptain.urls``): for every URL the
fast reading takes, the same text as SQLAlchemy's parse and render gives; what it does not
take, SQLAlchemy reads as always."""

from __future__ import annotations

import pytest

from shipcaptain import urls

CORPUS = [
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://sc:s3cret@db.internal:5432/shipcaptain",
    "postgresql+psycopg://sc:pw@db/sc",
    "postgres://sc:pw@db:6543/sc",
    "postgresql://sc:pw@db",
    "postgresql://sc:pw@db/",
    "postgresql://sc@db",
    "postgresql://sc:p!w$*()@db/sc",
    "postgresql://sc:p+w@db/sc",
    "postgresql://sc:pw@db:05432/sc",
    "postgresql://sc:pw@db:0/sc",
    "postgresql://sc:pw@[::1]:5432/sc",
    "postgresql://sc:p%40w@db/sc",
    "postgresql://sc:pw@db/sc?sslmode=require",
    "postgresql://sc:pw@db/sc#frag",
    "postgresql://sc:@db/sc",
    "postgresql://:pw@db/sc",
    "postgresql://s c:pw@db/sc",
    "postgresql://sc:p:w@db/sc",
    "postgresql://sc:pw@db/s/c",
    "postgresql://sc:pw@/sc",
    "postgresql://sc:pw@db:99999/sc",
    "postgresql://Sc.User-1:pw@DB.example.COM:5432/Sc_db",
    "sqlite:////srv/sc/state.db",
    "sqlite:///relative.db",
    "not a url @ all",
]


@pytest.mark.parametrize("url", CORPUS)
def test_the_plain_reading_is_sqlalchemys(url: str) -> None:
    with_user = "@" in url
    assert urls.mask_url(url) == (urls._sqlalchemy_mask(url) if with_user else url)
    assert urls.password_of(url) == (urls._sqlalchemy_password(url) if with_user else None)


def test_plain_urls_are_read_without_sqlalchemy() -> None:
    taken = [u for u in CORPUS if "@" in u and urls._plain(u) is not None]
    assert "postgresql://sc:s3cret@db.internal:5432/shipcaptain" in taken
    assert "postgresql://postgres@127.0.0.1:5432/postgres" in taken
    assert urls.mask_url(taken[1]) == "postgresql://sc:***@db.internal:5432/shipcaptain"
    left = {"postgresql://sc:p%40w@db/sc", "postgresql://sc:pw@db/sc?sslmode=require"}
    assert not left & set(taken)
