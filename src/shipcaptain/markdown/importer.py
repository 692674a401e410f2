"""Markdown runbook -> runbook data (the same dict a runbook YAML holds), the line in the
Markdown of every entry, the items the importer could not map, and annotation mistakes.

Headings become phases, and so does a list item that only names a group of sub-items
("1. **Tag and build**"); the steps of a phase run in order, each needing the one before.
Sections named roles, parameters, SLAs, communication templates and rollback become those
parts of the runbook (``sections``); steps come from ``steps``.

``<!-- shipcaptain: id=... needs=a,b owner=... timeout=... on_failure=... title=...
action=... -->`` before or inside an item sets those fields of its step (``needs=`` with no
value: no dependency); ``phase=... after=...`` at the top of a section names its phase;
``name=...`` under the title names the runbook.
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML

from shipcaptain.markdown.incidents import (
    IncidentRule,
    post_deploy_phases,
    refusal,
    severity_in,
    watchable,
)
from shipcaptain.markdown.parse import Block, Outline, Section, parse_markdown
from shipcaptain.markdown.recognisers import is_command, is_url
from shipcaptain.markdown.sections import (
    SectionKind,
    opened,
    read_parameters,
    read_roles,
    read_slas,
    read_templates,
    section_kind,
)
from shipcaptain.markdown.steps import (
    RUNBOOK_SETTINGS,
    SETTINGS_FENCE,
    Note,
    StepData,
    StepMaker,
    Unmapped,
    block_title,
    slug,
)
from shipcaptain.runbook.checks import check_migration_order
from shipcaptain.runbook.environment import ENVIRONMENT_LIKE
from shipcaptain.runbook.model import Runbook

DocPath = tuple[str | int, ...]

_STEP_KEYS = ("id", "needs", "owner", "timeout", "on_failure", "title", "action")
#: Every word an annotation may use, wherever it is.
ANNOTATION_KEYS = frozenset(
    [*_STEP_KEYS, "phase", "after", "name", "members", "type", "default", "choices", "pattern"]
)
_STEP_ORDER = (
    "id", "title", "description", "action", "with", "needs", "guards", "owner", "timeout",
    "retry", "on_failure", "undo", "when", "source",
)  # fmt: skip


@dataclass
class ImportResult:
    data: dict[str, Any]
    lines: dict[DocPath, int]
    unmapped: list[Unmapped] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def yaml_text(self) -> str:
        return dump_yaml(self.data)


def dump_yaml(data: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def import_markdown(text: str, file: str, installed: Collection[str] = ()) -> ImportResult:
    """Import a Markdown runbook. ``file`` is recorded in each step's source; a command with
    a native mapping uses the native action only if it is in ``installed``."""
    text, front_title = _front_matter(text)
    outline = parse_markdown(text)
    if not outline.title and front_title is not None:
        outline.title, outline.title_line = front_title
    result = _Importer(outline, file, installed).run()
    source = text.splitlines()
    for name in result.data.get("parameters", {}):
        if ("parameters", name) not in result.lines:
            spelt = re.compile(r"<" + name.replace("_", "[_-]") + r">", re.I)
            found = next((n for n, ln in enumerate(source, 1) if spelt.search(ln)), None)
            if found is not None:
                result.lines[("parameters", name)] = found
    return result


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)


def _front_matter(text: str) -> tuple[str, tuple[str, int] | None]:
    """A documentation site's front matter (``---`` YAML ``---`` at the top) is not Markdown:
    blanked (lines keep their numbers); its ``title:`` is the runbook's title when the
    document has no ``#`` heading."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, None
    title = None
    for n, line in enumerate(match.group(1).splitlines(), 2):
        found = re.match(r"title:\s*(.+?)\s*$", line)
        if found:
            title = (found.group(1).strip("\"'"), n)
    blank = "\n" * match.group(0).count("\n")
    return blank + text[match.end() :], title


