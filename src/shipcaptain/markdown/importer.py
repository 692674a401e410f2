"""Markdown runbook -> runbook data (the same dict a runbook YAML holds), the line in the
Markdown of every field, and the items the importer could not map.

Headings become phases, list items and table rows steps (in order, each needing the one
before), commands shell steps or their native action (``recognisers``), fenced ``sql``
blocks SQL checks, judgement calls checklist gates owned by the role the text names, and
the roles, SLA, communication-template and rollback sections their parts of the runbook.
``<!-- shipcaptain: id=... needs=... owner=... timeout=... action=... -->`` before or
inside an item sets those fields of its step. Nothing is dropped: what could not be mapped
becomes a checklist step and is listed in ``unmapped``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML

from shipcaptain.markdown.parse import Block, Section, parse_markdown
from shipcaptain.markdown.recognisers import (
    SHELL_LANGUAGES,
    SQL_ACTION,
    is_command,
    is_url,
    native_or_shell,
    strip_prompt,
    wait_duration,
)

DocPath = tuple[str | int, ...]

_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_-]*)>")
#: Placeholders of message templates that the release already knows.
_KNOWN_VALUES = {"reason": "release.reason", "name": "release.started_by"}
_JUDGEMENT = re.compile(
    r"\b(confirm|verify|ensure|check|validate|review|announce|sign[- ]?off|approve|make sure|"
    r"monitor|watch|trigger|notify|inform|post)\b",
    re.I,
)
_SIGN_OFF = re.compile(r"\b(signs?[- ]?off|approv\w*)\b", re.I)
_DURATION = r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b"


@dataclass(frozen=True)
class Unmapped:
    line: int
    text: str
    why: str


@dataclass
class ImportResult:
    data: dict[str, Any]
    lines: dict[DocPath, int]
    unmapped: list[Unmapped] = field(default_factory=list)

    def yaml_text(self) -> str:
        return dump_yaml(self.data)


def dump_yaml(data: dict[str, Any]) -> str:
    import io

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def slug(text: str, sep: str = "_", words_max: int = 6) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:words_max]
    ident = sep.join(words)[:48].strip(sep) or "step"
    return ident if ident[0].isalpha() else "s" + sep + ident


def duration(amount: str, unit: str) -> str:
    return amount + unit[0].lower()


class _Importer:
    def __init__(self, file: str, installed: Collection[str]) -> None:
        self.file = file
        self.installed = installed
        self.roles: dict[str, dict[str, Any]] = {}
        self.role_lines: dict[str, int] = {}
        self.params: dict[str, dict[str, Any]] = {}
        self.ids: set[str] = set()
        self.unmapped: list[Unmapped] = []
        self.channel: str | None = None

    # ---- text helpers ----

    def templated(self, text: str, *, message: bool = False) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if message and name.lower() in _KNOWN_VALUES:
                return "{{ " + _KNOWN_VALUES[name.lower()] + " }}"
            ident = slug(name)
            if ident not in self.params:
                self.params[ident] = {"description": f"<{name}> in the Markdown runbook"}
                if not message:
                    self.params[ident]["required"] = True
                else:
                    self.params[ident]["default"] = ""
            elif not message:
                self.params[ident].pop("default", None)
                self.params[ident]["required"] = True
            return "{{ " + ident + " }}"

        return _PLACEHOLDER.sub(sub, text)

    def new_id(self, wanted: str) -> str:
        base = slug(wanted)
        ident, n = base, 2
        while ident in self.ids:
            ident, n = f"{base}_{n}", n + 1
        self.ids.add(ident)
        return ident

    def role_named(self, text: str) -> str | None:
        low = text.lower()
        for ident, role in self.roles.items():
            title = str(role["title"]).lower()
            for form in {title, title.rstrip("s"), ident.replace("_", " ")}:
                if form and re.search(r"\b" + re.escape(form) + r"s?\b", low):
                    return ident
        return None

    # ---- steps ----

    def step(
        self, title: str, line: int, action: str, params: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        step: dict[str, Any] = {"id": "", "title": title[:120], "action": action, "with": params}
        step.update({k: v for k, v in extra.items() if v})
        step["source"] = {"file": self.file, "line": line}
        return step

    def judgement(self, text: str, line: int, *, mapped: bool = True) -> dict[str, Any]:
        role = self.role_named(text)
        plain = text.replace("`", "")
        if _SIGN_OFF.search(text) and role:
            return self.step(
                plain, line, "approval", {"prompt": plain, "roles": [role]}, owner=role
            )
        params: dict[str, Any] = {"item": self.templated(plain)}
        if role:
            params["confirm_by"] = role
        if not mapped:
            self.unmapped.append(Unmapped(line, plain, "no command or known instruction"))
        return self.step(plain, line, "checklist", params, owner=role)

    def command_step(
        self, title: str, command: str, line: int, owner: str | None
    ) -> dict[str, Any]:
        command = self.templated(strip_prompt(command.strip()))
        action, params, note = native_or_shell(command, self.installed)
        return self.step(
            title or command, line, action, params, owner=owner, description=note or ""
        )

    def fence_steps(
        self, title: str, fence: Block, owner: str | None, *, split: bool = True
    ) -> list[dict[str, Any]]:
        if fence.info == "sql":
            query = fence.content.strip()
            quoted = query.replace("'", "'\\''")
            command = f"psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -c '{quoted}'"
            note = f"maps to native action {SQL_ACTION} (query)"
            return [
                self.step(
                    title or "SQL check",
                    fence.line,
                    "shell",
                    {"command": command},
                    owner=owner,
                    description=note,
                )
            ]
        if fence.info not in SHELL_LANGUAGES:
            self.unmapped.append(
                Unmapped(fence.line, f"```{fence.info} block", "not a shell or sql block")
            )
            return [self.judgement(f"{title}: {fence.content.strip()}", fence.line, mapped=True)]
        lines = [
            ln for ln in fence.content.splitlines() if ln.strip() and not ln.strip().startswith("#")
        ]
        if split and len(lines) > 1 and all(native_or_shell(ln, ())[2] for ln in lines):
            return [
                self.command_step(
                    f"{title}: {strip_prompt(ln.strip())}" if title else "",
                    ln,
                    fence.line + 1 + k,
                    owner,
                )
                for k, ln in enumerate(fence.content.splitlines())
                if ln in lines
            ]
        return [
            self.command_step(
                title, "\n".join(lines) if lines else fence.content, fence.line + 1, owner
            )
        ]

    def item_steps(
        self, item: Block, prefix: str = ""
    ) -> list[tuple[dict[str, Any], dict[str, str] | None]]:
        """Steps of one list item; nested items and blocks become steps of their own."""
        note = item.annotation
        children = [c for c in item.children if c.kind != "comment"]
        for c in item.children:
            if c.kind == "comment" and note is None:
                note = c.annotation
        title = _title(item)
        owner = self.role_named(item.text)
        out: list[tuple[dict[str, Any], dict[str, str] | None]] = []
        fences = [c for c in children if c.kind == "fence"]
        subitems = [c for c in children if c.kind == "item"]
        if note and "action" in note and fences and fences[0].info == "yaml":
            params = YAML(typ="safe").load(fences[0].content) or {}
            step = self.step(
                title, item.line, note["action"], params, owner=owner, description=_after_lead(item)
            )
            return [(step, note)]
        commands = [c for c in item.codes if is_command(c)]
        if fences:
            for fence in fences:
                out += [
                    (s, None)
                    for s in self.fence_steps(
                        title, fence, owner, split=not (note and "id" in note)
                    )
                ]
        elif commands:
            for k, command in enumerate(commands):
                t = title if len(commands) == 1 else f"{title}: {command}"
                out.append((self.command_step(t, command, item.line, owner), None))
        elif urls := [c for c in item.codes if is_url(c)]:
            status = next((int(c) for c in item.codes if re.fullmatch(r"[1-5]\d\d", c)), 200)
            out.append(
                (
                    self.step(
                        title,
                        item.line,
                        "http",
                        {"url": self.templated(urls[0]), "expect_status": status},
                        owner=owner,
                    ),
                    None,
                )
            )
        elif (wait := wait_duration(item.text)) is not None:
            out.append(
                (
                    self.step(
                        title,
                        item.line,
                        "wait",
                        {"duration": wait, "reason": item.text.replace("`", "")},
                    ),
                    None,
                )
            )
        elif not subitems or item.checked is not None:
            out.append(
                (
                    self.judgement(
                        item.text,
                        item.line,
                        mapped=bool(_JUDGEMENT.search(item.text)) or item.checked is not None,
                    ),
                    None,
                )
            )
        for sub in subitems:
            out += self.item_steps(sub, prefix=title)
        for other in children:
            if other.kind in ("paragraph", "table"):
                out += [(s, None) for s in self.block_steps(other)]
        if out:
            first, _ = out[0]
            out[0] = (first, note)
            rest = _after_lead(item)
            if rest and not item.codes and not first.get("description"):
                first["description"] = rest
        if prefix:
            for s, _n in out:
                s.setdefault("description", "")
                s["description"] = (
                    (f"{prefix}. " + s["description"]).strip().rstrip(".") + "."
                    if not s["description"]
                    else f"{prefix}. {s['description']}"
                )
        return out

    def block_steps(self, block: Block) -> list[dict[str, Any]]:
        if block.kind == "fence":
            return self.fence_steps("", block, None)
        if block.kind == "table":
            return self.table_steps(block)
        if block.kind == "paragraph":
            if (wait := wait_duration(block.text)) is not None:
                return [
                    self.step(
                        block.text.replace("`", ""),
                        block.line,
                        "wait",
                        {"duration": wait, "reason": block.text.replace("`", "")},
                    )
                ]
            commands = [c for c in block.codes if is_command(c)]
            if commands:
                return [
                    self.command_step(_title(block), c, block.line, self.role_named(block.text))
                    for c in commands
                ]
            return [self.judgement(block.text, block.line, mapped=False)]
        return []

    def table_steps(self, table: Block) -> list[dict[str, Any]]:
        head = table.header
        col = {
            name: _column(head, words)
            for name, words in {
                "title": ("step", "task", "action", "what", "description", "item"),
                "command": ("command", "cmd", "run", "script"),
                "owner": ("owner", "role", "who"),
            }.items()
        }
        steps: list[dict[str, Any]] = []
        for line, cells in table.rows:

            def cell(name: str) -> str:
                index = col[name]
                return cells[index].strip() if index is not None and index < len(cells) else ""

            title = cell("title").replace("`", "") or " ".join(cells).replace("`", "")
            command = cell("command").strip("`")
            owner = self.role_named(cell("owner")) if cell("owner") else self.role_named(title)
            if command:
                steps.append(self.command_step(title, command, line, owner))
            else:
                row = Block("item", line, text=" — ".join(c for c in cells if c))
                inner = [s for s, _ in self.item_steps(row)]
                steps.extend(inner)
        return steps


def _after_lead(item: Block) -> str:
    """ "**Title** — more words": the more words."""
    if not item.lead or not item.text.startswith(item.lead):
        return ""
    return item.text[len(item.lead) :].lstrip(" —:-").strip()


def _column(header: list[str], words: tuple[str, ...]) -> int | None:
    for word in words:
        for k, name in enumerate(header):
            if word in name:
                return k
    return None


def _title(block: Block) -> str:
    if block.lead:
        return block.lead.rstrip(":").strip()
    text = block.text
    if block.codes and ":" in text.split("`")[0]:
        text = text.split("`")[0].rsplit(":", 1)[0]
    text = re.sub(r"`[^`]*`", lambda m: m.group(0)[1:-1] if len(m.group(0)) < 40 else "", text)
    return re.sub(r"\s+", " ", text).strip(" :.") or (block.codes[0] if block.codes else "step")


def _walk(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        out.append(block)
        out.extend(_walk(block.children))
    return out


def _is_group(block: Block) -> bool:
    """A list item that only names a group of sub-items (no command, no checkbox)."""
    return (
        block.kind == "item"
        and block.checked is None
        and any(c.kind == "item" for c in block.children)
        and not any(is_command(c) or is_url(c) for c in block.codes)
        and not any(c.kind == "fence" for c in block.children)
    )


def _kind(section: Section) -> str:
    title = section.title.lower()
    for kind, pattern in (
        ("roles", r"\brole|responsib"),
        ("slas", r"\bslas?\b|service level"),
        ("comms", r"communicat|template|\bcomms\b|announcement"),
        ("rollback", r"roll ?back|revert"),
        ("parameters", r"^parameters$"),
    ):
        if re.search(pattern, title):
            return kind
    return "phase"


def _items(blocks: list[Block]) -> list[Block]:
    """Top-level blocks with lists opened into their items."""
    out: list[Block] = []
    for block in blocks:
        if block.kind == "item" and block.text == "\x00list":
            out.extend(block.children)
        else:
            out.append(block)
    return out


_NOTE_FIELDS = ("owner", "timeout", "on_failure", "title")


def _apply(
    step: dict[str, Any], note: dict[str, str] | None, previous: str | None, imp: _Importer
) -> None:
    note = note or {}
    step["id"] = note["id"] if "id" in note else imp.new_id(step["title"] or step["action"])
    imp.ids.add(step["id"])
    if "needs" in note:
        step["needs"] = [n for n in re.split(r"[,\s]+", note["needs"]) if n]
    elif previous:
        step["needs"] = [previous]
    for key in _NOTE_FIELDS:
        if key in note:
            step[key] = note[key]
    ordered = {
        k: step[k]
        for k in (
            "id",
            "title",
            "description",
            "action",
            "with",
            "needs",
            "owner",
            "timeout",
            "on_failure",
            "source",
        )
        if step.get(k) not in (None, "")
    }
    step.clear()
    step.update(ordered)


def import_markdown(text: str, file: str, installed: Collection[str] = ()) -> ImportResult:
    """Import a Markdown runbook. ``installed``: action types available (native mappings
    are used only for those)."""
    outline = parse_markdown(text)
    imp = _Importer(file, installed)
    lines: dict[DocPath, int] = {(): outline.title_line}
    data: dict[str, Any] = {"apiVersion": "shipcaptain/v1"}
    name = slug(outline.title or file.rsplit("/", 1)[-1].rsplit(".", 1)[0], "-")
    data["name"] = name
    for block in outline.intro:
        if block.kind == "comment" and block.annotation and "name" in block.annotation:
            data["name"] = block.annotation["name"]
    if outline.title:
        data["title"] = outline.title
    intro = " ".join(b.text for b in outline.intro if b.kind == "paragraph")
    if intro:
        data["description"] = intro.replace("**", "")
    for block in _walk(outline.intro + [b for s in outline.sections for b in s.blocks]):
        for code in block.codes:
            if imp.channel is None and re.fullmatch(r"#[\w-]+", code):
                imp.channel = code
    # roles first: steps name them
    for section in outline.sections:
        if _kind(section) == "roles":
            _roles(section, imp)
    phases: list[dict[str, Any]] = []
    rollback: list[dict[str, Any]] = []
    slas: dict[str, Any] = {}
    templates: dict[str, str] = {}
    phase_ids: set[str] = set()

    def add_phase(
        title: str, line: int, steps: list[dict[str, Any]], note: dict[str, str] | None
    ) -> None:
        if not steps:
            return
        ident = base = (note or {}).get("phase") or slug(title)
        n = 2
        while ident in phase_ids:
            ident, n = f"{base}_{n}", n + 1
        phase_ids.add(ident)
        index = len(phases)
        lines[("phases", index)] = line
        for j, step in enumerate(steps):
            lines[("phases", index, "steps", j)] = step["source"]["line"]
        phase: dict[str, Any] = {"id": ident, "title": title}
        if note and "after" in note:
            phase["after"] = [a for a in note["after"].split(",") if a]
        phases.append({**phase, "steps": steps})

    for section in outline.sections:
        kind = _kind(section)
        if kind in ("phase", "rollback"):
            steps: list[dict[str, Any]] = []
            note: dict[str, str] | None = None
            previous: str | None = None
            section_note: dict[str, str] | None = None
            for block in _items(section.blocks):
                if block.kind == "comment":
                    if block.annotation and "phase" in block.annotation:
                        section_note = block.annotation
                    else:
                        note = block.annotation
                    continue
                if kind == "phase" and _is_group(block):
                    # "1. **Tag and build**" with sub-items: a phase of its own
                    add_phase(section.title, section.line, steps, section_note)
                    steps, previous = [], None
                    group: list[dict[str, Any]] = []
                    for step, own in [
                        x
                        for sub in block.children
                        if sub.kind == "item"
                        for x in imp.item_steps(sub)
                    ]:
                        _apply(step, own, previous, imp)
                        previous = step["id"]
                        group.append(step)
                    add_phase(_title(block), block.line, group, note or block.annotation)
                    previous, note = None, None
                    continue
                made = (
                    imp.item_steps(block)
                    if block.kind == "item"
                    else [(s, None) for s in imp.block_steps(block)]
                )
                for k, (step, own) in enumerate(made):
                    _apply(step, own or (note if k == 0 else None), previous, imp)
                    previous = step["id"]
                    steps.append(step)
                note = None
            if kind == "rollback":
                for step in steps:
                    lines[("rollback", len(rollback))] = step["source"]["line"]
                    rollback.append(step)
                continue
            add_phase(section.title, section.line, steps, section_note)
        elif kind == "slas":
            for block in _items(section.blocks):
                sla = _sla(block)
                if sla is None:
                    imp.unmapped.append(
                        Unmapped(block.line, block.text, "not an SLA (acknowledge/mitigate times)")
                    )
                    continue
                key, value = sla
                slas[key] = value
                lines[("slas", key)] = block.line
        elif kind == "comms":
            for block in _items(section.blocks):
                if block.kind == "item" and block.lead:
                    key = slug(block.lead.rstrip(":"))
                    body = block.text[len(block.lead) :].lstrip(":* ").strip().strip('"“”').strip()
                    templates[key] = imp.templated(body, message=True)
                    lines[("comms", "templates", key)] = block.line
                elif block.kind != "comment" and not any(c.startswith("#") for c in block.codes):
                    imp.unmapped.append(
                        Unmapped(block.line, block.text, "not a '**Name:** text' template")
                    )
        elif kind == "parameters":
            for block in _items(section.blocks):
                if block.kind == "item" and block.lead:
                    key = slug(block.lead.rstrip(":"))
                    desc = block.text[len(block.lead) :].lstrip(":* ").strip()
                    required = desc.startswith("(required)")
                    desc = desc.removeprefix("(required)").strip()
                    imp.params[key] = _parameter(desc, required, block.annotation or {})
    if imp.roles:
        data["roles"] = imp.roles
        for ident, line in imp.role_lines.items():
            lines[("roles", ident)] = line
    if imp.params:
        data["parameters"] = imp.params
    data["phases"] = phases
    if rollback:
        data["rollback"] = rollback
    if slas:
        data["slas"] = slas
    comms: dict[str, Any] = {}
    if imp.channel:
        comms["channel"] = imp.channel
    if templates:
        comms["templates"] = templates
    if comms:
        data["comms"] = comms
    return ImportResult(data, lines, imp.unmapped)


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


def _roles(section: Section, imp: _Importer) -> None:
    for block in _items(section.blocks):
        if block.kind == "table" and block.header:
            for line, cells in block.rows:
                title = cells[0].replace("*", "").strip()
                rest = [c for c in cells[1:] if c]
                _add_role(imp, title, "; ".join(rest), line)
        elif block.kind == "item":
            title = block.lead.rstrip(":") if block.lead else block.text.split(":", 1)[0]
            rest = (
                block.text[len(block.lead) :].lstrip(":* ")
                if block.lead
                else block.text.partition(":")[2]
            )
            _add_role(imp, title.strip(), rest.strip(), block.line, block.annotation or {})


def _add_role(
    imp: _Importer, title: str, text: str, line: int, note: dict[str, str] | None = None
) -> None:
    note = note or {}
    ident = note.get("id") or slug(title)
    parts = [p.strip().rstrip(".") for p in re.split(r"[;,](?![^(]*\))", text) if p.strip()]
    role: dict[str, Any] = {"title": title}
    if note.get("members"):
        role["members"] = note["members"].split(",")
    if parts:
        role["responsibilities"] = parts
    imp.roles[ident] = role
    imp.role_lines[ident] = line


def _sla(block: Block) -> tuple[str, dict[str, Any]] | None:
    if block.kind != "item":
        return None
    lead = block.lead.rstrip(":") if block.lead else block.text.split(":", 1)[0]
    match = re.match(r"\s*([\w-]+)\s*(?:\((.*)\))?", lead)
    text = block.text
    ack = re.search(r"acknowledg\w*[^0-9]*?" + _DURATION, text, re.I)
    mit = re.search(r"(?:mitigat|rollback|resol)\w*[^0-9]*?" + _DURATION, text, re.I)
    if match is None or ack is None or mit is None:
        return None
    value: dict[str, Any] = {
        "acknowledge": duration(ack.group(1), ack.group(2)),
        "mitigate": duration(mit.group(1), mit.group(2)),
    }
    if match.group(2):
        value = {"description": match.group(2).strip(), **value}
    return match.group(1), value
