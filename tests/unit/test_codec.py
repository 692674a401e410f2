"""One record definition: the decoder and the serializer every layer shares.

The store's rows (SQLite's text, PostgreSQL's values), the store's query parameters and the
API's answers all decode into the same record with :func:`shipcaptain.codec.decode`; the
records and the codec import nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from helpers.records import AT, RECORDS
from shipcaptain.codec import decode, plain, release_dict
from shipcaptain.records import (
    DecisionRecord,
    EngineHealth,
    EventRecord,
    Person,
    ReleaseRecord,
)
from shipcaptain.store import rows

COLUMNS = {DecisionRecord: rows.DECISION_COLUMNS}


def _name(record: Any) -> str:
    return type(record).__name__


@pytest.mark.parametrize("record", RECORDS, ids=_name)
def test_a_record_comes_back_from_its_query_parameters(record: Any) -> None:
    """What the store writes (SQLite keeps it as it is: text, 0/1) decodes to the record."""
    params = rows.params(record, columns=COLUMNS.get(type(record)))
    if isinstance(record, Person):
        params = rows.person_params(record)
        assert (params["admin"], params["active"]) == (1, 0)  # INTEGER columns
    assert all(isinstance(v, str | int | None) for v in params.values()), params
    assert decode(type(record), params, COLUMNS.get(type(record))) == record


@pytest.mark.parametrize("record", RECORDS, ids=_name)
def test_a_record_comes_back_from_postgresql_values(record: Any) -> None:
    """PostgreSQL gives timestamptz as datetimes (in the session's zone) and jsonb as
    Python values: the same record."""
    columns = COLUMNS.get(type(record)) or {}
    zone = timezone(timedelta(hours=-5))
    row = {
        columns.get(k, k): (v.astimezone(zone) if isinstance(v, datetime) else v)
        for k, v in plain(record).items()
    }
    decoded = decode(type(record), row, columns)
    assert decoded == record
    assert all(
        v.tzinfo is UTC for v in dataclasses.asdict(decoded).values() if isinstance(v, datetime)
    )


@pytest.mark.parametrize("record", RECORDS, ids=_name)
def test_a_record_comes_back_from_its_json(record: Any) -> None:
    """What --json prints and the API answers (times as ISO text, with Z or +00:00)."""
    text = json.dumps(plain(record), default=str)
    assert decode(type(record), json.loads(text)) == record
    zulu = {
        k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
        for k, v in plain(record).items()
    }
    assert decode(type(record), json.loads(json.dumps(zulu))) == record


@pytest.mark.parametrize("beat", [AT, None], ids=["beat", "no-beat"])
def test_the_engine_health_comes_back_from_its_json(beat: datetime | None) -> None:
    """Not a row of the store: the release view's ``engine``, as `release show --json`
    prints it and the remote client decodes the API's answer."""
    health = EngineHealth("stopped", "w1" if beat else None, beat, ["w2"], "nobody runs it")
    text = json.dumps(plain(health), default=str)
    assert decode(EngineHealth, json.loads(text)) == health


def test_the_api_model_of_the_engine_health_is_made_from_the_record() -> None:
    from shipcaptain.web import schemas

    model = schemas.EngineHealth.model_fields
    assert list(model) == [f.name for f in dataclasses.fields(EngineHealth)]
    assert model["state"].description == dataclasses.fields(EngineHealth)[0].metadata["doc"]


def test_decode_keeps_defaults_ignores_extras_and_takes_given_fields() -> None:
    release = RECORDS[0]
    answer = {**release_dict(release), "something_new": 1}
    decoded = decode(ReleaseRecord, answer, runbook_text="")
    assert decoded == dataclasses.replace(release, runbook_text="")
    event = decode(EventRecord, {k: v for k, v in plain(RECORDS[4]).items() if k != "mac"})
    assert event.mac is None


def test_json_null_in_a_container_column_is_the_empty_container() -> None:
    """Older rows hold null for a decision's evidence or a person's surfaces."""
    decision = decode(DecisionRecord, {**plain(RECORDS[3]), "evidence": None})
    assert decision.evidence == {}
    person = decode(Person, {"name": "bob", "roles": "null", "surfaces": None})
    assert (person.roles, person.surfaces) == ({}, ())


def test_a_status_the_record_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown release status 'exploded'"):
        decode(ReleaseRecord, {**plain(RECORDS[0]), "status": "exploded"})


def test_the_records_and_the_codec_import_only_the_standard_library() -> None:
    """Read-only commands decode with them: they must cost nothing to import."""
    code = (
        "import sys; before = set(sys.modules); import shipcaptain.codec, shipcaptain.records; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert loaded - set(sys.stdlib_module_names) == {"shipcaptain"}
