"""A GitHub Actions workflow file as GitHub reads it when it is dispatched.

The GitHub double refuses what GitHub refuses: a dispatch of a workflow whose ``on:`` has
no ``workflow_dispatch``, an input the workflow does not declare, a required input left
out, a choice input's value that is not among its options, a boolean input that is not
``true`` or ``false``; the messages are GitHub's. It also renders the run's title from
``run-name`` the way GitHub shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class WorkflowRefused(ValueError):
    """GitHub's 422 for a dispatch, with its message."""


@dataclass(frozen=True)
class WorkflowInput:
    name: str
    required: bool = False
    default: str | None = None
    type: str = "string"
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkflowFile:
    name: str | None
    run_name: str | None
    triggers: frozenset[str]
    inputs: dict[str, WorkflowInput]

    @property
    def dispatchable(self) -> bool:
        return "workflow_dispatch" in self.triggers

    def dispatch_inputs(self, given: dict[str, str]) -> dict[str, str]:
        """The run's inputs (defaults filled in) for a dispatch with ``given``; raises
        WorkflowRefused with GitHub's message."""
        if not self.dispatchable:
            raise WorkflowRefused("Workflow does not have 'workflow_dispatch' trigger")
        unexpected = [k for k in given if k not in self.inputs]
        if unexpected:
            listed = ",".join(f'"{k}"' for k in unexpected)
            raise WorkflowRefused(f"Unexpected inputs provided: [{listed}]")
        values: dict[str, str] = {}
        for name, spec in self.inputs.items():
            if name in given:
                value = given[name]
            elif spec.default is not None:
                value = spec.default
            elif spec.required:
                raise WorkflowRefused(f"Required input '{name}' not provided")
            else:
                continue
            if spec.type == "choice" and spec.options and value not in spec.options:
                raise WorkflowRefused(
                    f"Provided value '{value}' for input '{name}' not in the list of allowed values"
                )
            if spec.type == "boolean" and value not in ("true", "false"):
                raise WorkflowRefused(
                    f"Provided value '{value}' for input '{name}' is not a valid boolean"
                )
            values[name] = value
        return values

    def title(self, inputs: dict[str, str], *, ref: str, actor: str) -> str:
        """The run's ``display_title``: ``run-name`` with its expressions filled in, else
        the workflow's name."""
        if not self.run_name:
            return self.name or ""
        known = {
            "github.ref_name": ref,
            "github.actor": actor,
            "github.event_name": "workflow_dispatch",
        }

        def value(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            for prefix in ("inputs.", "github.event.inputs."):
                if expr.startswith(prefix):
                    return inputs.get(expr.removeprefix(prefix), "")
            return known.get(expr, "")

        return re.sub(r"\$\{\{(.*?)\}\}", value, self.run_name)


def read_workflow(text: str) -> WorkflowFile:
    """Parse a workflow file (YAML 1.2: ``on`` is a key, not a boolean); raises
    WorkflowRefused for a file GitHub could not run."""
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise WorkflowRefused(f"Invalid workflow file: {exc}") from exc
    if not isinstance(data, dict):
        raise WorkflowRefused("Invalid workflow file: not a mapping")
    on: Any = data.get("on", data.get(True))
    if isinstance(on, str):
        triggers: dict[str, Any] = {on: None}
    elif isinstance(on, list):
        triggers = {str(t): None for t in on}
    elif isinstance(on, dict):
        triggers = {str(k): v for k, v in on.items()}
    else:
        triggers = {}
    dispatch = triggers.get("workflow_dispatch") or {}
    raw_inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    inputs: dict[str, WorkflowInput] = {}
    for name, raw in (raw_inputs or {}).items():
        spec = raw if isinstance(raw, dict) else {}
        default = spec.get("default")
        inputs[str(name)] = WorkflowInput(
            name=str(name),
            required=bool(spec.get("required", False)),
            default=None
            if default is None
            else (str(default).lower() if isinstance(default, bool) else str(default)),
            type=str(spec.get("type", "string")),
            options=[str(o) for o in spec.get("options") or []],
        )
    run_name = data.get("run-name")
    name = data.get("name")
    return WorkflowFile(
        name=str(name) if name is not None else None,
        run_name=str(run_name) if run_name is not None else None,
        triggers=frozenset(triggers),
        inputs=inputs,
    )