class _Importer:
    def __init__(self, outline: Outline, file: str, installed: Collection[str]) -> None:
        self.outline = outline
        self.maker = StepMaker(file, installed)
        self.lines: dict[DocPath, int] = {(): outline.title_line}
        self.ids: set[str] = set()
        self.phases: list[dict[str, Any]] = []
        self.rollback: list[StepData] = []

    def run(self) -> ImportResult:
        outline, maker = self.outline, self.maker
        everything = _walk([*outline.intro, *(b for s in outline.sections for b in s.blocks)])
        self._check_annotations(everything)
        data: dict[str, Any] = {"apiVersion": "shipcaptain/v1", "name": self._name()}
        if outline.title:
            data["title"] = outline.title
        intro = " ".join(b.text for b in outline.intro if b.kind == "paragraph")
        if intro:
            data["description"] = intro
        settings = self._settings()
        kinds = [(section, _kind(section)) for section in outline.sections]
        slas = self._read_before_steps(kinds)
        for section, kind in kinds:
            if kind in ("phase", "rollback"):
                self._steps_section(section, rollback=kind == "rollback")
        templates = maker.templates
        incidents = self._incident_rules(list(slas), settings.get("incidents"))
        if incidents:
            settings["incidents"] = incidents
        self._contract_after_rollout(settings.get("guards"))
        like = [p for p in maker.params if p in ENVIRONMENT_LIKE]
        if like and "environment" not in settings:
            # the placeholder <env> is where the release goes: say so, as validate asks
            data["environment"] = "{{ " + like[0] + " }}"
            self.lines.setdefault(("environment",), self.lines.get(("parameters", like[0]), 1))
        if maker.roles:
            data["roles"] = maker.roles
        if maker.params:
            data["parameters"] = maker.params
        data["phases"] = self.phases
        if not self.phases:
            msg = "found no steps: put list items, table rows or code blocks under a ## heading"
            maker.problems.append((outline.title_line, msg))
        if self.rollback:
            data["rollback"] = self.rollback
        if slas:
            data["slas"] = slas
        channel = next(
            (c for b in everything for c in b.codes if re.fullmatch(r"#[\w-]+", c)), None
        )
        extra = settings.pop("comms", None)
        comms = {
            **({"channel": channel} if channel else {}),
            **({"templates": templates} if templates else {}),
            **(extra if isinstance(extra, dict) else {}),
        }
        if comms:
            data["comms"] = comms
        data.update(settings)
        return ImportResult(data, self.lines, maker.unmapped, maker.problems)

    def _read_before_steps(self, kinds: list[tuple[Section, SectionKind]]) -> dict[str, Any]:
        """Roles, parameters and comms templates (steps refer to them), then the SLAs
        (incident rules name their severities); returns the SLAs."""
        maker = self.maker
        for section, kind in kinds:
            if kind == "roles":
                self._note_lines(("roles",), read_roles(section, maker))
            elif kind == "parameters":
                self._note_lines(("parameters",), read_parameters(section, maker))
            elif kind == "comms":  # announce steps send these
                found_templates, lines = read_templates(section, maker)
                maker.templates.update(found_templates)
                self._note_lines(("comms", "templates"), lines)
        slas: dict[str, Any] = {}
        for section, kind in kinds:
            if kind == "slas":
                found, lines = read_slas(section, maker.unmapped)
                slas.update(found)
                self._note_lines(("slas",), lines)
        return slas

    def _incident_rules(self, slas: list[str], given: object) -> dict[str, Any]:
        """The runbook's incident rules from its "If the deployment fails, declare a P1"
        sentences; a sentence that cannot be one is a problem at its line."""
        maker, rules = self.maker, self.maker.incident_rules
        found: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        first: IncidentRule | None = None
        for rule in rules:
            severity, why = severity_in(rule, slas)
            if severity is None:
                maker.problems.append((rule.line, f"incident rule not imported: {why}"))
                continue
            if not watchable(rule):
                maker.problems.append((rule.line, refusal(rule, severity)))
                continue
            if found.get("severity", severity) != severity:
                where = f"line {first.line}" if first else "the shipcaptain block"
                msg = (
                    f"incident rule not imported: a runbook's failed post-deploy checks open "
                    f"incidents of one severity; {where} already says {found['severity']}"
                )
                maker.problems.append((rule.line, msg))
                continue
            if first is None:
                first = rule
                found.setdefault("severity", severity)
                self.lines[("incidents", "severity")] = rule.line
                owner = maker.role_named(rule.text)  # "... and page the On-Call SRE"
                if owner and "owners" not in found:
                    found["owners"] = [owner]
                    self.lines[("incidents", "owners")] = rule.line
        if first is None:
            return found
        watched = post_deploy_phases([(p["id"], p["title"]) for p in self.phases])
        if not watched:
            msg = (
                "incident rule not imported: no phase checks the release after its rollout "
                "(a post-deploy, verification, smoke or health heading); name the phase with "
                "<!-- shipcaptain: phase=post_deploy --> under its heading"
            )
            maker.problems.append((first.line, msg))
        elif watched != ["post_deploy"]:
            found.setdefault("post_deploy_phases", watched)
            self.lines[("incidents", "post_deploy_phases")] = first.line
        return found

    def _settings(self) -> dict[str, Any]:
        """The runbook settings of ``shipcaptain`` blocks under the title."""
        settings: dict[str, Any] = {}
        for block in self.outline.intro:
            if block.kind == "fence" and block.info == SETTINGS_FENCE:
                found = self.maker.settings(block, RUNBOOK_SETTINGS)
                self._note_lines((), dict.fromkeys(found, block.line))
                settings.update(found)
        return settings

    def _name(self) -> str:
        for block in self.outline.intro:
            if block.kind == "comment" and block.annotation and "name" in block.annotation:
                return block.annotation["name"]
        return slug(self.outline.title or PurePath(self.maker.file).stem, "-")

    def _note_lines(self, prefix: DocPath, lines: dict[str, int]) -> None:
        for key, line in lines.items():
            self.lines[(*prefix, key)] = line

    def _check_annotations(self, blocks: list[Block]) -> None:
        for block in blocks:
            note = block.annotation or {}
            unknown = sorted(set(note) - ANNOTATION_KEYS - {"?"})
            words = [*unknown, *([note["?"]] if "?" in note else [])]
            if words:
                known = ", ".join(sorted(ANNOTATION_KEYS))
                msg = f"shipcaptain annotation: unknown {', '.join(words)!s}; known: {known}"
                self.maker.problems.append((block.line, msg))

    # ---- phases and rollback ----

    def _steps_section(self, section: Section, *, rollback: bool) -> None:
        steps: list[StepData] = []
        pending: Note | None = None  # an annotation on a line of its own, for the next step
        phase_note: Note | None = None
        for block in opened(section.blocks):
            if block.kind == "comment":
                if block.annotation and "phase" in block.annotation:
                    phase_note = block.annotation
                else:
                    pending = block.annotation
                continue
            if not rollback and _is_group(block):
                self._add_phase(section.title, section.line, steps, phase_note)
                steps, phase_note = [], None
                made: list[tuple[StepData, Note | None]] = []
                for sub in block.children:  # its items, and the paragraphs between them
                    if sub.kind == "item":
                        made += self.maker.item(sub)
                    elif sub.kind in ("paragraph", "table", "fence"):
                        made += [(s, None) for s in self.maker.block(sub)]
                group = self._chain(made, None)
                self._add_phase(block_title(block), block.line, group, pending or block.annotation)
                pending = None
                continue
            if block.kind == "item":
                made = self.maker.item(block)
            else:
                made = [(s, None) for s in self.maker.block(block)]
            if made and pending is not None and made[0][1] is None:
                made[0] = (made[0][0], pending)
            pending = None
            steps += self._chain(made, steps[-1]["id"] if steps else None)
        if rollback:
            for step in steps:
                self.lines[("rollback", len(self.rollback))] = step["source"]["line"]
                self.rollback.append(step)
        else:
            self._add_phase(section.title, section.line, steps, phase_note)

    def _chain(
        self, made: list[tuple[StepData, Note | None]], previous: str | None
    ) -> list[StepData]:
        """Give each step its id and annotated fields; each needs the one before it."""
        out: list[StepData] = []
        for step, given in made:
            note = given or {}
            ident = note.get("id") or self._new_id(step["title"] or step["action"])
            self.ids.add(ident)
            step["id"] = ident
            if "needs" in note:
                step["needs"] = [n for n in re.split(r"[,\s]+", note["needs"]) if n]
            elif previous:
                step["needs"] = [previous]
            for key in ("owner", "timeout", "on_failure", "title"):
                if key in note:
                    step[key] = note[key]
            ordered = {k: step[k] for k in _STEP_ORDER if step.get(k) not in (None, "")}
            step.clear()
            step.update(ordered)
            previous = ident
            out.append(step)
        return out

    def _contract_after_rollout(self, guards: object) -> None:
        """A breaking (contract) migration written before the app rollout moves, with the
        steps after it in its phase, to a phase of its own after the last rollout phase:
        breaking migrations run only once the app pods run the new release. (Unless the
        runbook already orders them, by needs or guards.)"""
        try:
            drafted = Runbook.model_validate(
                {"name": "draft", "phases": self.phases, "guards": guards or {}}
            )
            if not check_migration_order(drafted):
                return
        except (ValidationError, ValueError):
            return  # the loader reports what is wrong with the draft
        rollouts = [i for i, p in enumerate(self.phases) if any(_is_rollout(s) for s in p["steps"])]
        if not rollouts:
            return
        lines = [self.lines[("phases", i)] for i in range(len(self.phases))]
        for i in range(rollouts[-1]):
            phase = self.phases[i]
            at = next((j for j, s in enumerate(phase["steps"]) if _is_contract(s)), None)
            if at is None:
                continue
            moved = phase["steps"][at:]
            phase["steps"] = phase["steps"][:at]
            later: dict[str, Any] = {
                "id": phase["id"] if not phase["steps"] else f"{phase['id']}_after_rollout",
                "title": f"{phase['title']} (after the rollout)",
                "description": "Moved after the application rollout by the importer: "
                "breaking migrations run only once the app pods run the new release.",
                "steps": moved,
            }
            self.phases.insert(rollouts[-1] + 1, later)
            lines.insert(rollouts[-1] + 1, moved[0]["source"]["line"])
            if not phase["steps"]:
                del self.phases[i], lines[i]
            break  # one move puts every later contract step after the rollout too
        for key in [k for k in self.lines if k and k[0] == "phases"]:
            del self.lines[key]
        for i, phase in enumerate(self.phases):
            self.lines[("phases", i)] = lines[i]
            for j, step in enumerate(phase["steps"]):
                self.lines[("phases", i, "steps", j)] = step["source"]["line"]

    def _new_id(self, wanted: str) -> str:
        base = slug(wanted)
        ident, n = base, 2
        while ident in self.ids:
            ident, n = f"{base}_{n}", n + 1
        return ident

    def _add_phase(self, title: str, line: int, steps: list[StepData], note: Note | None) -> None:
        if not steps:
            return
        taken = {p["id"] for p in self.phases}
        ident = base = (note or {}).get("phase") or slug(title)
        n = 2
        while ident in taken:
            ident, n = f"{base}_{n}", n + 1
        index = len(self.phases)
        self.lines[("phases", index)] = line
        for j, step in enumerate(steps):
            self.lines[("phases", index, "steps", j)] = step["source"]["line"]
        phase: dict[str, Any] = {"id": ident, "title": title}
        if note and "after" in note:
            phase["after"] = [a for a in note["after"].split(",") if a]
        self.phases.append({**phase, "steps": steps})


def _kind(section: Section) -> SectionKind:
    """What a section is: by its title, unless an annotation under it names its phase
    (``<!-- shipcaptain: phase=... -->``, as the export writes): then it is that phase,
    whatever its title says ("Identify repair actions (roll back, ...)")."""
    first = next((b for b in section.blocks if b.kind != "list" or b.children), None)
    if first is not None and first.kind == "comment" and "phase" in (first.annotation or {}):
        return "phase"
    return section_kind(section)


def _is_rollout(step: StepData) -> bool:
    return bool(step["action"] == "k8s_rollout")


def _is_contract(step: StepData) -> bool:
    return bool(step["action"] == "migrate" and step["with"].get("phase") == "contract")


def _walk(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        out.append(block)
        out.extend(_walk(block.children))
    return out


def _is_group(block: Block) -> bool:
    """A list item that only names a group of sub-items (no command, fence or checkbox)."""
    return (
        block.kind == "item"
        and block.checked is None
        and any(c.kind == "item" for c in block.children)
        and not any(is_command(c) or is_url(c) for c in block.codes)
        and not any(c.kind == "fence" for c in block.children)
    )
