"""A runbook as readable Markdown that ``shipcaptain import`` reads back to the same runbook.

Roles, parameters, phases with their steps (commands in ``bash`` blocks, other actions'
parameters in ``yaml`` blocks), the rollback plan, SLAs and message templates. Each step
carries a ``<!-- shipcaptain: id=... needs=... -->`` annotation so ids and order survive.
Not written (kept only in the YAML): defaults, guards, retries and per-step undo.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from shipcaptain.runbook.model import Runbook, Step


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _yaml_block(params: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(params, out)
    return out.getvalue()


def _fence(lang: str, body: str, indent: str) -> list[str]:
    ticks = "````" if "```" in body else "```"
    lines = [f"{indent}{ticks}{lang}"]
    lines += [f"{indent}{ln}" if ln else "" for ln in body.rstrip("\n").split("\n")]
    lines.append(f"{indent}{ticks}")
    return lines


def _step(number: int, step: Step) -> list[str]:
    note = [f"id={step.id}", "needs=" + ",".join(step.needs)]
    if step.owner:
        note.append(f"owner={step.owner}")
    if step.timeout is not None:
        note.append(f"timeout={format_duration(step.timeout)}")
    if step.on_failure is not None:
        note.append(f"on_failure={step.on_failure.value}")
    shell = step.action == "shell" and set(step.with_) == {"command"}
    if not shell:
        note.append(f"action={step.action}")
    head = f"{number}. **{step.title or step.id}**"
    if step.description:
        head += " — " + " ".join(step.description.split())
    head += f" <!-- shipcaptain: {' '.join(note)} -->"
    lines = [head, ""]
    if shell:
        lines += _fence("bash", str(step.with_["command"]), "   ")
    else:
        lines += _fence("yaml", _yaml_block(dict(step.with_)), "   ")
    return [*lines, ""]


def export_markdown(rb: Runbook) -> str:
    out: list[str] = [f"# {rb.title or rb.name}", "", f"<!-- shipcaptain: name={rb.name} -->", ""]
    if rb.description:
        out += [" ".join(rb.description.split()), ""]
    if rb.roles:
        out += ["## Roles & Responsibilities", ""]
        for ident, role in rb.roles.items():
            text = "; ".join(r.replace(";", ",") for r in role.responsibilities)
            note = f"id={ident}" + (f" members={','.join(role.members)}" if role.members else "")
            out.append(
                f"- **{role.title}:** {text} <!-- shipcaptain: {note} -->".replace("  ", " ")
            )
        out.append("")
    if rb.parameters:
        out += ["## Parameters", ""]
        for name, param in rb.parameters.items():
            required = "(required) " if param.required else ""
            note = [] if param.type == "string" else [f"type={param.type}"]
            if param.default is not None:
                note.append(
                    f'default="{str(param.default).lower() if isinstance(param.default, bool) else param.default}"'
                )
            if param.choices:
                note.append("choices=" + ",".join(str(c) for c in param.choices))
            if param.pattern:
                note.append(f'pattern="{param.pattern}"')
            text = f"- **{name}:** {required}{' '.join(param.description.split())}"
            out.append(text + (f" <!-- shipcaptain: {' '.join(note)} -->" if note else ""))
        out.append("")
    for phase in rb.phases:
        out += [
            f"## {phase.title or phase.id}",
            "",
            f"<!-- shipcaptain: phase={phase.id}"
            + (f" after={','.join(phase.after)}" if phase.after is not None else "")
            + " -->",
            "",
        ]
        for k, step in enumerate(phase.steps, start=1):
            out += _step(k, step)
    if rb.rollback:
        out += ["## Rollback", ""]
        for k, step in enumerate(rb.rollback, start=1):
            out += _step(k, step)
    if rb.slas:
        out += ["## SLAs", ""]
        for key, sla in rb.slas.items():
            desc = f" ({sla.description})" if sla.description else ""
            out.append(
                f"- **{key}{desc}:** acknowledge in {format_duration(sla.acknowledge)}, "
                f"mitigate in {format_duration(sla.mitigate)}."
            )
        out.append("")
    if rb.comms.templates or rb.comms.channel:
        out += ["## Communication Templates", ""]
        if rb.comms.channel:
            out += [f"Release channel: `{rb.comms.channel}`", ""]
        for key, text in rb.comms.templates.items():
            out.append(f'- **{key}:** "{" ".join(text.split())}"')
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
