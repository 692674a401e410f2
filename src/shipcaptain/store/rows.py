"""Records to query parameters and database rows back to records.

Both backends get the same parameters: timestamps as fixed-width ISO text in UTC and JSON
values as canonical JSON text (PostgreSQL casts them to ``timestamptz`` and ``jsonb``).
Rows come back as text on SQLite and as ``datetime``/``dict`` on PostgreSQL; the decoders
here accept both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from shipcaptain.store.audit import canonical_json, format_time
from shipcaptain.store.records import (
    DecisionRecord,
    EventRecord,
    GateRecord,
    GateStatus,
    Person,
    ReleaseRecord,
    ReleaseStatus,
    StepRunRecord,
    StepStatus,
    TokenRecord,
    WorkerRecord,
)

Row = Mapping[str, Any]
Params = dict[str, Any]


def time_param(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def json_param(value: Any) -> str:
    return canonical_json(value)


def decode_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def decode_optional_time(value: Any) -> datetime | None:
    return None if value is None else decode_time(value)


def decode_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def release_params(release: ReleaseRecord) -> Params:
    return {
        "id": release.id,
        "runbook_name": release.runbook_name,
        "runbook_digest": release.runbook_digest,
        "runbook_text": release.runbook_text,
        "runbook_path": release.runbook_path,
        "workdir": release.workdir,
        "environment": release.environment,
        "params": json_param(release.params),
        "status": release.status,
        "run": release.run,
        "started_by": release.started_by,
        "created_at": time_param(release.created_at),
        "started_at": time_param(release.started_at),
        "ended_at": time_param(release.ended_at),
        "reason": release.reason,
        "executor_id": release.executor_id,
    }


def release_from_row(row: Row) -> ReleaseRecord:
    return ReleaseRecord(
        id=row["id"],
        runbook_name=row["runbook_name"],
        runbook_digest=row["runbook_digest"],
        runbook_text=row["runbook_text"],
        runbook_path=row["runbook_path"],
        workdir=row["workdir"],
        environment=row["environment"],
        params=decode_json(row["params"]),
        status=cast(ReleaseStatus, row["status"]),
        run=row["run"],
        started_by=row["started_by"],
        created_at=decode_time(row["created_at"]),
        started_at=decode_optional_time(row["started_at"]),
        ended_at=decode_optional_time(row["ended_at"]),
        reason=row["reason"],
        executor_id=row["executor_id"],
    )


def step_run_params(step: StepRunRecord) -> Params:
    return {
        "release_id": step.release_id,
        "step_id": step.step_id,
        "run": step.run,
        "attempt": step.attempt,
        "status": step.status,
        "started_at": time_param(step.started_at),
        "ended_at": time_param(step.ended_at),
        "summary": step.summary,
        "detail": step.detail,
        "outputs": json_param(step.outputs),
        "already_done": bool(step.already_done),
    }


def step_run_from_row(row: Row) -> StepRunRecord:
    return StepRunRecord(
        release_id=row["release_id"],
        step_id=row["step_id"],
        run=row["run"],
        attempt=row["attempt"],
        status=cast(StepStatus, row["status"]),
        started_at=decode_optional_time(row["started_at"]),
        ended_at=decode_optional_time(row["ended_at"]),
        summary=row["summary"],
        detail=row["detail"],
        outputs=decode_json(row["outputs"]),
        already_done=bool(row["already_done"]),
    )


def gate_params(gate: GateRecord) -> Params:
    return {
        "release_id": gate.release_id,
        "step_id": gate.step_id,
        "run": gate.run,
        "kind": gate.kind,
        "prompt": gate.prompt,
        "roles": json_param(list(gate.roles)),
        "people": json_param(list(gate.people)),
        "quorum": gate.quorum,
        "deadline_at": time_param(gate.deadline_at),
        "evidence": json_param(gate.evidence),
        "status": gate.status,
        "opened_at": time_param(gate.opened_at),
        "closed_at": time_param(gate.closed_at),
    }


def gate_from_row(row: Row) -> GateRecord:
    return GateRecord(
        release_id=row["release_id"],
        step_id=row["step_id"],
        run=row["run"],
        kind=row["kind"],
        prompt=row["prompt"],
        roles=decode_json(row["roles"]),
        people=decode_json(row["people"]),
        quorum=row["quorum"],
        deadline_at=decode_optional_time(row["deadline_at"]),
        evidence=decode_json(row["evidence"]),
        status=cast(GateStatus, row["status"]),
        opened_at=decode_time(row["opened_at"]),
        closed_at=decode_optional_time(row["closed_at"]),
    )


def decision_params(decision: DecisionRecord) -> Params:
    return {
        "release_id": decision.release_id,
        "step_id": decision.step_id,
        "run": decision.run,
        "user_name": decision.user,
        "role": decision.role,
        "decision": decision.decision,
        "comment": decision.comment,
        "at": time_param(decision.at),
        "evidence": json_param(decision.evidence),
    }


def decision_from_row(row: Row) -> DecisionRecord:
    return DecisionRecord(
        release_id=row["release_id"],
        step_id=row["step_id"],
        run=row["run"],
        user=row["user_name"],
        role=row["role"],
        decision=row["decision"],
        comment=row["comment"],
        at=decode_time(row["at"]),
        evidence=decode_json(row["evidence"]) or {},
    )


def event_params(event: EventRecord) -> Params:
    return {
        "seq": event.seq,
        "at": time_param(event.at),
        "release_id": event.release_id,
        "step_id": event.step_id,
        "kind": event.kind,
        "actor": event.actor,
        "message": event.message,
        "data": json_param(event.data),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "mac": event.mac,
    }


def event_from_row(row: Row) -> EventRecord:
    return EventRecord(
        seq=row["seq"],
        at=decode_time(row["at"]),
        release_id=row["release_id"],
        step_id=row["step_id"],
        kind=row["kind"],
        actor=row["actor"],
        message=row["message"],
        data=decode_json(row["data"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        mac=row.get("mac"),
    )


def worker_from_row(row: Row) -> WorkerRecord:
    return WorkerRecord(
        executor_id=row["executor_id"],
        pid=row["pid"],
        hostname=row["hostname"],
        kind=row["kind"],
        started_at=decode_time(row["started_at"]),
        heartbeat_at=decode_time(row["heartbeat_at"]),
    )


def person_params(person: Person) -> Params:
    return {
        "name": person.name,
        "display_name": person.display_name,
        "email": person.email,
        "slack_id": person.slack_id,
        "roles": json_param({env: list(roles) for env, roles in person.roles.items()}),
        "surfaces": json_param(list(person.surfaces)),
        "admin": 1 if person.admin else 0,
        "active": 1 if person.active else 0,
    }


def person_from_row(row: Row) -> Person:
    roles = decode_json(row["roles"]) or {}
    return Person(
        name=row["name"],
        display_name=row["display_name"],
        email=row["email"],
        slack_id=row["slack_id"],
        roles={str(env): tuple(str(r) for r in held) for env, held in roles.items()},
        surfaces=tuple(str(s) for s in decode_json(row["surfaces"]) or ()),
        admin=bool(row["admin"]),
        active=bool(row["active"]),
    )


def token_params(token: TokenRecord) -> Params:
    return {
        "id": token.id,
        "person": token.person,
        "label": token.label,
        "secret_hash": token.secret_hash,
        "created_at": time_param(token.created_at),
        "created_by": token.created_by,
        "expires_at": time_param(token.expires_at),
    }


def token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        person=row["person"],
        label=row["label"],
        secret_hash=row["secret_hash"],
        created_at=decode_time(row["created_at"]),
        created_by=row["created_by"],
        expires_at=decode_optional_time(row["expires_at"]),
        revoked_at=decode_optional_time(row["revoked_at"]),
        revoked_by=row["revoked_by"],
    )
