"""Who may run what, and who is signed in: the runbook allow-list and the dashboard's
sessions in the store (migration 0007).

A mixin of :class:`~shipcaptain.store.base.Store`, like the incidents: the same named
queries, transactions and audit events. Every change of the allow-list and every session
that starts or ends is an event in the audit log, in the transaction that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipcaptain import events
from shipcaptain.codec import decode
from shipcaptain.errors import NotFound
from shipcaptain.records import Person, RunbookRule, utcnow
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection
from shipcaptain.store.rows import decode_json, person_from_row, time_param


@dataclass(frozen=True, kw_only=True)
class WebSession:
    """A dashboard session: whose, opened with which token, until when."""

    id_hash: str
    person: str
    token_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None


@dataclass(frozen=True)
class TeamRecord:
    """The team as :meth:`AccessStore.read_team` read it at one moment."""

    people: tuple[Person, ...]
    permissions: dict[str, Any] | None
    """None: the team file set none (the defaults apply)."""
    environments: dict[str, Any]
    runbooks: tuple[RunbookRule, ...]


def _rules(found: list[dict[str, Any]]) -> list[RunbookRule]:
    return [decode(RunbookRule, r) for r in found]


class AccessStore(StoreCore):
    """The allow-list and session methods of the store."""

    # -- the team's environments and the allow-list ------------------------------------

    def team_environments(self) -> dict[str, Any]:
        """The team file's ``environments:`` section ({} when it has none)."""
        with self._transaction("reading the team's environments") as conn:
            row = self._one(conn, "get_team_policy")
        return {} if row is None else dict(decode_json(row["environments"]) or {})

    def list_runbook_rules(self) -> list[RunbookRule]:
        """The allow-list, by environment."""
        with self._transaction("reading the runbook allow-list") as conn:
            return _rules(self._all(conn, "list_runbook_rules"))

    def read_team(self) -> TeamRecord:
        """The team as one snapshot of the database: its people, permissions, environments
        and the allow-list. A permission check reads them together: read one by one, a
        team applied in between could give a mix that neither team allows (someone's old
        role with the new permission table)."""
        with self._snapshot("reading the team") as conn:
            people = [person_from_row(row) for row in self._all(conn, "list_people")]
            policy = self._one(conn, "get_team_policy")
            rules = _rules(self._all(conn, "list_runbook_rules"))
        return TeamRecord(
            people=tuple(people),
            permissions=None if policy is None else dict(decode_json(policy["permissions"])),
            environments={} if policy is None else dict(decode_json(policy["environments"]) or {}),
            runbooks=tuple(rules),
        )

    def allow_runbook(self, rule: RunbookRule, *, actor: str, message: str) -> bool:
        """Put ``rule`` on the allow-list and record it; False if it was there already."""
        with self._transaction("allowing a runbook", write=True) as conn:
            done = self._run(
                conn,
                "insert_runbook_rule",
                environment=rule.environment,
                kind=rule.kind,
                value=rule.value,
                added_by=actor,
                added_at=time_param(utcnow()),
                note=rule.note,
            )
            if done.rowcount:
                self._append_event(
                    conn, None, None, events.RunbookAllowed.kind, actor, message, _rule_data(rule)
                )
            return bool(done.rowcount)

    def remove_runbook_rule(self, rule: RunbookRule, *, actor: str, message: str) -> None:
        """Take ``rule`` off the allow-list and record it; NotFound if it is not on it."""
        with self._transaction("removing a runbook from the allow-list", write=True) as conn:
            done = self._run(
                conn,
                "delete_runbook_rule",
                environment=rule.environment,
                kind=rule.kind,
                value=rule.value,
            )
            if not done.rowcount:
                raise NotFound(
                    f"the allow-list of {rule.environment} has no {rule.kind} {rule.value!r}"
                )
            self._append_event(
                conn, None, None, events.RunbookDisallowed.kind, actor, message, _rule_data(rule)
            )

    # -- the dashboard's sessions ------------------------------------------------------

    def start_web_session(self, session: WebSession, *, message: str, data: dict[str, Any]) -> None:
        """Keep a new session and record that it started."""
        with self._transaction("starting a dashboard session", write=True) as conn:
            self._run(
                conn,
                "insert_web_session",
                id_hash=session.id_hash,
                person=session.person,
                token_id=session.token_id,
                csrf=session.csrf,
                created_at=time_param(session.created_at),
                expires_at=time_param(session.expires_at),
            )
            self._append_event(
                conn, None, None, events.SessionStarted.kind, session.person, message, data
            )

    def get_web_session(self, id_hash: str) -> WebSession | None:
        with self._transaction("reading a dashboard session") as conn:
            row = self._one(conn, "get_web_session", id_hash=id_hash)
        if row is None:
            return None
        return decode(WebSession, row)

    def end_web_session(self, id_hash: str, *, actor: str, why: str) -> bool:
        """End a session (sign-out) and record it; False if it had ended already."""
        with self._transaction("ending a dashboard session", write=True) as conn:
            done = self._run(
                conn, "end_web_session", id_hash=id_hash, ended_at=time_param(utcnow()),
                ended_by=actor,
            )  # fmt: skip
            if done.rowcount:
                row = self._one(conn, "get_web_session", id_hash=id_hash)
                assert row is not None
                self._append_event(
                    conn, None, None, events.SessionEnded.kind, actor,
                    f"{actor} ended the dashboard session of {row['person']}: {why}",
                    {"person": row["person"], "token": row["token_id"], "why": why},
                )  # fmt: skip
            return bool(done.rowcount)

    def end_token_sessions(self, conn: Connection, token_id: str, actor: str) -> int:
        """In a transaction that revokes ``token_id``: end every session it opened."""
        done = self._run(
            conn, "end_token_sessions", token_id=token_id, ended_at=time_param(utcnow()),
            ended_by=actor,
        )  # fmt: skip
        return int(done.rowcount or 0)


def _rule_data(rule: RunbookRule) -> dict[str, Any]:
    return {
        "environment": rule.environment,
        "kind": rule.kind,
        "value": rule.value,
        "note": rule.note,
    }
