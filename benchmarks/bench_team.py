"""The team a benchmark works as: one person (``bench`` unless told) and a token of theirs.

Shared by the benchmarks that need a person on the state database (every call on it is a
person's); each says only what differs: the person's roles, the team's permissions.
"""

from __future__ import annotations

from typing import Any

from shipcaptain.identity import create_token
from shipcaptain.records import Person
from shipcaptain.store import Store

#: permissions that let the team's people do everything in every environment
EVERYTHING: dict[str, Any] = {"*": {"*": ["*"]}}


def put_bench_team(
    store: Store,
    name: str = "bench",
    *,
    roles: tuple[str, ...] = ("*",),
    admin: bool = True,
    permissions: dict[str, Any] | None = None,
    environments: dict[str, Any] | None = None,
    message: str = "the benchmark's team",
) -> Person:
    """Make a team of one person with ``roles`` in every environment; ``permissions`` (and
    ``environments``) replace the team's when given. Returns the person."""
    person = Person(name=name, admin=admin, roles={"*": roles} if roles else {})
    store.put_team(
        [person],
        actor="bench",
        message=message,
        data={},
        permissions=permissions,
        environments=environments,
    )
    return person


def bench_token(
    store: Store,
    name: str,
    label: str,
    *,
    expires_in: float | None = None,
    by: Person | None = None,
) -> str:
    """A token of ``name`` (the person of ``put_bench_team``), asked by ``by``."""
    secret, _ = create_token(store, name, expires_in=expires_in, label=label, by=by)
    return secret
