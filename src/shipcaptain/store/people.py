"""People and tokens in the store: the team, its permissions, API tokens.

A mixin of :class:`~shipcaptain.store.base.Store` (see :mod:`shipcaptain.store.releases`).
"""

from __future__ import annotations

from typing import Any

from shipcaptain import events
from shipcaptain.errors import NotFound
from shipcaptain.records import (
    EventRecord,
    Person,
    TokenRecord,
    utcnow,
)
from shipcaptain.store import rows
from shipcaptain.store.core import StoreCore


def _team_changes(before: dict[str, Person], people: list[Person]) -> dict[str, list[str]]:
    """Who a team change adds, removes, or gives other roles, surfaces or admin rights."""
    active = {name for name, p in before.items() if p.active}
    names = {p.name for p in people}

    def held(p: Person) -> tuple[object, ...]:
        return (sorted((e, sorted(r)) for e, r in p.roles.items()), sorted(p.surfaces), p.admin)

    return {
        "added": sorted(names - active),
        "removed": sorted(active - names),
        "changed": sorted(
            p.name for p in people if p.name in active and held(before[p.name]) != held(p)
        ),
    }


class PeopleStore(StoreCore):
    """The team and token methods of the store."""

    def put_team(
        self,
        people: list[Person],
        *,
        actor: str,
        message: str,
        data: dict[str, Any],
        permissions: dict[str, Any] | None = None,
        environments: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Make ``people`` the team (and ``permissions`` its permissions, ``environments``
        its environments, when permissions are given): each person is added or replaced,
        anyone else known becomes inactive; one audit event records the change, in the
        same transaction."""
        now = rows.time_param(utcnow())
        names = {person.name for person in people}
        with self._transaction("storing the team", write=True) as conn:
            if permissions is not None:
                self._run(
                    conn,
                    "put_team_policy",
                    permissions=rows.json_param(permissions),
                    environments=rows.json_param(environments or {}),
                    updated_at=now,
                )
            before = {p.name: p for p in map(rows.person_from_row, self._all(conn, "list_people"))}
            for name in before:
                if name not in names:
                    self._run(conn, "deactivate_person", name=name, updated_at=now)
            for person in people:
                self._run(conn, "upsert_person", **rows.person_params(person), updated_at=now)
            changes = _team_changes(before, people)
            data = {**data, "changes": changes}
            return self._append_event(
                conn, None, None, events.TeamApplied.kind, actor, message, data
            )

    def get_person(self, name: str) -> Person:
        """The person ``name`` (active or not); :class:`NotFound` if unknown."""
        with self._transaction("reading a person") as conn:
            row = self._one(conn, "get_person", name=name)
        if row is None:
            raise NotFound(f"no person {name!r} in the team")
        return rows.person_from_row(row)

    def team_permissions(self) -> dict[str, Any] | None:
        """The permissions the team file set, or None (the defaults apply)."""
        with self._transaction("reading the team's permissions") as conn:
            row = self._one(conn, "get_team_policy")
        return None if row is None else dict(rows.decode_json(row["permissions"]))

    def list_people(self) -> list[Person]:
        """Everyone known (inactive people included), by name."""
        with self._transaction("listing people") as conn:
            return [rows.person_from_row(row) for row in self._all(conn, "list_people")]

    def add_token(self, token: TokenRecord, *, actor: str, message: str) -> TokenRecord:
        """Store a new token (its hash) and record it in the audit log, atomically."""
        with self._transaction("creating a token", write=True) as conn:
            self._run(conn, "insert_token", **rows.token_params(token))
            data = {
                "token": token.id,
                "person": token.person,
                "label": token.label,
                "expires_at": rows.time_param(token.expires_at),
            }
            self._append_event(conn, None, None, events.TokenCreated.kind, actor, message, data)
            row = self._one(conn, "get_token", id=token.id)
        assert row is not None
        return rows.token_from_row(row)

    def find_token(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret has this hash, if any."""
        with self._transaction("looking up a token") as conn:
            row = self._one(conn, "get_token_by_hash", secret_hash=secret_hash)
        return None if row is None else rows.token_from_row(row)

    def get_token(self, token_id: str) -> TokenRecord:
        """The token ``token_id``; :class:`NotFound` if there is none."""
        with self._transaction("reading a token") as conn:
            row = self._one(conn, "get_token", id=token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return rows.token_from_row(row)

    def list_tokens(self, person: str | None = None) -> list[TokenRecord]:
        """Tokens (never their secrets), optionally of one person, oldest first."""
        with self._transaction("listing tokens") as conn:
            found = self._all(conn, "list_tokens", person=person)
        return [rows.token_from_row(row) for row in found]

    def revoke_token(self, token_id: str, *, actor: str) -> TokenRecord:
        """Revoke a token (again: no change) and record it in the audit log."""
        with self._transaction("revoking a token", write=True) as conn:
            row = self._one(conn, "get_token", id=token_id)
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            done = self._run(
                conn,
                "revoke_token",
                id=token_id,
                revoked_at=rows.time_param(utcnow()),
                revoked_by=actor,
            )
            if done.rowcount:
                ended = self.end_token_sessions(conn, token_id, actor)
                data = {"token": token_id, "person": row["person"], "sessions_ended": ended}
                message = f"{actor} revoked token {token_id} of {row['person']}"
                self._append_event(conn, None, None, events.TokenRevoked.kind, actor, message, data)
            row = self._one(conn, "get_token", id=token_id)
        assert row is not None
        return rows.token_from_row(row)

    def live_admin_tokens(self) -> int:
        """How many unrevoked, unexpired tokens active admins hold."""
        with self._transaction("counting admin tokens") as conn:
            row = self._one(conn, "count_live_admin_tokens", now=rows.time_param(utcnow()))
        return int(row["n"]) if row else 0
