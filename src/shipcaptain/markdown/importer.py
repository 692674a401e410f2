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
from pathlib import Path, PurePath
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML

from shipcaptain.markdown.incidents import (
    IncidentRule,
    incident_rule,
    post_deploy_phases,
    refusal,
    severity_in,
    watchable,
)
from shipcaptain.markdown.parse import Block, Outline, Section, parse_markdown
from shipcaptain.markdown.recognisers import is_command, is_url
from shipcaptain.markdown.sections import (
    CONDITIONAL,
    INHERITED,
    ON_FAILURE,
    Lined,
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
#: a section's condition ("If Database Issues", "(if reversible)") and its line
Condition = tuple[str, int] | None

_STEP_KEYS = ("id", "needs", "owner", "timeout", "on_failure", "title", "action")
#: Every word an annotation may use, wherever it is.
ANNOTATION_KEYS = frozenset(
    [*_STEP_KEYS, "phase", "after", "name", "members", "type", "default", "choices", "pattern"]
)
_STEP_ORDER = (
    "id", "title", "description", "action", "with", "needs", "guards", "owner", "timeout",
    "retry", "on_failure", "undo", "when", "source",
)  # fmt: skip


UNACCOUNTED = "UNACCOUNTED: nothing read this line"
#: ``[name]: https://...`` (CommonMark gives no block for it; its links use it)
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:")
_DEFINED = "link definition: the links that name it keep its target"


@dataclass
class ImportResult:
    data: dict[str, Any]
    lines: dict[DocPath, int]
    unmapped: list[Unmapped] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: (first line, last line, what those lines became), for ``import --explain``
    ledger: list[tuple[int, int, str]] = field(default_factory=list)

    def yaml_text(self) -> str:
        return dump_yaml(self.data)

    def explain(self, text: str) -> list[tuple[int, str, str]]:
        """Every non-empty line of the Markdown ``text`` with what it became: the
        narrowest entry of the ledger holding it (a refusal, when one names the line);
        ``UNACCOUNTED`` for a line nothing read, which is a bug of the importer."""
        out: list[tuple[int, str, str]] = []
        refused = {line: msg for line, msg in self.problems}
        entries = list(enumerate(self.ledger))
        for n, source in enumerate(text.splitlines(), 1):
            if not source.strip():
                continue
            if n in refused:
                out.append((n, source, f"refused: {refused[n]}"))
                continue
            holding = [(b - a, -k, what) for k, (a, b, what) in entries if a <= n <= max(a, b)]
            definition = _LINK_DEFINITION.match(source) or (
                out and out[-1][0] == n - 1 and out[-1][2] == _DEFINED and source[:1] in " \t"
            )
            if not holding and definition:
                holding = [(0, 0, _DEFINED)]
            out.append((n, source, min(holding)[2] if holding else UNACCOUNTED))
        return out


def dump_yaml(data: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def import_markdown(
    text: str, file: str, installed: Collection[str] = (), *, base: Path | None = None
) -> ImportResult:
    """Import a Markdown runbook. ``file`` is recorded in each step's source; a command with
    a native mapping uses the native action only if it is in ``installed``. ``base`` is the
    runbook's directory, where files it names (a kustomization) are read."""
    text, front_title = _front_matter(text)
    outline = parse_markdown(text)
    if not outline.title and front_title is not None:
        outline.title, outline.title_line = front_title
    result = _Importer(outline, file, installed, base).run()
    if front_title is not None or text.startswith("\n"):
        blank = len(text) - len(text.lstrip("\n"))
        if blank:
            said = "front matter: site metadata, not Markdown (its title: is the title)"
            result.ledger.insert(0, (1, blank + 1, said))
    for first, last, why in outline.skipped:
        result.ledger.insert(0, (first, last, f"ignored: {why}"))
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
    def __init__(
        self, outline: Outline, file: str, installed: Collection[str], base: Path | None
    ) -> None:
        self.outline = outline
        self.maker = StepMaker(file, installed, base=base)
        self.lines: dict[DocPath, int] = {(): outline.title_line}
        self.ids: set[str] = set()
        self.phases: list[dict[str, Any]] = []
        self.rollback: list[StepData] = []
        #: troubleshooting and reference sections, kept in the description, never run
        self.notes: list[str] = []
        #: the lines of the sections about restoring or rolling back (or in a runbook that is)
        self.restoring: set[int] = set()
        #: alternative sections ("Option A", "Option B"): line -> (parameter, value, values)
        self.choices: dict[int, tuple[str, str, list[str]]] = {}

    def run(self) -> ImportResult:
        outline, maker = self.outline, self.maker
        everything = _walk([*outline.intro, *(b for s in outline.sections for b in s.blocks)])
        self._check_annotations(everything)
        data: dict[str, Any] = {"apiVersion": "shipcaptain/v1", "name": self._name()}
        if outline.title:
            data["title"] = outline.title
        intro = [b for b in outline.intro if b.kind == "paragraph"]
        rollback_runbook = self._explain_intro()
        settings = self._settings()
        kinds = self._kinds(rollback_runbook)
        self.choices = _choices(kinds)
        slas = self._read_before_steps([(s, k) for s, k, _ in kinds])
        self._audience(intro)
        for section, kind, condition in kinds:
            heading = (section.line, max(section.end, section.line))
            self.maker.ledger.append((*heading, _heading_became(kind, condition)))
            if kind in ("phase", "rollback", "conditional"):
                self._steps_section(section, rollback=kind == "rollback", condition=condition)
            elif kind in ("troubleshooting", "reference"):
                self._keep_as_notes(section, kind)
        # paragraphs, each on one line (as the export writes them)
        described = [" ".join(p.split()) for p in [*(b.text for b in intro), *self.notes]]
        described += [" ".join(p.split()) for p in self.maker.notes]
        if any(described):
            data["description"] = "\n\n".join(p for p in described if p)
        templates = maker.templates
        incidents = self._incident_rules(list(slas), settings.get("incidents"))
        if incidents:
            settings["incidents"] = incidents
        self._contract_after_rollout(settings.get("guards"))
        self._finish_steps()
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
            maker.problems.append((outline.title_line, self._no_steps()))
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
        return ImportResult(data, self.lines, maker.unmapped, maker.problems, maker.ledger)

    def _kinds(self, rollback_runbook: bool) -> list[tuple[Section, SectionKind, Condition]]:
        """Each section's kind and condition; notes the sections about a restore or a
        rollback (a heading above them says so, or the runbook's title does)."""
        kinds = _kinds(self.outline.sections, rollback_runbook=rollback_runbook)
        stack: list[tuple[int, bool]] = []
        for section, kind, _condition in kinds:
            while stack and stack[-1][0] >= section.level:
                stack.pop()
            said = bool(_ROLLBACK_RUNBOOK.search(section.title)) or kind == "rollback"
            restoring = rollback_runbook or said or any(r for _, r in stack)
            stack.append((section.level, restoring))
            if restoring:
                self.restoring.add(section.line)
        return kinds

    def _gate_restores(self) -> None:
        """A restore from a backup (``pg_restore``, ``psql < backup``) under a restore or
        rollback heading overwrites the database: a decision comes right before it (its
        ``when`` too), never an unconditional step. One the runbook's condition already
        puts behind a decision keeps that one."""
        maker = self.maker
        restores = {id(s) for s in maker.restores}
        lists = [("phases", i, p["steps"]) for i, p in enumerate(self.phases)]
        for kind, index, steps in [*lists, ("rollback", None, self.rollback)]:
            by_id = {s["id"]: s for s in steps}
            for step in [s for s in steps if id(s) in restores]:
                before = [by_id.get(n) for n in step.get("needs", [])]
                if any(b is not None and b["action"] == "approval" for b in before):
                    continue  # a decision already comes first
                line = step["source"]["line"]
                title = f"Decide: restore from the backup ({step['title']})"
                shown = " ".join(str(step["with"].get("command", "")).split())[:160]
                stop = "the rollback" if kind == "rollback" else "the release"
                prompt = (
                    f"Restoring from a backup overwrites the database (`{shown}`): approve to "
                    f"run it; reject to stop {stop} here."
                )
                decide = maker.step(title, line, "approval", {"prompt": prompt})
                decide["id"] = self._new_id(title)
                self.ids.add(decide["id"])
                if step.get("needs"):
                    decide["needs"] = step["needs"]
                if step.get("when"):
                    decide["when"] = step["when"]
                step["needs"] = [decide["id"]]
                self._reorder(decide)
                self._reorder(step)
                steps.insert(next(k for k, s in enumerate(steps) if s is step), decide)
                said = f"restore from a backup: decision {decide['id']} (approval) first, then "
                maker.ledger.append((line, line, said + f"step {step['id']} ({step['action']})"))
            if index is None:
                for k, s in enumerate(steps):
                    self.lines[("rollback", k)] = s["source"]["line"]
            else:
                for j, s in enumerate(steps):
                    self.lines[("phases", index, "steps", j)] = s["source"]["line"]

    def _finish_steps(self) -> None:
        """What needs every step made: restores behind decisions, build hashes."""
        self._gate_restores()
        self._build_hashes()

    def _build_hashes(self) -> None:
        """Health checks that expect the new build hash: what they compare it with."""
        tagged = (s["id"] for p in self.phases for s in p["steps"] if s["action"] == "git_tag")
        self.maker.resolve_build_hashes(next(tagged, None))
        for step in self.maker.hash_checks:
            self._reorder(step)

    def _read_before_steps(self, kinds: list[tuple[Section, SectionKind]]) -> dict[str, Any]:
        """Roles, parameters and comms templates (steps refer to them), then the SLAs
        (incident rules name their severities); returns the SLAs."""
        maker = self.maker
        for section, kind in kinds:
            before = len(maker.unmapped)
            if kind == "roles":
                lines = read_roles(section, maker)
                self._note_lines(("roles",), lines)
            elif kind == "parameters":
                lines = read_parameters(section, maker)
                self._note_lines(("parameters",), lines)
            elif kind == "comms":  # announce steps send these
                found_templates, lines = read_templates(section, maker)
                maker.templates.update(found_templates)
                self._note_lines(("comms", "templates"), lines)
            else:
                continue
            self._explain_data(section, kind, lines, before)
        slas: dict[str, Any] = {}
        for section, kind in kinds:
            if kind == "slas":
                before = len(maker.unmapped)
                found, lines = read_slas(section, maker.unmapped)
                slas.update(found)
                self._note_lines(("slas",), lines)
                self._explain_data(section, kind, lines, before)
        return slas

    def _no_steps(self) -> str:
        msg = "found no steps: put list items, table rows or code blocks under a ## heading"
        if self.notes:
            msg += (
                " (its sections are all reference or troubleshooting, which are never run: "
                "Meaning, Impact, Diagnosis ...)"
            )
        return msg

    def _explain_intro(self) -> bool:
        """Explain the title and what is under it; True for a rollback/restore runbook."""
        outline = self.outline
        rollback_runbook = bool(_ROLLBACK_RUNBOOK.search(outline.title))
        said = "title" + (
            " (a rollback/restore runbook: its procedure runs when the release starts)"
            if rollback_runbook
            else ""
        )
        self.maker.ledger.append((outline.title_line, outline.title_line, said))
        for block in outline.intro:
            self.maker.explain(block, _intro_became(block))
        return rollback_runbook

    def _audience(self, intro: list[Block]) -> None:
        """'**Audience:** Release Captain (primary), On-Call SRE (executor), Database Owner
        (consulted).' under the title: the roles it names that the runbook does not define
        yet, with what the parentheses say as their responsibility."""
        for block in intro:
            if not re.fullmatch(r"(?:audience|roles?|owners?|stakeholders)\s*:?", block.lead, re.I):
                continue
            said = block.text[len(block.lead) :].lstrip(":* ")
            said = re.split(r"(?<=[.)])\s+(?=[A-Z])|\.\s|\.$", said, maxsplit=1)[0]
            added, known = [], []
            for part in re.split(r",\s*|\s+and\s+", said):
                found = re.match(r"\s*([^()]+?)\s*(?:\(([^)]*)\))?\s*$", part)
                if found is None or not found.group(1).strip():
                    continue
                name = found.group(1).strip().rstrip(".")
                existing = self.maker.role_named(name)
                if existing is not None:
                    known.append(existing)
                    continue
                ident = slug(name)
                role: dict[str, Any] = {"title": name}
                if found.group(2):
                    role["responsibilities"] = [found.group(2).strip()]
                self.maker.roles[ident] = role
                self.lines[("roles", ident)] = block.line
                added.append(ident)
            if added or known:
                roles = ", ".join([*added, *(f"{k} (defined)" for k in known)])
                what = f"description; the audience: roles {roles}"
                self.maker.ledger.append((block.line, block.last, what))

    def _explain_data(self, section: Section, kind: str, lines: Lined, before: int) -> None:
        """Explain a roles, parameters, templates or SLA section; what it could not read
        is kept in the description (it is no step: "kept as a checklist item" would lie)."""
        what = {"roles": "role", "parameters": "parameter", "comms": "comms template"}
        for key, line in lines.items():
            block = next((b for b in _walk(section.blocks) if b.line == line), None)
            label = f"{what.get(kind, 'SLA')} {key}"
            if block is not None:
                self.maker.explain(block, label)
            else:
                self.maker.ledger.append((line, line, label))
        for k in range(before, len(self.maker.unmapped)):
            item = self.maker.unmapped[k]
            kept = "kept in the description"
            self.maker.unmapped[k] = Unmapped(item.line, item.text, item.why, kept)
            self.maker.notes.append(f"{section.title}: {item.text}")
            block = next((b for b in _walk(section.blocks) if b.line == item.line), None)
            end = block.last if block is not None else item.line
            self.maker.ledger.append((item.line, end, f"note in the description ({item.why})"))
        read = set(lines.values()) | {u.line for u in self.maker.unmapped}
        for block in opened(section.blocks):
            if any(re.fullmatch(r"#[\w-]+", c) for c in block.codes):
                self.maker.explain(block, "the release channel")
            elif block.kind in ("paragraph", "fence") and block.line not in read:
                self.maker.notes.append(f"{section.title}: {_note_text(block)}")
                self.maker.explain(block, f"note in the description (text of the {kind} section)")
        for block in _walk(section.blocks):
            if block.kind == "comment":
                self.maker.explain(block, "annotation (read with the entry it belongs to)")
            elif block.kind == "table":  # its rows are the entries; the header names columns
                self.maker.explain(block, f"table of {kind}: header")

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

    def _keep_as_notes(self, section: Section, kind: SectionKind) -> None:
        """A troubleshooting or reference section (triggers, links, escalation contacts,
        notes): its text goes into the runbook's description, as reference; nothing in it
        runs or asks for a confirmation."""
        label = "troubleshooting" if kind == "troubleshooting" else "reference"
        parts: list[str] = []
        for block in opened(section.blocks):
            rule = incident_rule(block.text, block.line) if kind == "reference" else None
            if rule is None:
                parts.append(_note_text(block))
                continue
            self.maker.incident_rules.append(rule)  # "If the deployment fails, declare a P1"
            self.maker.explain(block, f"incident rule: {rule.severity} when {rule.condition}")
        body = " ".join(p for p in parts if p)
        if body:
            self.notes.append(f"{section.title} ({label}, not run): {body}".strip().rstrip(":"))
        for block in _walk(section.blocks):
            what = "link" if block.links else "note"
            if not any(a <= block.line and block.last <= b for a, b, _ in self._rules()):
                self.maker.explain(block, f"{what} in the description ({label}, not run)")

    def _rules(self) -> list[tuple[int, int, str]]:
        return [e for e in self.maker.ledger if e[2].startswith("incident rule")]

    def _condition_param(self, condition: tuple[str, int]) -> str:
        """The boolean parameter that says a conditional section applies to a release."""
        title, line = condition
        name = slug(re.sub(r"[()]", " ", title), words_max=6)
        self.maker.params.setdefault(
            name,
            {
                "description": f"The runbook's condition '{title}' holds for this release "
                "(true runs those steps; false skips them)",
                "type": "boolean",
                "default": False,
            },
        )
        self.lines.setdefault(("parameters", name), line)
        return name

    def _decision(self, condition: tuple[str, int]) -> StepData:
        """A rollback step that applies only sometimes: the captain decides, before it."""
        title, line = condition
        prompt = (
            f"Only if '{title}': approve to run the rollback steps under it; reject to stop "
            "the rollback here."
        )
        return self.maker.step(f"Decide: {title}", line, "approval", {"prompt": prompt})

    def _introduced(self, introduces: Block, fence: Block) -> list[tuple[StepData, Note | None]]:
        """A code block after "To list the Pods, run:": that sentence is its title."""
        title = block_title(introduces)
        made: list[tuple[StepData, Note | None]] = [
            (s, None) for s in self.maker.fence(title, fence, None, split=True)
        ]
        if made:
            self.maker.explain(introduces, f"title of step {self._new_id(title)}")
            made[0][0].setdefault("description", introduces.text.replace("`", ""))
        else:
            self.maker.explain(introduces, "note: introduces the output below")
            self.maker.notes.append(introduces.text)
        return made

    def _conditional(
        self, steps: list[StepData], condition: Condition, *, rollback: bool
    ) -> list[StepData]:
        """The steps of a section that applies only when ``condition`` holds: forward steps
        run only when its parameter is true (``when``); rollback steps (which always run
        when the rollback does) come after a decision that the condition holds."""
        if condition is None or not steps:
            return steps
        title, line = condition
        if line in self.choices:
            return self._alternative(steps, condition, rollback=rollback)
        if rollback:
            steps = [*self._chain([(self._decision(condition), None)], None), *steps]
            steps[1].setdefault("needs", [steps[0]["id"]])
            self._reorder(steps[1])
            said = f"condition '{title}': rollback decision {steps[0]['id']} (approval) first"
            self.maker.ledger.append((line, line, said))
            return steps
        param = self._condition_param(condition)
        for step in steps:
            step.setdefault("when", param)
            self._reorder(step)
        said = f"condition '{title}': its steps run only when parameter {param} is true (when:)"
        self.maker.ledger.append((line, line, said))
        return steps

    def _alternative(
        self, steps: list[StepData], condition: tuple[str, int], *, rollback: bool
    ) -> list[StepData]:
        """The steps of one of alternative sections ("Option A: ..."): they run only when
        the choice parameter names it; never both."""
        title, line = condition
        param, value, values = self.choices[line]
        if rollback:
            why = (
                f"'{title}' is one of alternatives ({', '.join(values)}) in the rollback plan: "
                "a rollback step always runs, so keep the one that applies"
            )
            self.maker.problems.append((line, why))
            return steps
        self.maker.params.setdefault(
            param,
            {
                "description": f"Which of the alternatives to run: {', '.join(values)}",
                "required": True,
                "choices": values,
            },
        )
        self.lines.setdefault(("parameters", param), line)
        for step in steps:
            step.setdefault("when", f"{param} == '{value}'")
            self._reorder(step)
        said = f"alternative '{title}': its steps run only when parameter {param} is '{value}'"
        self.maker.ledger.append((line, line, said))
        return steps

    def _group(self, block: Block, condition: Condition) -> list[StepData]:
        """The steps of a group item ("1. **Tag and build**" with sub-items): a phase."""
        made: list[tuple[StepData, Note | None]] = []
        parts: list[tuple[Block, int]] = []  # each sub-block and how many steps
        for sub in block.children:  # its items, and the paragraphs between them
            before = len(made)
            if sub.kind == "item":
                made += self.maker.item(sub)
            elif sub.kind in ("paragraph", "table", "fence"):
                made += [(s, None) for s in self.maker.block(sub)]
            parts.append((sub, len(made) - before))
        group = self._chain(made, None)
        head_end = min((c.line for c in block.children), default=block.line + 1) - 1
        self.maker.explain(block, f"a phase: {block_title(block)}", end=head_end)
        at = 0
        for sub, count in parts:
            self.maker.explain_steps(sub, group[at : at + count])
            at += count
        return self._conditional(group, condition, rollback=False)

    def _steps_section(
        self, section: Section, *, rollback: bool, condition: Condition = None
    ) -> None:
        self.maker.in_rollback = rollback
        self.maker.restoring = section.line in self.restoring
        steps: list[StepData] = []
        pending: Note | None = None  # an annotation on a line of its own, for the next step
        phase_note: Note | None = None
        blocks = opened(section.blocks)
        introduces: Block | None = None  # "To list the Pods, run:" before a code block
        for k, block in enumerate(blocks):
            if _introduces_next(block, blocks[k + 1] if k + 1 < len(blocks) else None):
                introduces = block
                continue
            if block.kind == "comment":
                self.maker.explain(block, "annotation (read with the step or phase it names)")
                if block.annotation and "phase" in block.annotation:
                    phase_note = block.annotation
                else:
                    pending = block.annotation
                continue
            if not rollback and _is_group(block):
                self._add_phase(section.title, section.line, steps, phase_note)
                steps, phase_note = [], None
                group = self._group(block, condition)
                self._add_phase(block_title(block), block.line, group, pending or block.annotation)
                pending = None
                continue
            if block.kind == "item":
                made = self.maker.item(block)
            elif introduces is not None and block.kind == "fence":
                made = self._introduced(introduces, block)
            else:
                made = [(s, None) for s in self.maker.block(block)]
            introduces = None
            if made and pending is not None and made[0][1] is None:
                made[0] = (made[0][0], pending)
            pending = None
            chained = self._chain(made, steps[-1]["id"] if steps else None)
            self.maker.explain_steps(block, chained)
            steps += chained
        steps = self._conditional(steps, condition, rollback=rollback)
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
            self._reorder(step)
            previous = ident
            out.append(step)
        return out

    @staticmethod
    def _reorder(step: StepData) -> None:
        ordered = {k: step[k] for k in _STEP_ORDER if step.get(k) not in (None, "")}
        step.clear()
        step.update(ordered)

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
        phase: dict[str, Any] = {"id": ident, "title": " ".join(title.split())}
        if note and "after" in note:
            phase["after"] = [a for a in note["after"].split(",") if a]
        self.phases.append({**phase, "steps": steps})


def _kind(section: Section) -> SectionKind:
    """What a section is: by its title, unless an annotation under it names its phase
    (``<!-- shipcaptain: phase=... -->``, as the export writes): then it is that phase,
    whatever its title says ("Identify repair actions (roll back, ...)")."""
    if _annotated_phase(section):
        return "phase"
    return section_kind(section)


def _annotated_phase(section: Section) -> bool:
    first = next((b for b in section.blocks if b.kind != "list" or b.children), None)
    return first is not None and first.kind == "comment" and "phase" in (first.annotation or {})


def _intro_became(block: Block) -> str:
    """What a block between the title and the first ``##`` heading became."""
    if block.kind == "paragraph":
        return "description (the runbook's introduction)"
    if block.kind == "fence" and block.info == SETTINGS_FENCE:
        return "runbook settings (shipcaptain block)"
    if block.kind == "comment":
        return "annotation (names the runbook)"
    return (
        "ignored: before the first ## heading only the introduction, shipcaptain settings "
        "and annotations are read"
    )


def _introduces_next(block: Block, following: Block | None) -> bool:
    """A paragraph ending in ':' right before a code block says what the block does:
    the block's step takes it as its title, it is no step of its own."""
    return (
        block.kind == "paragraph"
        and following is not None
        and following.kind == "fence"
        and block.text.rstrip().endswith(":")
        and incident_rule(block.text, block.line) is None
    )


#: the title of a runbook whose procedure is a rollback or a restore
_ROLLBACK_RUNBOOK = re.compile(r"\b(?:roll ?back|revert\w*|restor\w*|recover\w*|disaster)\b", re.I)


def _kinds(
    sections: list[Section], *, rollback_runbook: bool = False
) -> list[tuple[Section, SectionKind, Condition]]:
    """Each section's kind and condition; a subsection takes the kind (rollback,
    conditional, troubleshooting, reference) and the condition of the section it is in.
    A conditional section about a failure ("If Deployment Fails") is the rollback plan;
    other conditions ("If Database Issues", "(if reversible)") stay with its steps.

    In a rollback or restore runbook (``rollback_runbook``: its title says so) the rollback
    procedure is what the runbook is for: its sections are forward phases, run when the
    release starts, and their conditions (failure ones too) are ``when:`` parameters."""
    out: list[tuple[Section, SectionKind, Condition]] = []
    stack: list[tuple[int, SectionKind, Condition]] = []
    for section in sections:
        while stack and stack[-1][0] >= section.level:
            stack.pop()
        parent, condition = (stack[-1][1], stack[-1][2]) if stack else ("phase", None)
        own = _kind(section)
        annotated = own == "phase" and _annotated_phase(section)
        if annotated:
            condition = None
        elif own in ("phase", "conditional", "rollback") and (
            CONDITIONAL.search(section.title) or OPTION.match(section.title)
        ):
            condition = (section.title, section.line)
        if own == "conditional" or (rollback_runbook and own == "rollback"):
            own = "phase"
        if own == "phase" and not annotated and parent in INHERITED:
            own = parent
        if own in ("phase", "conditional") and condition is not None:
            on_failure = ON_FAILURE.search(condition[0]) and not rollback_runbook
            own = "rollback" if on_failure else "conditional"
        if own == "rollback" and condition is not None and ON_FAILURE.search(condition[0]):
            condition = None  # the rollback plan is what runs when the release fails
        if own not in ("phase", "conditional", "rollback"):
            condition = None
        stack.append((section.level, own, condition))
        out.append((section, own, condition))
    return out


#: "Option A: Quick Rollback", "Method 2 - Restore from backup": one of alternatives
OPTION = re.compile(
    r"^\s*(?:option|method|approach|alternative|choice)\s+(?P<key>[A-Za-z0-9]{1,3})\b"
    r"\s*[:.)\-\u2013\u2014]?\s*(?P<rest>.*)$",
    re.I,
)


def _choices(
    kinds: list[tuple[Section, SectionKind, Condition]],
) -> dict[int, tuple[str, str, list[str]]]:
    """Sibling sections that are alternatives ("Option A ...", "Option B ..."), by line:
    (the choice parameter, this one's value, every value). One alone is no choice."""
    groups: dict[tuple[int, int], list[tuple[Section, str]]] = {}
    parents: list[Section] = []
    for section, _kind, _condition in kinds:
        while parents and parents[-1].level >= section.level:
            parents.pop()
        found = OPTION.match(section.title)
        if found:
            parent = parents[-1].line if parents else 0
            label = slug(found.group("rest"), words_max=3) if found.group("rest") else ""
            label = label if label and label != "step" else found.group("key").lower()
            groups.setdefault((parent, section.level), []).append((section, label))
        parents.append(section)
    out: dict[int, tuple[str, str, list[str]]] = {}
    titles = {s.line: s.title for s, _, _ in kinds}
    for (parent, _level), members in groups.items():
        if len(members) < 2:
            continue
        base = re.sub(r"^\s*\d+[.)]?\s*|\([^)]*\)", " ", titles.get(parent, "alternative"))
        param = slug(base, words_max=3) + "_option"
        labels = [label for _, label in members]
        for section, label in members:
            out[section.line] = (param, label, labels)
    return out


def _heading_became(kind: SectionKind, condition: Condition) -> str:
    when = f", only if '{condition[0]}'" if condition else ""
    return {
        "phase": "heading: a phase (forward steps)",
        "conditional": f"heading: a conditional phase{when} (its steps run only when it holds)",
        "rollback": f"heading: the rollback plan{when}",
        "troubleshooting": "heading: troubleshooting, kept as a note (not run)",
        "reference": "heading: reference, kept as a note (not run)",
        "roles": "heading: roles",
        "slas": "heading: SLAs",
        "comms": "heading: communication templates",
        "parameters": "heading: parameters",
    }[kind]


def _note_text(block: Block) -> str:
    """A block of a reference section as one line of text (links with their targets)."""
    if block.kind == "fence":
        return "`" + " ; ".join(ln.strip() for ln in block.content.splitlines() if ln.strip()) + "`"
    if block.kind == "table":
        return " ".join(" | ".join(c for c in cells) + "." for _, cells in block.rows)
    if block.kind == "comment":
        return ""
    text = block.text
    for label, target in block.links:
        if target and target not in text:
            text = text.replace(label, f"{label} ({target})", 1) if label else text
    inner = " ".join(filter(None, (_note_text(c) for c in block.children)))
    return " ".join(filter(None, [text, inner]))


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
