"""A runbook as readable Markdown that ``shipcaptain import`` reads back to the same runbook.

Roles, parameters, phases with their steps (commands in ``bash`` blocks, other actions'
parameters in ``yaml`` blocks), the rollback plan, SLAs and message templates. Each step
carries a ``<!-- shipcaptain: id=... needs=... -->`` annotation so ids and order survive.
What has no natural Markdown form goes in ``shipcaptain`` blocks (YAML): under the title,
the runbook's defaults, guards, exclusive environments and expected duration; under a
step, its guards, retries and undo.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML

from shipcaptain.markdown.steps import SETTINGS_FENCE
from shipcaptain.runbook.model import Comms, Defaults, IncidentRules, Runbook, Step


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


#: an ``_`` that could open or close emphasis: one not between two letters or digits
#: (``DB_<ENV>_URL``, ``_<PLACEHOLDER>_``); ``feature_owners`` stays as it is
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _text(text: str) -> str:
    """Text as Markdown reads it back: ``<version>``, ``<br/>``, ``*`` and an ``_`` that
    could be emphasis escaped (not HTML, not emphasis), except inside code spans."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        p
        if p.startswith("`")
        else _EMPHASIS_UNDERSCORE.sub(r"\\_", p.replace("<", "\\<").replace("*", "\\*"))
        for p in parts
    )


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
    if step.title.endswith(":") and '"' not in step.title:  # a bold lead loses its colon
        note.append(f'title="{step.title}"')
    shell = step.action == "shell" and set(step.with_) == {"command"}
    if not shell:
        note.append(f"action={step.action}")
    head = f"{number}. **{_text(step.title or step.id)}**"
    # the item's blocks are indented as far as its text starts ("10. " is 4 wide), else
    # CommonMark ends the item before them
    indent = " " * len(f"{number}. ")
    if step.description:
        head += " — " + _text(" ".join(step.description.split()))
    head += _annotation(note)
    lines = [head, ""]
    if shell:
        lines += _fence("bash", str(step.with_["command"]), indent)
    else:
        lines += _fence("yaml", _yaml_block(dict(step.with_)), indent)
    extras = step.model_dump(
        mode="json", by_alias=True, include={"guards", "retry", "undo", "when"}, exclude_none=True
    )
    if extras.get("guards") == []:
        del extras["guards"]
    if extras:
        lines += ["", *_fence(SETTINGS_FENCE, _yaml_block(extras), indent)]
    return [*lines, ""]


def _settings(rb: Runbook) -> list[str]:
    """The runbook's settings that are not at their defaults, as a ``shipcaptain`` block."""
    data = rb.model_dump(
        mode="json",
        by_alias=True,
        include={"environment", "guards", "exclusive_environments", "rollback_validation"},
    )
    for empty in ("environment", "guards", "rollback_validation"):
        if not data[empty]:
            del data[empty]
    if data["exclusive_environments"] == ["production"]:
        del data["exclusive_environments"]
    if rb.defaults != Defaults():
        data["defaults"] = rb.defaults.model_dump(mode="json", by_alias=True)
    comms = {
        key: getattr(rb.comms, key)
        for key in ("expected_duration", "smoke_tests")
        if getattr(rb.comms, key) != getattr(Comms(), key)
    }
    if comms:
        data["comms"] = comms
    if rb.incidents != IncidentRules():
        data["incidents"] = rb.incidents.model_dump(mode="json")
    return [*_fence(SETTINGS_FENCE, _yaml_block(data), ""), ""] if data else []


def _annotation(words: list[str]) -> str:
    return f" <!-- shipcaptain: {' '.join(words)} -->" if words else ""


def _roles(rb: Runbook) -> list[str]:
    out = ["## Roles & Responsibilities", ""]
    for ident, role in rb.roles.items():
        words = [f"id={ident}"] + ([f"members={','.join(role.members)}"] if role.members else [])
        text = "; ".join(r.replace(";", ",") for r in role.responsibilities)
        out.append(f"- **{role.title}:**" + (f" {text}" if text else "") + _annotation(words))
    return [*out, ""]


def _parameters(rb: Runbook) -> list[str]:
    out = ["## Parameters", ""]
    for name, param in rb.parameters.items():
        words = [] if param.type == "string" else [f"type={param.type}"]
        if param.default is not None:
            default = param.default
            words.append(
                f'default="{str(default).lower() if isinstance(default, bool) else default}"'
            )
        if param.choices:
            words.append("choices=" + ",".join(str(c) for c in param.choices))
        if param.pattern:
            words.append(f'pattern="{param.pattern}"')
        required = "(required) " if param.required else ""
        text = f"- **{name}:** {required}{' '.join(param.description.split())}".rstrip()
        out.append(text + _annotation(words))
    return [*out, ""]


def _steps(title: str, steps: list[Step], first: list[str]) -> list[str]:
    out = [f"## {title}", "", *first]
    for k, step in enumerate(steps, start=1):
        out += _step(k, step)
    return out


def _slas(rb: Runbook) -> list[str]:
    out = ["## SLAs", ""]
    for key, sla in rb.slas.items():
        desc = f" ({sla.description})" if sla.description else ""
        out.append(
            f"- **{key}{desc}:** acknowledge in {format_duration(sla.acknowledge)}, "
            f"mitigate in {format_duration(sla.mitigate)}."
        )
    return [*out, ""]


def _comms(rb: Runbook) -> list[str]:
    out = ["## Communication Templates", ""]
    if rb.comms.channel:
        out += [f"Release channel: `{rb.comms.channel}`", ""]
    for key, text in rb.comms.templates.items():
        if "\n" in text.strip():  # a message of several lines: as it is, in a block
            out += [f"- **{key}:**", "", *_fence("text", text.strip("\n"), "  "), ""]
        else:
            out.append(f'- **{key}:** "{" ".join(text.split())}"')
    return [*out, ""]


def export_markdown(rb: Runbook) -> str:
    """The runbook as Markdown (see the module's docstring for what is left out)."""
    out: list[str] = [f"# {rb.title}", ""] if rb.title else []  # no title: no heading
    out += [_annotation([f"name={rb.name}"]).strip(), ""]
    for paragraph in rb.description.split("\n\n"):  # kept reference sections too
        if paragraph.strip():
            out += [" ".join(paragraph.split()), ""]
    out += _settings(rb)
    if rb.roles:
        out += _roles(rb)
    if rb.parameters:
        out += _parameters(rb)
    for phase in rb.phases:
        words = [f"phase={phase.id}"]
        if phase.after is not None:
            words.append("after=" + ",".join(phase.after))
        out += _steps(phase.title or phase.id, phase.steps, [_annotation(words).strip(), ""])
    if rb.rollback:
        out += _steps("Rollback", rb.rollback, [])
    if rb.slas:
        out += _slas(rb)
    if rb.comms.templates or rb.comms.channel:
        out += _comms(rb)
    return "\n".join(out).rstrip("\n") + "\n"
