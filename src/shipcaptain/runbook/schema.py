"""The JSON Schema of the runbook format, generated from the models (never written by hand).

Editors use it to complete and check runbook files. The committed copy in
``docs/reference/runbook.schema.json`` is regenerated with::

    python -m shipcaptain.runbook.schema docs/reference/runbook.schema.json

and a test fails when it is stale. The ``action`` fields list the built-in action types
as examples only: a plug-in's action type is just as valid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from shipcaptain.runbook.catalogue import GROUP
from shipcaptain.runbook.model import API_VERSION, Runbook

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"urn:shipcaptain:schema:runbook:{API_VERSION.rsplit('/', 1)[-1]}"


def builtin_action_names() -> list[str]:
    """Action types shipped with shipcaptain (from its entry points, without importing them)."""
    return sorted(
        ep.name for ep in entry_points(group=GROUP) if ep.value.startswith("shipcaptain.")
    )


def runbook_json_schema(action_names: Iterable[str] | None = None) -> dict[str, Any]:
    """The schema of a runbook file; ``action_names`` default to the built-in action types."""
    names = sorted(action_names) if action_names is not None else builtin_action_names()
    schema = Runbook.model_json_schema(by_alias=True, mode="validation")
    for model in ("Step", "ActionCall"):
        action = schema["$defs"][model]["properties"]["action"]
        action["examples"] = names
        action["description"] = (
            "Action type: a built-in one (" + ", ".join(names) + ") or one a plug-in provides "
            "(see `shipcaptain actions`)."
        )
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "shipcaptain runbook",
    }


def schema_text(action_names: Iterable[str] | None = None) -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(runbook_json_schema(action_names), indent=2, sort_keys=True) + "\n"


def write_schema(path: str | Path) -> Path:
    """Write the schema (built-in action types only) to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    target = sys.argv[1] if len(sys.argv) > 1 else "docs/reference/runbook.schema.json"
    print(f"wrote {write_schema(target)}")
