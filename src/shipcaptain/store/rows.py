"""Records to query parameters and database rows back to records, driven by the records'
fields (``shipcaptain.records``): nothing here repeats a record's fields.

Both backends get the same parameters: timestamps as fixed-width ISO text in UTC and JSON
values as canonical JSON text (PostgreSQL casts them to ``timestamptz`` and ``jsonb``).
Rows come back as text on SQLite and as ``datetime``/``dict`` on PostgreSQL; the decoder
(:func:`shipcaptain.codec.decode`) accepts both. Where a column differs from its field (a
decision's ``user`` is the column ``user_name``; a person's flags are integers on both
databases), the mapping says so here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Literal, get_args, get_origin, get_type_hints

from shipcaptain.codec import decode, decode_json, decode_optional_time, decode_time
from shipcaptain.records import (
    DecisionRecord,
    EventRecord,
    GateRecord,
    IncidentRecord,
    NotificationRecord,
    Person,
    ReleaseRecord,
    StepRunRecord,
    TokenRecord,
    WorkerRecord,
)
from shipcaptain.store.audit import canonical_json, format_time

__all__ = [
    "Params",
    "Row",
    "decode_json",
    "decode_optional_time",
    "decode_time",
    "json_param",
    "params",
    "time_param",
]

Row = Mapping[str, Any]
Params = dict[str, Any]

#: a decision's ``user`` is stored as ``user_name`` (``user`` is a reserved word in SQL)
DECISION_COLUMNS = {"user": "user_name"}


def time_param(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def json_param(value: Any) -> str:
    return canonical_json(value)


def _kind(tp: Any) -> Literal["time", "json", "value"]:
    args = [a for a in get_args(tp) if a is not type(None)]
    if tp is datetime or (len(args) == 1 and args[0] is datetime):
        return "time"
    if (get_origin(tp) or tp) in (dict, list, tuple):
        return "json"
    return "value"


_PLANS: dict[type, tuple[tuple[str, str], ...]] = {}


def _param_plan(cls: type) -> tuple[tuple[str, str], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = get_type_hints(cls)
        fields = dataclasses.fields(cls)
        plan = _PLANS[cls] = tuple((f.name, _kind(hints[f.name])) for f in fields)
    return plan


def params(
    record: Any, *, columns: Mapping[str, str] | None = None, exclude: Collection[str] = ()
) -> Params:
    """A record's fields (less ``exclude``) as query parameters named after their columns."""
    found: Params = {}
    for name, kind in _param_plan(type(record)):
        if name in exclude:
            continue
        value = getattr(record, name)
        if kind == "time":
            value = time_param(value)
        elif kind == "json":
            value = json_param(value)
        found[columns.get(name, name) if columns else name] = value
    return found


# ---- each record ---------------------------------------------------------------------------


def release_params(release: ReleaseRecord, outline: str | None = None) -> Params:
    """The row of ``release``; ``outline``: its runbook's outline as JSON text (not a field
    of the record: only ``release show`` reads it, through ``Store.release_outline``)."""
    row = params(release, exclude=("queued_for_worker",))  # set by the reads, not stored
    row["outline"] = outline
    return row


def release_from_row(row: Row) -> ReleaseRecord:
    return decode(ReleaseRecord, row)


def step_run_params(step: StepRunRecord) -> Params:
    return params(step)


def step_run_from_row(row: Row) -> StepRunRecord:
    return decode(StepRunRecord, row)


def gate_params(gate: GateRecord) -> Params:
    return params(gate)


def gate_from_row(row: Row) -> GateRecord:
    return decode(GateRecord, row)


def decision_params(decision: DecisionRecord) -> Params:
    return params(decision, columns=DECISION_COLUMNS)


def decision_from_row(row: Row) -> DecisionRecord:
    return decode(DecisionRecord, row, DECISION_COLUMNS)


def event_params(event: EventRecord) -> Params:
    return params(event)


def event_from_row(row: Row) -> EventRecord:
    return decode(EventRecord, row)


def worker_from_row(row: Row) -> WorkerRecord:
    return decode(WorkerRecord, row)


def person_params(person: Person) -> Params:
    # admin and active are INTEGER columns on both databases
    return {**params(person), "admin": int(person.admin), "active": int(person.active)}


def person_from_row(row: Row) -> Person:
    return decode(Person, row)


def token_params(token: TokenRecord) -> Params:
    return params(token, exclude=("revoked_at", "revoked_by"))  # a new token is not revoked


def token_from_row(row: Row) -> TokenRecord:
    return decode(TokenRecord, row)


def incident_from_row(row: Row) -> IncidentRecord:
    return decode(IncidentRecord, row)


def notification_from_row(row: Row) -> NotificationRecord:
    return decode(NotificationRecord, row)
