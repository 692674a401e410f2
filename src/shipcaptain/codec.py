"""Records to and from plain data: one decoder and one serializer for every record.

:func:`decode` makes a record (``shipcaptain.records``) from a mapping, driven by the
record's fields and their types: a ``datetime`` field takes a ``datetime`` or ISO text, a
``dict``/``list``/``tuple`` field takes the value or its JSON text, a ``bool`` field takes
0/1. The store decodes its rows with it (SQLite gives text, PostgreSQL gives ``datetime``
and ``dict``) and the remote client the API's answers (JSON). :func:`plain` is the other
way: the record as a dict, which ``--json`` prints and the API's response models validate.

Only the standard library: a read-only command pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:  # types only: the client loads where it is used
    from shipcaptain.client import ReleaseView, WorkerStatus
    from shipcaptain.records import IncidentRecord, ReleaseRecord

R = TypeVar("R")
Convert = Callable[[Any], Any]


def decode_time(value: Any) -> datetime:
    """A ``datetime`` (or its ISO text) in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def decode_optional_time(value: Any) -> datetime | None:
    return None if value is None else decode_time(value)


def decode_json(value: Any) -> Any:
    """A JSON value, or its text (SQLite's columns)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _optional(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _container(tp: Any) -> Convert | None:
    """How to make the value of a ``dict``/``list``/``tuple`` type from decoded JSON (JSON
    ``null`` becomes the empty container); None for any other type."""
    origin = get_origin(tp) or tp
    if origin not in (dict, list, tuple):
        return None
    args = [a for a in get_args(tp) if a is not Ellipsis]
    inner = _container(args[-1]) if args else None
    if origin is dict:
        if inner is None:
            return lambda value: dict(value or {})
        return lambda value: {k: inner(v) for k, v in (value or {}).items()}
    make: Callable[[Iterable[Any]], Any] = tuple if origin is tuple else list
    if inner is None:
        return lambda value: make(value or ())
    return lambda value: make(inner(v) for v in value or ())


def converter(tp: Any) -> Convert | None:
    """The conversion a field of type ``tp`` needs (None: the value as it is)."""
    if get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        convert = converter(inner[0]) if len(inner) == 1 else None
        return None if convert is None else _optional(convert)
    if tp is datetime:
        return decode_time
    if tp is bool:
        return bool
    if tp is int:
        return int
    container = _container(tp)
    if container is None:
        return None
    return lambda value: container(decode_json(value))


_PLANS: dict[type, tuple[tuple[str, Convert | None], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Convert | None], ...]:
    """Each field of the record ``cls`` with its conversion, worked out once per record."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = get_type_hints(cls)
        fields = dataclasses.fields(cls)
        plan = _PLANS[cls] = tuple((f.name, converter(hints[f.name])) for f in fields if f.init)
    return plan


def decode(
    cls: type[R], data: Mapping[str, Any], /, columns: Mapping[str, str] | None = None, **given: Any
) -> R:
    """The record ``cls`` from ``data``: each field from the key of its name (or the one
    ``columns`` maps it to), converted to the field's type; a field ``data`` lacks keeps
    its default, ``given`` fields are taken as they are. Other keys are ignored."""
    values: dict[str, Any] = {}
    for name, convert in _plan(cls):
        if name in given:
            values[name] = given[name]
            continue
        key = columns.get(name, name) if columns else name
        if key in data:
            value = data[key]
            values[name] = value if convert is None else convert(value)
    return cls(**values)


def plain(record: Any, *, exclude: Iterable[str] = (), iso: bool = False) -> dict[str, Any]:
    """A record as a dict of its fields (less ``exclude``); with ``iso``, its times as ISO
    text. What ``--json`` prints and the API's response models are validated from."""
    data = dataclasses.asdict(record)
    for name in exclude:
        data.pop(name, None)
    if iso:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
    return data


# ---- the documents --json prints and the API answers ---------------------------------------


def release_dict(r: ReleaseRecord) -> dict[str, Any]:
    """A release without its runbook's text."""
    return plain(r, exclude=("runbook_text",))


def incident_dict(inc: IncidentRecord) -> dict[str, Any]:
    return plain(inc, iso=True)


