"""The runbook JSON Schema is generated from the models, and the committed copy is current."""

from __future__ import annotations

import json
from pathlib import Path

from shipcaptain.runbook.schema import (
    SCHEMA_DIALECT,
    builtin_action_names,
    runbook_json_schema,
    schema_text,
    write_schema,
)

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "reference" / "runbook.schema.json"


def test_the_committed_schema_is_current() -> None:
    assert COMMITTED.is_file(), f"{COMMITTED} is missing"
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "docs/reference/runbook.schema.json is stale; regenerate it with "
        "`python -m shipcaptain.runbook.schema docs/reference/runbook.schema.json`"
    )


def test_the_schema_names_itself_and_uses_yaml_key_names() -> None:
    schema = runbook_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["$id"] == "urn:shipcaptain:schema:runbook:v1"
    assert schema["title"] == "shipcaptain runbook"
    assert "apiVersion" in schema["properties"]
    assert "with" in schema["$defs"]["Step"]["properties"]
    assert "with_" not in schema["$defs"]["Step"]["properties"]
    assert schema["additionalProperties"] is False


def test_action_types_are_examples_not_a_closed_list() -> None:
    schema = runbook_json_schema(["shell", "http", "acme_deploy"])
    for model in ("Step", "ActionCall"):
        action = schema["$defs"][model]["properties"]["action"]
        assert action["examples"] == ["acme_deploy", "http", "shell"]
        assert "enum" not in action
        assert action["type"] == "string"


def test_the_built_in_actions_are_documented() -> None:
    names = builtin_action_names()
    assert names == sorted(names)
    assert {"approval", "checklist", "http", "shell", "wait"} <= set(names)
    assert {"k8s_apply", "k8s_rollout", "k8s_verify_digest", "k8s_rollback"} <= set(names)
    assert {"migrate", "migration_sign_off", "verify_schema"} <= set(names)
    step_action = json.loads(schema_text())["$defs"]["Step"]["properties"]["action"]
    assert step_action["examples"] == builtin_action_names()


def test_durations_accept_numbers_and_text() -> None:
    timeout = runbook_json_schema()["$defs"]["Defaults"]["properties"]["timeout"]
    assert {"type": "number", "minimum": 0} in timeout["anyOf"]
    assert any(option.get("type") == "string" for option in timeout["anyOf"])


def test_write_schema(tmp_path: Path) -> None:
    target = write_schema(tmp_path / "reference" / "runbook.schema.json")
    assert target.read_text(encoding="utf-8") == schema_text()
    assert json.loads(target.read_text(encoding="utf-8"))["title"] == "shipcaptain runbook"
