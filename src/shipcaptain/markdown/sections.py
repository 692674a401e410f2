"""The non-step sections of a Markdown runbook: roles, parameters, SLAs and message
templates. Each reader takes the section's blocks and returns runbook data plus the line
of each entry; what it cannot read is returned as unmapped."""

from __future__ import annotations

import re
from typing import Any, Literal

from shipcaptain.markdown.parse import Block, Section
from shipcaptain.markdown.steps import StepMaker, Unmapped, slug

SectionKind = Literal["roles", "slas", "comms", "rollback", "parameters", "phase"]

_KINDS: tuple[tuple[SectionKind, str], ...] = (
    ("roles", r"\brole|responsib"),
    ("slas", r"\bslas?\b|service level"),
    ("comms", r"communicat|template|\bcomms\b|announcement"),
    ("rollback", r"roll ?back|revert"),
    ("parameters", r"^parameters$"),
)
_DURATION = r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b"

Lined = dict[str, int]


def section_kind(section: Section) -> SectionKind:
    title = section.title.lower()
    for kind, pattern in _KINDS:
        if re.search(pattern, title):
            return kind
    return "phase"


def opened(blocks: list[Block]) -> list[Block]:
    """Top-level blocks with lists opened into their items."""
    out: list[Block] = []
    for block in blocks:
        out.extend(block.children if block.kind == "list" else [block])
    return out


def read_roles(section: Section, maker: StepMaker) -> Lined:
    """'- **Release Captain:** owns ...; coordinates ...' or a table whose first column
    names the role. ``<!-- shipcaptain: id=... members=a,b -->`` sets id and members."""
    lines: Lined = {}
    for block in opened(section.blocks):
        if block.kind == "table":
            for line, cells in block.rows:
                title = cells[0].replace("*", "").strip()
                lines[_add_role(maker, title, "; ".join(c for c in cells[1:] if c), {})] = line
        elif block.kind == "item":
            if block.lead:
                title, rest = block.lead.rstrip(":"), block.text[len(block.lead) :]
            else:
                title, _, rest = block.text.partition(":")
            ident = _add_role(maker, title.strip(), rest.lstrip(":* "), block.annotation or {})
            lines[ident] = block.line
    return lines


def _add_role(maker: StepMaker, title: str, text: str, note: dict[str, str]) -> str:
    ident = note.get("id") or slug(title)
    parts = [p.strip().rstrip(".") for p in re.split(r"[;,](?![^(]*\))", text) if p.strip()]
    role: dict[str, Any] = {"title": title}
    if note.get("members"):
        role["members"] = note["members"].split(",")
    if parts:
        role["responsibilities"] = parts
    maker.roles[ident] = role
    return ident


def read_parameters(section: Section, maker: StepMaker) -> Lined:
    """'- **version:** (required) description' with type/default/choices/pattern in an
    annotation (what ``shipcaptain export`` writes)."""
    lines: Lined = {}
    for block in opened(section.blocks):
        if block.kind != "item" or not block.lead:
            continue
        key = slug(block.lead.rstrip(":"))
        desc = block.text[len(block.lead) :].lstrip(":* ").strip()
        required = desc.startswith("(required)")
        desc = desc.removeprefix("(required)").strip()
        maker.params[key] = _parameter(desc, required, block.annotation or {})
        lines[key] = block.line
    return lines


def _parameter(desc: str, required: bool, note: dict[str, str]) -> dict[str, Any]:
    param: dict[str, Any] = {"description": desc}
    kind = note.get("type", "string")
    if kind != "string":
        param["type"] = kind

    def typed(value: str) -> Any:
        if kind == "integer" and re.fullmatch(r"-?\d+", value):
            return int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value

    if required:
        param["required"] = True
    if "default" in note:
        param["default"] = typed(note["default"])
    if note.get("choices"):
        param["choices"] = [typed(c) for c in note["choices"].split(",")]
    if "pattern" in note:
        param["pattern"] = note["pattern"]
    return param


def read_slas(section: Section, unmapped: list[Unmapped]) -> tuple[dict[str, Any], Lined]:
    """'- **P1 (outage):** acknowledge in ≤5 minutes, mitigation in ≤30 minutes.'"""
    slas: dict[str, Any] = {}
    lines: Lined = {}
    for block in opened(section.blocks):
        if block.kind == "comment":
            continue
        found = _sla(block)
        if found is None:
            why = "not an SLA (acknowledge and mitigate times)"
            unmapped.append(Unmapped(block.line, block.text, why))
            continue
        key, value = found
        slas[key] = value
        lines[key] = block.line
    return slas, lines


def _sla(block: Block) -> tuple[str, dict[str, Any]] | None:
    if block.kind != "item":
        return None
    lead = block.lead.rstrip(":") if block.lead else block.text.split(":", 1)[0]
    name = re.match(r"\s*([\w-]+)\s*(?:\((.*)\))?", lead)
    ack = re.search(r"acknowledg\w*[^0-9]*?" + _DURATION, block.text, re.I)
    mit = re.search(r"(?:mitigat|rollback|resol)\w*[^0-9]*?" + _DURATION, block.text, re.I)
    if name is None or ack is None or mit is None:
        return None
    value: dict[str, Any] = {}
    if name.group(2):
        value["description"] = name.group(2).strip()
    value["acknowledge"] = ack.group(1) + ack.group(2)[0].lower()
    value["mitigate"] = mit.group(1) + mit.group(2)[0].lower()
    return name.group(1), value


def read_templates(section: Section, maker: StepMaker) -> tuple[dict[str, str], Lined]:
    """'- **Start:** "Deploying v<version> ..."' -> templates['start']."""
    templates: dict[str, str] = {}
    lines: Lined = {}
    for block in opened(section.blocks):
        if block.kind == "item" and block.lead:
            key = slug(block.lead.rstrip(":"))
            body = block.text[len(block.lead) :].lstrip(":* ").strip().strip('"“”').strip()
            shown = [c for c in block.children if c.kind == "fence"]
            if not body and shown:  # a message of several lines, in a block
                body = shown[0].content.rstrip("\n")
            templates[key] = maker.templated(body, message=True)
            lines[key] = block.line
        elif block.kind not in ("comment", "list") and not any(
            c.startswith("#") for c in block.codes
        ):
            why = "not a '**Name:** text' template"
            maker.unmapped.append(Unmapped(block.line, block.text, why))
    return templates, lines