def worker_dict(w: WorkerStatus) -> dict[str, Any]:
    return {
        **plain(w.worker),
        "alive": w.alive,
        "silent_for_s": round(w.silent_for, 1),
        "releases": w.releases,
    }


def view_dict(view: ReleaseView) -> dict[str, Any]:
    """A release with its steps (each with its newest try), gates, events, comms,
    incidents, decisions and who runs it: `release show --json` and ``GET /releases/{id}``."""
    return {
        "release": release_dict(view.release),
        "steps": [
            {
                "id": s.id,
                "phase": s.phase,
                "title": s.title,
                "action": s.action,
                "status": s.status,
                "needs": s.needs,
                **(
                    plain(s.record, exclude=("release_id", "step_id", "status")) if s.record else {}
                ),
            }
            for s in view.steps
        ],
        "gates": [plain(g) for g in view.gates],
        "events": [plain(e) for e in view.events],
        "notifications": [plain(n) for n in view.notifications],
        "incidents": [plain(i) for i in view.incidents],
        "decisions": [plain(d) for d in view.decisions],
        "engine": plain(view.engine) if view.engine else None,
    }


# ---- the API's release detail, as pydantic writes it ---------------------------------------

#: what the API's documents leave out of a release, a step's try and an audit event (the
#: runbook text and the working directory stay on the server; a step's try is named by the
#: step; the MAC is the audit log's own): ``web/schemas.py`` builds its models with these
RELEASE_HIDDEN = ("runbook_text", "workdir")
STEP_TRY_HIDDEN = ("release_id", "step_id", "status")
EVENT_HIDDEN = ("mac",)
#: a step's own fields in the API's document, before its newest try's
STEP_FIELDS = ("id", "phase", "title", "action", "needs", "status")


def api_time(value: datetime) -> str:
    """A time as the API writes it (pydantic's JSON mode): ISO 8601, UTC as ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def api_value(value: Any) -> Any:
    """A value as pydantic's JSON mode writes it: times as :func:`api_time`, tuples as
    lists, a float that is not finite as null; containers converted all the way down."""
    if isinstance(value, datetime):
        return api_time(value)
    if isinstance(value, dict):
        return {k: api_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [api_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def api_record(record: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A record's fields (less ``exclude``), in their order, as the API writes them."""
    return {
        f.name: api_value(getattr(record, f.name))
        for f in dataclasses.fields(record)
        if f.name not in exclude
    }


def _step_try_defaults() -> dict[str, Any]:
    """A step's try fields before it runs: its run and attempt null, the rest the record's
    defaults (the API's ``Step`` model: ``optional`` and ``defaults``)."""
    from shipcaptain.records import StepRunRecord

    found: dict[str, Any] = {}
    for f in dataclasses.fields(StepRunRecord):
        if f.name in STEP_TRY_HIDDEN:
            continue
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = f.default_factory()
        else:
            found[f.name] = None
    return found


def detail_document(view: ReleaseView) -> dict[str, Any]:
    """The API's release detail (``GET /api/v1/releases/{id}``) as JSON data, without
    pydantic: what ``ReleaseDetail.of(view).model_dump(mode="json")`` gives, field for
    field and in the same order (a test compares the two on releases with gates, failures
    and rollbacks). ``release show --json`` prints it; the model stays the API's and its
    schema's."""
    steps = []
    for s in view.steps:
        own: dict[str, Any] = {"id": s.id, "phase": s.phase, "title": s.title, "action": s.action}
        own |= {"needs": list(s.needs), "status": s.status}
        step = {name: own[name] for name in STEP_FIELDS}
        if s.record is None:
            step |= api_value(_step_try_defaults())
        else:
            step |= api_record(s.record, STEP_TRY_HIDDEN)
        steps.append(step)
    return {
        "release": api_record(view.release, RELEASE_HIDDEN),
        "steps": steps,
        "gates": [api_record(g) for g in view.gates],
        "events": [api_record(e, EVENT_HIDDEN) for e in view.events],
        "notifications": [api_record(n) for n in view.notifications],
        "incidents": [api_record(i) for i in view.incidents],
        "decisions": [api_record(d) for d in view.decisions],
        "engine": api_record(view.engine) if view.engine else None,
    }
