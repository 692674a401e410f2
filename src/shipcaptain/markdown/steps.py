"""Steps from the blocks of a Markdown runbook: list items, code blocks, paragraphs and
table rows become step dicts (the shape of a step in runbook YAML) with their source line.

What a block becomes, in this order: an annotated ``action=`` with a ``yaml`` block of
parameters; fenced commands; inline commands; a URL (an HTTP check); "wait N minutes";
otherwise a judgement call (a checklist gate, or an approval for a sign-off) owned by the
role the sentence names. A judgement with no recognised verb is also listed as unmapped.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from shipcaptain.errors import RunbookProblem
from shipcaptain.markdown.incidents import IncidentRule, incident_rule
from shipcaptain.markdown.parse import Block
from shipcaptain.markdown.recognisers import (
    SHELL_LANGUAGES,
    SQL_ACTION,
    is_command,
    is_command_line,
    is_url,
    logical_lines,
    native_or_shell,
    never_exits,
    recognise,
    sql_expectation,
    strip_prompt,
    wait_duration,
)
from shipcaptain.runbook.templating import CONTEXT_ROOTS, has_template, inspect_template

StepData = dict[str, Any]
Note = dict[str, str]

#: template markup: an escaped (raw) block first, then one tag or expression
_FOREIGN = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S
)
#: what placeholders are looked for around: markup is left as it is
_KEPT_OR_PLACEHOLDER = re.compile(
    r"(?P<kept>" + _FOREIGN.pattern + r")|<(?P<name>[A-Za-z][A-Za-z0-9_-]*)>", re.S
)


def _raw(text: str) -> str:
    return "{% raw %}" + text + "{% endraw %}"


#: Placeholders of message templates that the release already knows.
_KNOWN_VALUES = {"reason": "release.reason", "name": "release.started_by"}
_JUDGEMENT = re.compile(
    r"\b(confirm|verify|ensure|check|validate|review|announce|sign[- ]?off|approve|make sure|"
    r"monitor|watch|trigger|notify|inform|post)\b",
    re.I,
)
_SIGN_OFF = re.compile(r"\b(signs?[- ]?off|approv\w*)\b", re.I)
_CHANGELOG = re.compile(r"\bchange[- ]?log\b", re.I)
#: An instruction to tell people something: an ``announce`` step, not a confirmation.
_ANNOUNCE = re.compile(
    r"^\s*(?:announce|notify|inform|communicate|"
    r"(?:post|send|share)\s(?=.*(?:#[\w-]+|\bmessage|\bannouncement|\bupdate|\bslack|\bchannel"
    r"|\bteam|\bstakeholders)))\b",
    re.I,
)
#: what an announcement is about, or whom it goes to: a channel, a group, the release
_AUDIENCE = re.compile(
    r"#[\w-]+|\b(slack|channel|team|stakeholders?|users|customers|everyone|community|"
    r"release|deploy\w*|completion|complete|rollout|roll-?back|maintenance|outage|"
    r"status page|start\w*|message|announcement|update)\b",
    re.I,
)
_ONE_PERSON = re.compile(
    r"\bto (?:the |your |an? )?(?:incident commander|ic|commander|lead|manager|owner|dba|"
    r"engineer|on-?call|deputy|scribe|sme)\b|\bon the call\b",
    re.I,
)
#: The comms template an announcement is, by the words it uses (the engine knows these).
_ANNOUNCE_KEYS = (
    ("complete", re.compile(r"\bcomplet\w*|\bdone\b|\bfinish\w*|\bsucce\w*|\bavailable\b", re.I)),
    ("rollback", re.compile(r"\broll\s?back|\brevert", re.I)),
    ("start", re.compile(r"\bstart\w*|\bbegin\w*|\bkick\w*", re.I)),
)
_INTRODUCES = re.compile(r"\b(message|example|template|wording|text)\b", re.I)
_QUOTED = re.compile(r"[\"“]([^\"”]{8,})[\"”]")
_TABLE_COLUMNS = {
    "title": ("step", "task", "action", "what", "description", "item"),
    "command": ("command", "cmd", "run", "script"),
    "owner": ("owner", "role", "who"),
}


@dataclass(frozen=True)
class Unmapped:
    """Something the importer kept as a checklist item (or could not use at all)."""

    line: int
    text: str
    why: str
    #: where it went: a checklist step at its line, or the runbook's description
    kept: str = "kept as a checklist item"


def slug(text: str, sep: str = "_", words_max: int = 6) -> str:
    """An identifier from the first words of ``text``: 'Tag and build' -> 'tag_and_build'."""
    words = re.findall(r"[a-z0-9]+", text.lower())[:words_max]
    ident = sep.join(words)[:48].strip(sep) or "step"
    return ident if ident[0].isalpha() else "s" + sep + ident


#: the language of a fenced block (YAML) holding what a runbook or a step has beyond
#: Markdown: under the title, runbook settings; in a step's list item, the step's
SETTINGS_FENCE = "shipcaptain"
STEP_SETTINGS = ("guards", "retry", "undo", "when")
RUNBOOK_SETTINGS = (
    "environment",
    "guards",
    "defaults",
    "exclusive_environments",
    "comms",
    "incidents",
    "rollback_validation",
)


@dataclass
class StepMaker:
    """Builds steps; collects the parameters, unmapped items and problems it finds."""

    file: str
    installed: Collection[str]
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: comms templates: read from the templates section, and made by announce steps
    templates: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: "If the deployment fails, declare a P1": the runbook's incident rules, not steps
    incident_rules: list[IncidentRule] = field(default_factory=list)
    #: deployments whose image a step sets (kubectl set image): a later
    #: ``kubectl rollout undo`` of one of them sets back what the release set
    images_set: set[str] = field(default_factory=set)
    #: the parameters the <placeholders> of the text being templated declare
    pending: set[str] = field(default_factory=set, init=False, repr=False)
    #: the directory of the last migrate step (a later schema check verifies it)
    migrations: str | None = None
    #: (first line, last line, what it became) for ``import --explain``; the narrowest
    #: range holding a line says what that line became
    ledger: list[tuple[int, int, str]] = field(default_factory=list)
    #: the step made last (example output after a command is its expectation)
    last_step: StepData | None = None
    #: example output with no step before it: kept in the runbook's description
    notes: list[str] = field(default_factory=list)
    #: the steps being made are the rollback plan's (no ``when`` there)
    in_rollback: bool = False
    #: the steps being made are under a restore or rollback heading
    restoring: bool = False
    #: steps restoring a database from a backup there (a decision goes before each)
    restores: list[StepData] = field(default_factory=list)
    #: http checks whose text expects the new build hash: compared with the release's
    #: commit/version parameter once every parameter is known
    hash_checks: list[StepData] = field(default_factory=list)
    #: the runbook's directory (a kustomization a command names is read from there), if
    #: the runbook is a file
    base: Path | None = None

    # ---- explain ----

    def explain(self, block: Block, what: str, *, end: int | None = None) -> None:
        self.ledger.append((block.line, block.last if end is None else end, what))

    def explain_steps(self, block: Block, steps: list[StepData]) -> None:
        said = any(a == block.line and b == block.last for a, b, _ in self.ledger)
        if not steps and block.kind != "fence" and not said:
            self.explain(block, "ignored: nothing to run or keep (empty)")
        if steps:
            kind = "rollback step" if self.in_rollback else "step"
            loose = {u.line for u in self.unmapped if u.kept == "kept as a checklist item"}

            def named(step: StepData) -> str:
                unread = step["action"] == "checklist" and step["source"]["line"] in loose
                why = ": no command or known instruction, kept as a checklist item"
                return f"{step['id']} ({step['action']}{why if unread else ''})"

            shown = ", ".join(named(s) for s in steps)
            self.explain(block, (kind + " " if len(steps) == 1 else kind + "s ") + shown)
            by_line: dict[int, list[str]] = {}
            for step in steps:  # each step's own line, narrower than its block
                by_line.setdefault(step["source"]["line"], []).append(named(step))
            for line, made in by_line.items():
                if line != block.line or len(steps) > 1:
                    word = kind + (" " if len(made) == 1 else "s ")
                    self.ledger.append((line, line, word + ", ".join(made)))

    # ---- text ----

    def templated(self, text: str, *, message: bool = False) -> str:
        """``<version>`` -> ``{{ version }}``, declaring the parameter (required when a
        command uses it; in a message, a few names the release knows are used instead)."""

        text = self._escape_foreign(text)

        def sub(m: re.Match[str]) -> str:
            if m.group("kept"):
                return m.group("kept")
            name = m.group("name")
            if message and name.lower() in _KNOWN_VALUES:
                return "{{ " + _KNOWN_VALUES[name.lower()] + " }}"
            ident = slug(name)
            param = self.params.setdefault(ident, {"description": f"<{name}> in the runbook"})
            if message:
                if not param.get("required"):
                    param.setdefault("default", "")
            elif not param.get("required"):
                param.pop("default", None)
                param["required"] = True
            return "{{ " + ident + " }}"

        return _KEPT_OR_PLACEHOLDER.sub(sub, text)

    def _escape_foreign(self, text: str) -> str:
        """``{{ }}``, ``{% %}`` and ``{# #}`` that are not shipcaptain's template (Docker's
        and kubectl's ``{{.Names}}``, Hugo's ``{{% alert %}}``, GitHub Actions' ``${{ }}``)
        are kept verbatim inside ``{% raw %}...{% endraw %}``. A template is shipcaptain's
        when it parses and reads at least one name, each a parameter or a context root."""
        if not has_template(text):
            return text
        # the <placeholders> of this same text are parameters too
        self.pending = {slug(n) for n in re.findall(r"<([A-Za-z][A-Za-z0-9_-]*)>", text)}
        if self._is_ours(text):
            return text
        out, last, run = [], 0, ""
        for m in _FOREIGN.finditer(text):
            kept = m.group(0).startswith("{% raw")
            if kept or (m.group(0).startswith("{{") and self._is_ours(m.group(0))):
                out.append(_raw(run) + text[last : m.start()] if run else text[last : m.start()])
                run, last = "", m.end()
                out.append(m.group(0))
                continue
            between = text[last : m.start()]
            if run and between:
                out.append(_raw(run))
                run = ""
            if not run:
                out.append(between)
            run += m.group(0)
            last = m.end()
        out.append(_raw(run) + text[last:] if run else text[last:])
        return "".join(out)

    def _is_ours(self, template: str) -> bool:
        try:
            use = inspect_template(template)
        except RunbookProblem:
            return False
        known = [*CONTEXT_ROOTS, *self.params, *self.pending]
        # a misspelt parameter ({{ verison }}) is still meant as ours: validate names it
        return bool(use.names) and all(
            n in known or difflib.get_close_matches(n, known, n=1, cutoff=0.8) for n in use.names
        )

    def role_named(self, text: str) -> str | None:
        """The role a sentence names ('with Feature Owners' -> feature_owners)."""
        low = text.lower()
        for ident, role in self.roles.items():
            title = str(role["title"]).lower()
            for form in (title, title.rstrip("s"), ident.replace("_", " ")):
                if form and re.search(r"\b" + re.escape(form) + r"s?\b", low):
                    return ident
        return None

    # ---- one step ----

    def step(
        self, title: str, line: int, action: str, params: dict[str, Any], **extra: Any
    ) -> StepData:
        title = " ".join(title.split())[:120].strip()  # one line: a list item's bold lead
        step: StepData = {"title": title, "action": action, "with": params}
        step.update({k: v for k, v in extra.items() if v})
        step["source"] = {"file": self.file, "line": line}
        self.last_step = step
        return step

    def judgement(self, text: str, line: int, *, mapped: bool) -> StepData:
        role = self.role_named(text)
        plain = text.replace("`", "")
        if _CHANGELOG.search(text) and role and "changelog_sign_off" in self.installed:
            return self.changelog_sign_off(plain, line, role)
        if _SIGN_OFF.search(text) and role:
            params = {"prompt": self.templated(plain), "roles": [role]}
            return self.step(plain, line, "approval", params, owner=role)
        check: dict[str, Any] = {"item": self.templated(plain)}
        if role:
            check["confirm_by"] = role
        if not mapped:
            self.unmapped.append(Unmapped(line, plain, "no command or known instruction"))
        return self.step(plain, line, "checklist", check, owner=role)

    def announce(
        self, text: str, line: int, message: str | None, message_line: int | None
    ) -> list[StepData]:
        """'Announce completion ...': an ``announce`` step sending a comms template. Its
        message is the block the item shows (an example message), else the quoted text,
        else the runbook's template of that kind ("complete", "start", "rollback"), else
        the item's own words. The captain (else the role it names) confirms by hand when no
        channel takes it; "... for final sign-off" adds that role's approval after it."""
        plain = text.replace("`", "").strip()
        quoted = _QUOTED.search(plain)
        if message is None and quoted:
            message = quoted.group(1)
        said = f"{plain} {message or ''}"
        kind = next((key for key, words in _ANNOUNCE_KEYS if words.search(said)), None)
        body = self.templated(message.strip(), message=True) if message else None
        if kind and kind in self.templates and (body is None or body == self.templates[kind]):
            key = kind
        else:
            text_ = body if body is not None else self.templated(plain, message=True)
            key = base = kind if kind and kind not in self.templates else slug(plain, words_max=4)
            n = 2
            while key in self.templates and self.templates[key] != text_:
                key, n = f"{base}_{n}", n + 1
            self.templates[key] = text_
        role = self.role_named(plain)
        captain = next((r for r in self.roles if "captain" in r), None)
        confirm = captain or role
        params: dict[str, Any] = {"template": key}
        if confirm:
            params["confirm_by"] = confirm
        where = f" (message at line {message_line})" if message_line else ""
        note = (
            f"Sends the comms template {key!r}{where} to the release's channels; done when "
            "one accepted it"
            + (f", else {confirm} posts it by hand and confirms." if confirm else ".")
        )
        steps = [self.step(plain, line, "announce", params, owner=confirm, description=note)]
        if role and role != confirm and _SIGN_OFF.search(plain):
            title = f"{self.roles[role]['title']}: final sign-off"
            ask = {"prompt": self.templated(plain), "roles": [role]}
            steps.append(self.step(title, line, "approval", ask, owner=role))
        return steps

    def changelog_sign_off(self, text: str, line: int, role: str) -> StepData:
        """'Confirm the changelog with Feature Owners': each of them confirms the part that
        touches their surfaces; the rest goes to the captain (else to the same role)."""
        captain = next((r for r in self.roles if "captain" in r), role)
        params = {"tag": "HEAD", "owners": role, "unassigned_to": captain}
        params["item"] = self.templated(text)
        note = (
            "Each owner confirms the commits and migrations touching their surfaces (team "
            "file); add `migrations_dir`, and `surfaces` path patterns beyond commit scopes."
        )
        return self.step(text, line, "changelog_sign_off", params, owner=role, description=note)

    def endless(self, command: str, line: int) -> None:
        """A command line that never exits is refused at its line, with a suggestion."""
        suggestion = never_exits(command)
        if suggestion is not None:
            shown = " ".join(strip_prompt(command.strip()).split())
            why = f"`{shown}` never exits by itself, so its step would never finish: {suggestion}"
            self.problems.append((line, why))

    def command(
        self, title: str, command: str, line: int, owner: str | None, *, checked: bool = False
    ) -> StepData:
        # `...` around a <placeholder> is $( ... ): a value cannot be quoted inside backticks
        command = re.sub(r"`([^`]*<[A-Za-z][\w-]*>[^`]*)`", r"$(\1)", strip_prompt(command.strip()))
        if not checked:
            self.endless(command, line)
        command = self.templated(command)
        action, params, note = native_or_shell(command, self.installed, title)
        native, mapped = recognise(command, title) or (None, None)
        if native is not None and mapped is not None:
            if native.action == "k8s_set_image":
                self.images_set.add(str(mapped["deployment"]).rpartition("/")[2])
            elif native.action == "k8s_rollback":
                name = str(mapped["deployments"][0]).rpartition("/")[2]
                if name not in self.images_set:  # undo of something this runbook did not do
                    action, params = "shell", {"command": command}
                    note = (
                        "maps to native action k8s_rollback (sets back the images the "
                        "release set) once the runbook sets this deployment's image with "
                        "`kubectl set image` before it; until then the command runs as written"
                    )
        if action == "k8s_apply":
            note = self.kustomize_history(params, " ".join(command.split()), line)
        if action == "migrate":
            self.migrations = params["directory"]
            note = (
                f"From `{command}`: applies every pending {params['phase']} migration in "
                f"{params['directory']} (each classified from its SQL) to $DATABASE_URL."
            )
            if params["phase"] == "contract":
                note += " Name the read replicas in `replicas` to have them checked first."
        step = self.step(title or command, line, action, params, owner=owner, description=note)
        if (self.restoring or self.in_rollback) and _RESTORE.search(command):
            self.restores.append(step)
        return step

    def kustomize_history(self, params: dict[str, Any], command: str, line: int) -> str:
        """Where ``k8s_apply`` keeps the applied manifests (its history ConfigMaps): the
        kustomization's ``namespace:`` when the overlay's kustomization file is found
        beside the runbook, else the ``namespace`` parameter the import declares
        (required, never a silent ``default``). Returns the step's description."""
        overlay = str(params["overlay"])
        found = self._kustomization(overlay, line)
        said = f"From `{command}`: renders the kustomize overlay {overlay} and applies it"
        if found is not None:
            path, namespace = found
            if namespace is not None:
                params["history_namespace"] = namespace
                return (
                    f"{said}; the applied manifests are kept (for k8s_rollback) in namespace "
                    f"{namespace}, the namespace of {path}."
                )
            why = f"{path} sets no namespace"
        elif has_template(overlay):
            why = "the overlay's directory depends on a parameter"
        elif self.base is None:
            why = "the runbook is not read from a file, so its kustomization cannot be read"
        else:
            why = f"no kustomization file in {overlay} beside the runbook"
        param = self.params.setdefault(
            "namespace", {"description": "Namespace of the applied manifests' history"}
        )
        param.pop("default", None)
        param["required"] = True
        params["history_namespace"] = "{{ namespace }}"
        return (
            f"{said}; the applied manifests are kept (for k8s_rollback) in the namespace the "
            f"parameter namespace gives ({why})."
        )

    def _kustomization(self, overlay: str, line: int) -> tuple[str, str | None] | None:
        """(the kustomization file of ``overlay`` beside the runbook, its namespace)."""
        if self.base is None or has_template(overlay):
            return None
        for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
            path = self.base / overlay / name
            if not path.is_file():
                continue
            try:
                data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, YAMLError) as exc:
                self.problems.append((line, f"{path}: cannot read it: {exc}"))
                return None
            namespace = data.get("namespace") if isinstance(data, dict) else None
            shown = f"{overlay}/{name}"
            return shown, str(namespace) if isinstance(namespace, str) and namespace else None
        return None

    def sql(self, title: str, fence: Block, owner: str | None) -> StepData:
        """A ``sql`` block: a read-only ``sql_check``. It judges the result when the item's
        text says what to expect ("should return no rows", "expect 0", "below 5"); else it
        records the rows for people to read, as the runbook's reader would have looked at
        them. A query of the migration history after a migrate step is that step's
        ``verify_schema``. Without the native action, ``psql`` in a shell step."""
        query = self.templated(fence.content.strip())
        one_line = " ".join(query.split())
        if (
            self.migrations is not None
            and "verify_schema" in self.installed
            and re.search(r"\bschema_migrations\b", query)
        ):
            return self.step(
                title or "Verify schema versions", fence.line, "verify_schema",
                {"directory": self.migrations}, owner=owner,
                description=f"From the query `{one_line}`: every migration "
                f"in {self.migrations} is applied, with an unchanged checksum.",
            )  # fmt: skip
        expect = sql_expectation(title)
        if SQL_ACTION in self.installed:
            judged = ", ".join(f"{k}: {v}" for k, v in expect.items())
            note = (
                f"Read-only; the text expects {judged}."
                if expect
                else "Read-only; records the rows it returns for people to read. Add equals, "
                "below, above or rows to have it judge them."
            )
            return self.step(
                title or "SQL check", fence.line, SQL_ACTION, {"query": query, **expect},
                owner=owner, description=note,
            )  # fmt: skip
        shown = ", ".join(["query", *(f"{k}={v}" for k, v in expect.items())])
        quoted = query.replace("'", "'\\''")
        command = f"psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -c '{quoted}'"
        return self.step(
            title or "SQL check", fence.line, "shell", {"command": command}, owner=owner,
            description=f"maps to native action {SQL_ACTION} ({shown}) once it is installed",
        )  # fmt: skip

    # ---- blocks ----

    def fence(self, title: str, fence: Block, owner: str | None, *, split: bool) -> list[StepData]:
        """A code block: one step, or one per line when every line is a native command
        (three ``kubectl rollout status`` lines are three rollout watches)."""
        if fence.info == SETTINGS_FENCE:
            self.problems.append(
                (fence.line, "a shipcaptain block belongs in a step's list item or under the title")
            )
            return []
        if fence.info == "sql":
            return [self.sql(title, fence, owner)]
        if fence.info not in SHELL_LANGUAGES:
            self.unmapped.append(
                Unmapped(fence.line, f"```{fence.info} block", "not a shell or sql block")
            )
            text = f"{title}: {fence.content.strip()}" if title else fence.content.strip()
            return [self.judgement(text, fence.line, mapped=True)]
        commands, output = split_output(fence)
        if not commands:  # example output, a message, a value: never run
            self.keep_output(fence, output)
            return []
        if all(ln.strip().startswith("#") for _, ln in commands):  # comments only
            self.keep_output(fence, [*commands, *output], label="Comments")
            return []
        groups = alternatives(commands)
        if len(groups) > 1:
            return self.choice(title, fence, groups, owner)
        check = curl_expectation(commands, output)
        if check is not None:  # `curl URL` and the answer it shows: an http check of it
            return [self.http_check(title, fence, commands[0], check, output, owner)]
        steps = self.commands(title, commands, owner, split=split)
        if output and steps:
            self.keep_output(fence, output, steps[-1])
        return steps

    def commands(
        self, title: str, numbered: list[tuple[int, str]], owner: str | None, *, split: bool
    ) -> list[StepData]:
        numbered = [(n, ln) for n, ln in numbered if not ln.strip().startswith("#")]
        for n, ln in numbered:
            self.endless(ln, n)
        if split and len(numbered) > 1 and all(native_or_shell(ln, ())[2] for _, ln in numbered):
            return [
                self.command(
                    f"{title}: {strip_prompt(ln.strip())}" if title else "", ln, n, owner,
                    checked=True,
                )
                for n, ln in numbered
            ]  # fmt: skip
        body = "\n".join(strip_prompt(ln.strip()) for _, ln in numbered)
        return [self.command(title, body, numbered[0][0], owner, checked=True)]

    def http_check(
        self,
        title: str,
        fence: Block,
        command: tuple[int, str],
        check: dict[str, Any],
        output: list[tuple[int, str]],
        owner: str | None,
    ) -> StepData:
        """``curl URL`` with the answer it should give: an ``http`` step that checks it."""
        line, text = command
        shown = " ".join(strip_prompt(text.strip()).split())
        self.endless(text, line)
        params = {**check, "url": self.templated(check["url"])}
        judged = ", ".join(f"{k}: {v}" for k, v in check.items() if k != "url")
        note = f"From `{shown}` and the output the runbook shows: checks {judged}."
        step = self.step(title or shown, line, "http", params, owner=owner, description=note)
        if _BUILD_HASH.search(title) and "body_pattern" not in params:
            self.hash_checks.append(step)
        what = f"output: the expectation of the http check {title or shown!r} ({judged})"
        self.ledger.append((fence.line, fence.last, what))
        for n, ln in output:
            if ln.strip():
                self.ledger.append((n, n, what))
        return step

    def keep_output(
        self,
        fence: Block,
        output: list[tuple[int, str]],
        step: StepData | None = None,
        *,
        label: str = "Expected output",
    ) -> None:
        """Output a block shows (under a command, or a block of output after one): a note
        on the step before it, else in the runbook's description."""
        step = step or self.last_step
        text = " / ".join(ln.strip() for _, ln in output if ln.strip())
        if not text:
            self.explain(fence, "ignored: an empty code block")
            return
        first, last = output[0][0], output[-1][0]
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        kind = "output" if label == "Expected output" else "note"
        if step is not None:
            said = f"{label} ({where}): {text}"
            step["description"] = " ".join(filter(None, [step.get("description", ""), said]))
            what = f"{kind}: {label.lower()} of step {step.get('id') or step['title']!r} (not run)"
        else:
            self.notes.append(f"{label} ({where}): {text}")
            what = f"{kind}: kept in the description (not run)"
        if not any(n for n, _ in output if n <= fence.line):  # the fence's own ``` lines
            self.ledger.append((fence.line, fence.last, what))
        for n, ln in output:
            if ln.strip():
                self.ledger.append((n, n, what))

    def choice(
        self,
        title: str,
        fence: Block,
        groups: list[tuple[str, list[tuple[int, str]]]],
        owner: str | None,
    ) -> list[StepData]:
        """ "X # OR for AWS" Y: a choice parameter, one step per alternative run only when
        it is the one chosen. Never both."""
        if self.in_rollback:
            why = (
                "alternatives ('# OR') in the rollback plan: a rollback step always runs, so "
                "keep the one that applies (or move the choice to a forward step)"
            )
            self.problems.append((fence.line, why))
            return []
        name = slug(title or "alternative", words_max=4) + "_choice"
        labels = [label for label, _ in groups]
        self.params[name] = {
            "description": f"Which alternative of the block at line {fence.line} to run: "
            + ", ".join(labels),
            "required": True,
            "choices": labels,
        }
        steps: list[StepData] = []
        for label, lines in groups:
            made = self.commands(f"{title or 'Run'} ({label})", lines, owner, split=False)
            for step in made:
                step["when"] = f"{name} == '{label}'"
            steps += made
        return steps

    def settings(self, fence: Block, allowed: tuple[str, ...]) -> dict[str, Any]:
        """The YAML mapping of a ``shipcaptain`` block; its mistakes become problems at its
        line (the runbook's own checks then see the values themselves)."""
        try:
            data = YAML(typ="safe").load(fence.content) or {}
        except YAMLError as exc:
            self.problems.append((fence.line, f"shipcaptain block is not valid YAML: {exc}"))
            return {}
        if not isinstance(data, dict):
            self.problems.append((fence.line, "a shipcaptain block must be a YAML mapping"))
            return {}
        unknown = [k for k in data if k not in allowed]
        if unknown:
            keys = YAML(typ="rt").load(fence.content)  # only to find the keys' lines
            for key in unknown:
                self.problems.append(
                    (
                        fence.line + 1 + keys.lc.key(key)[0],
                        f"shipcaptain block: unknown {key}; known here: {', '.join(allowed)}",
                    )
                )
        return {k: v for k, v in data.items() if k in allowed}

    def item(self, item: Block) -> list[tuple[StepData, Note | None]]:
        """Steps of one list item, each with the annotation that applies to it; nested
        items and blocks become steps of their own, after the item's own. A
        ``shipcaptain`` block in the item sets the item's step's guards, retry and undo."""
        settings = [c for c in item.children if c.kind == "fence" and c.info == SETTINGS_FENCE]
        out = self._item(item, [c for c in item.children if c not in settings])
        if not settings and item.annotation is None:
            out = self.item_condition(item, out)
        for fence in settings:
            extras = self.settings(fence, STEP_SETTINGS)
            if out:
                out[0][0].update(extras)
        return out

    def item_condition(
        self, item: Block, out: list[tuple[StepData, Note | None]]
    ) -> list[tuple[StepData, Note | None]]:
        """An item that applies only sometimes ("... if applicable", "(critical only)",
        "(if reversible)"): its forward steps run only when a boolean parameter says so;
        in the rollback plan (which always runs) a decision comes before them."""
        found = ITEM_CONDITION.search(item.text)
        own = [(s, n) for s, n in out if s["source"]["line"] == item.line]
        if found is None or not own or incident_rule(item.text, item.line) is not None:
            return out
        said = found.group(0).strip("() ")
        title = block_title(item)
        if self.in_rollback:
            prompt = (
                f"Only {said}: approve to run '{title}' in the rollback; reject to stop the "
                "rollback here."
            )
            label = title if said.lower() in title.lower() else f"{title} ({said})"
            decide = self.step(f"Decide: {label}", item.line, "approval", {"prompt": prompt})
            self.ledger.append((item.line, item.line, f"condition '{said}': a decision first"))
            return [(decide, None), *out]
        name = slug(f"{re.sub(r'[(][^)]*[)]', ' ', title)} {said}", words_max=7)
        self.params.setdefault(
            name,
            {
                "description": f"'{title}' applies to this release ({said}); false skips it",
                "type": "boolean",
                "default": False,
            },
        )
        for step, _note in own:
            step.setdefault("when", name)
        return out

    def _item(self, item: Block, blocks: list[Block]) -> list[tuple[StepData, Note | None]]:
        note = item.annotation
        for c in blocks:
            if c.kind == "comment" and note is None:
                note = c.annotation
        children = [c for c in blocks if c.kind != "comment"]
        fences = [c for c in children if c.kind == "fence"]
        subitems = [c for c in children if c.kind == "item"]
        title, owner = block_title(item), self.role_named(item.text)
        if note and "action" in note:
            return [(self.annotated(item, note, fences, title, owner), note)]
        own: list[StepData] = []
        rule = self._incident_rule(item)
        if rule is not None:
            fences = []
        elif is_announcement(item.text):
            message, at, used = _example_message(fences, subitems)
            own = self.announce(item.text, item.line, message, at)
            fences, subitems = [], [s for s in subitems if s not in used]
            children = [c for c in children if c.kind != "fence"]
        commands = [c for c in item.codes if is_command(c)]
        urls = [c for c in item.codes if is_url(c)]
        if own or rule is not None:
            pass
        elif fences:
            split = not (note and "id" in note)
            for fence in fences:
                own += self.fence(title, fence, owner, split=split)
        elif _BUILD_HASH.search(item.text) and (url := self.health_url(item)) is not None:
            own.append(self.hash_check(item, url, title, owner))
        elif commands:
            for command in commands:
                t = title if len(commands) == 1 else f"{title}: {command}"
                own.append(self.command(t, command, item.line, owner))
        elif urls:
            own.append(self.url_check(item, urls[0], title, owner))
        elif (wait := wait_duration(item.text)) is not None:
            reason = item.text.replace("`", "")
            own.append(self.step(title, item.line, "wait", {"duration": wait, "reason": reason}))
        elif not subitems or item.checked is not None:
            known = bool(_JUDGEMENT.search(item.text)) or item.checked is not None
            own.append(self.judgement(item.text, item.line, mapped=known))
        rest = after_lead(item)
        if own and rest and not item.codes and not own[0].get("description"):
            own[0]["description"] = rest
        out: list[tuple[StepData, Note | None]] = [
            (s, note if k == 0 else None) for k, s in enumerate(own)
        ]
        for sub in subitems:
            for step, sub_note in self.item(sub):
                if own or note:
                    step["description"] = f"Part of: {title}. " + step.get("description", "")
                    step["description"] = step["description"].strip()
                out.append((step, sub_note))
        for other in children:
            if other.kind in ("paragraph", "table"):
                out += [(s, None) for s in self.block(other)]
        if out and note and out[0][1] is None:
            out[0] = (out[0][0], note)
        return out

    def url_check(self, item: Block, url: str, title: str, owner: str | None) -> StepData:
        """'hit `https://.../health` and confirm `200`': an ``http`` check of the status;
        what else the sentence asks ("+ build hash") is said in its description."""
        status = next((int(c) for c in item.codes if re.fullmatch(r"[1-5]\d\d", c)), 200)
        params = {"url": self.templated(url), "expect_status": status}
        more = item.text.rsplit("`", 1)[-1].strip(" .")  # "... `200` + build hash."
        unchecked = (
            f"Checks the status only; the runbook also says '{more}': add json_field / "
            "body_pattern to check it."
            if re.search(r"[A-Za-z]{3,}", more) and item.text.count("`") >= 2
            else None
        )
        return self.step(title, item.line, "http", params, owner=owner, description=unchecked)

    def health_url(self, item: Block) -> str | None:
        """The URL a health check with its build hash calls: a URL in code, or the one a
        ``curl`` in code calls; "the health endpoint" without one is the parameter
        ``health_url`` (required)."""
        for code in item.codes:
            if is_url(code):
                return code
            found = re.match(r"^curl\s(?:.*\s)?(https?://\S+)", code)
            if found:
                return found.group(1).strip("'\"")
        if re.search(r"\bhealth\b", item.text, re.I):
            self.params.setdefault(
                "health_url",
                {"description": "URL of the health endpoint the runbook checks", "required": True},
            )
            return "{{ health_url }}"
        return None

    def hash_check(self, item: Block, url: str, title: str, owner: str | None) -> StepData:
        """'curl .../health -> 200 + build hash', 'verify the health endpoint returns the
        new build hash': an ``http`` check of the status and of the build hash (see
        :meth:`resolve_build_hashes`)."""
        status = next((int(c) for c in item.codes if re.fullmatch(r"[1-5]\d\d", c)), None)
        if status is None:
            found = re.search(r"(?<![\w.])([1-5]\d\d)(?![\w.])", item.text.replace(url, ""))
            status = int(found.group(1)) if found else 200
        url = url if url.startswith("{{") else self.templated(url)
        params: dict[str, Any] = {"url": url, "expect_status": status}
        step = self.step(title, item.line, "http", params, owner=owner)
        self.hash_checks.append(step)
        return step

    def resolve_build_hashes(self, tag_step: str | None = None) -> None:
        """Each health check that expects the new build hash compares the answer with the
        release's commit parameter, else the commit the runbook's ``git_tag`` step
        (``tag_step``) tagged (short, as a health endpoint shows it), else its version
        parameter; without any, its description says why it checks the status only."""
        names = list(self.params)
        name = next((n for n in names if _COMMIT_PARAM.fullmatch(n)), None)
        if name is None and tag_step is not None:
            name = f"steps.{tag_step}.commit[:7]"
        name = name or next((n for n in names if _VERSION_PARAM.fullmatch(n)), None)
        for step in self.hash_checks:
            params = step["with"]
            if "body_pattern" in params:
                continue
            if name is None:
                step["description"] = (
                    "Checks the status only: the runbook expects the new build hash, but has no "
                    "commit or version parameter (or git tag step) to compare it with: add one, "
                    "e.g. <commit>, or set body_pattern."
                )
                continue
            params["body_pattern"] = "{{ " + name + " | regex_escape }}"
            what = "the commit it tagged" if name.startswith("steps.") else f"the release's {name}"
            step["description"] = (
                f"Checks the status and that the answer contains {what} (the build hash the "
                "runbook expects); if the endpoint answers JSON, add json_field to look in that "
                "field only."
            )

    def _incident_rule(self, block: Block) -> IncidentRule | None:
        """ "If the deployment fails, declare a P1": the runbook's incident rules."""
        rule = incident_rule(block.text, block.line)
        if rule is not None:
            self.incident_rules.append(rule)
            self.explain(block, f"incident rule: {rule.severity} when {rule.condition}")
        return rule

    def annotated(
        self, item: Block, note: Note, fences: list[Block], title: str, owner: str | None
    ) -> StepData:
        """``<!-- shipcaptain: action=http -->`` with a ``yaml`` block of parameters."""
        params: Any = {}
        block = next((f for f in fences if f.info in ("yaml", "yml")), None)
        if block is not None:
            try:
                params = YAML(typ="safe").load(block.content) or {}
            except YAMLError as exc:
                self.problems.append((block.line, f"parameters are not valid YAML: {exc}"))
            if not isinstance(params, dict):
                self.problems.append((block.line, "parameters must be a YAML mapping"))
                params = {}
        elif fences and note["action"] == "shell":
            params = {"command": fences[0].content.rstrip("\n")}
        return self.step(
            title, item.line, note["action"], params, owner=owner, description=after_lead(item)
        )

    def block(self, block: Block) -> list[StepData]:
        """A block that is not a list item: a code block, table or loose paragraph."""
        if block.kind == "fence":
            return self.fence("", block, None, split=True)
        if block.kind == "table":
            return self.table(block)
        if block.kind != "paragraph":
            return []
        if not block.text.strip():  # an image: nothing to read
            self.explain(block, "ignored: an image or an empty paragraph")
            return []
        plain = block.text.replace("`", "")
        if (wait := wait_duration(block.text)) is not None:
            return [self.step(plain, block.line, "wait", {"duration": wait, "reason": plain})]
        if self._incident_rule(block) is not None:
            return []
        if is_announcement(block.text):
            return self.announce(block.text, block.line, None, None)
        commands = [c for c in block.codes if is_command(c)]
        owner = self.role_named(block.text)
        if commands:
            return [self.command(block_title(block), c, block.line, owner) for c in commands]
        return [self.judgement(block.text, block.line, mapped=False)]

    def table(self, table: Block) -> list[StepData]:
        """One step per row: a 'command' column makes a shell step, a 'step'/'task' column
        its title and an 'owner'/'role' column its owner."""
        col = {name: _column(table.header, words) for name, words in _TABLE_COLUMNS.items()}
        steps: list[StepData] = []
        for line, cells in table.rows:
            got = {
                name: cells[k].strip() if k is not None and k < len(cells) else ""
                for name, k in col.items()
            }
            title = got["title"].replace("`", "") or " ".join(cells).replace("`", "")
            owner = self.role_named(got["owner"] or title)
            command = got["command"].strip("`")
            if command and is_command_line(command):
                steps.append(self.command(title, command, line, owner))
                continue
            for step, _note in self.item(Block("item", line, text=title)):
                if owner is not None:
                    step["owner"] = owner
                    if step["action"] == "checklist":
                        step["with"]["confirm_by"] = owner
                steps.append(step)
        return steps


_PROMPT = re.compile(r"^\s*\$\s")
#: a restore from a backup: pg_restore, or psql reading a dump from a file or a pipe
_RESTORE = re.compile(
    r"(?:^|[\s;&|(])pg_restore\s|\bpsql\b[^\n|;&]*\s<\s*\S|\|\s*(?:\S+=\S+\s+)*psql\b"
)
#: a health check that also expects the new build: "+ build hash", "the new build hash"
_BUILD_HASH = re.compile(
    r"\b(?:build|commit|git|release)[ -]?(?:hash|sha|id)\b|\bnew build\b", re.I
)
_COMMIT_PARAM = re.compile(
    r"(?:git_)?(?:commit|commit_sha|sha|build_hash|build_sha|build_id|revision|git_sha)"
)
_VERSION_PARAM = re.compile(r"(?:release_|new_)?version|(?:release_)?tag")
_OR = re.compile(r"^\s*#\s*or\b\s*(?P<label>.*)$", re.I)
_TRAILING_OR = re.compile(r"\s#\s*or\b\s*(?P<label>.*)$", re.I)
_TRAILING_COMMENT = re.compile(r"\s#\s*(?P<label>[^#]*)$")


#: an item's own condition: "... if applicable", "(critical only)", "(if reversible)"
ITEM_CONDITION = re.compile(
    r"\bif (?:applicable|needed|necessary|required|reversible)\b"
    r"|\((?:[^)]*\bonly|if [^)]*|optional|when [^)]*)\)",
    re.I,
)


def split_output(fence: Block) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(command lines, output lines) of a code block. With ``$ `` prompts, the prompted
    lines are commands and the rest is their output. Without: a shell-typed block
    (bash, sh, shell, zsh) is all commands; a ``console`` or untyped block is commands
    only when every line runs a known program, else it is all output."""
    lines = logical_lines(fence.content, fence.line + 1)
    shown = [(n, ln) for n, ln in lines if ln.strip()]
    if any(_PROMPT.match(ln) for _, ln in shown):
        commands = [(n, ln) for n, ln in shown if _PROMPT.match(ln)]
        return commands, [(n, ln) for n, ln in shown if not _PROMPT.match(ln)]
    if fence.info in ("bash", "sh", "shell", "zsh"):
        return shown, []
    code = [(n, ln) for n, ln in shown if not ln.strip().startswith("#")]
    if code and all(is_command_line(ln) for _, ln in code):
        return shown, []
    return [], shown


_CURL_FLAGS = re.compile(r"^-[sSfLkiI]+$|^--(?:silent|show-error|fail|location|insecure|head)$")
_STATUS_LINE = re.compile(r"^HTTP/[\d.]+\s+(\d{3})\b")
_JSON_STATUS_KEYS = ("status", "state", "health", "healthy", "ready", "ok")


def curl_expectation(
    commands: list[tuple[int, str]], output: list[tuple[int, str]]
) -> dict[str, Any] | None:
    """The ``http`` check a ``curl URL`` with its output means, or None: a status line
    (``HTTP/1.1 200 OK``) or ``-w '%{http_code}'`` output is ``expect_status``; a JSON
    body with a ``status``/``state``/``health`` field is that field's value."""
    if len(commands) != 1 or not output:
        return None
    try:
        words = shlex.split(strip_prompt(commands[0][1].strip()))
    except ValueError:
        return None
    if not words or words[0] != "curl":
        return None
    check: dict[str, Any] = {}
    url = None
    code_format = False
    k = 1
    while k < len(words):
        word = words[k]
        if _CURL_FLAGS.match(word):
            if "k" in word or word == "--insecure":
                check["verify_tls"] = False
            if ("I" in word and not word.startswith("--")) or word == "--head":
                check["method"] = "HEAD"
        elif word in ("-o", "--output") and k + 1 < len(words) and words[k + 1] == "/dev/null":
            k += 1
        elif word in ("-w", "--write-out") and k + 1 < len(words):
            code_format = words[k + 1].strip() in ("%{http_code}", "%{http_code}\\n")
            if not code_format:
                return None
            k += 1
        elif re.match(r"^https?://\S+$", word) and url is None:
            url = word
        else:
            return None  # a flag or argument the check would not reproduce
        k += 1
    if url is None:
        return None
    texts = [ln.strip() for _, ln in output if ln.strip()]
    status = _STATUS_LINE.match(texts[0]) if texts else None
    if code_format and len(texts) == 1 and re.fullmatch(r"[1-5]\d\d", texts[0]):
        check["expect_status"] = int(texts[0])
    elif status:
        check["expect_status"] = int(status.group(1))
    else:
        try:
            body = json.loads(" ".join(texts))
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        key = next((k for k in _JSON_STATUS_KEYS if isinstance(body.get(k), (str, int))), None)
        if key is None or isinstance(body[key], bool):
            return None
        check["json_field"] = key
        check["body_pattern"] = "^" + re.escape(str(body[key])) + "$"
    return {"url": url, **check}


def alternatives(lines: list[tuple[int, str]]) -> list[tuple[str, list[tuple[int, str]]]]:
    """The alternatives of a block ("X  # for Vault", "# OR for AWS", "Y"), each with a
    label; one group when the block offers no alternatives."""
    groups: list[tuple[str, list[tuple[int, str]]]] = [("", [])]
    comment = ""
    for n, line in lines:
        found = _OR.match(line)
        if found:
            groups.append((_label(found.group("label")), []))
            continue
        if line.strip().startswith("#"):
            comment = line.strip().lstrip("#").strip()
            continue
        trailing = _TRAILING_OR.search(line)
        command = line[: trailing.start()] if trailing else line
        label, cmds = groups[-1]
        if not label and not cmds:
            said = _TRAILING_COMMENT.search(command)
            label = _label(said.group("label") if said else comment)
        if not trailing:
            said = _TRAILING_COMMENT.search(command)
            command = command[: said.start()] if said and label else command
        groups[-1] = (label, [*cmds, (n, command.rstrip())])
        if trailing:
            groups.append((_label(trailing.group("label")), []))
        comment = ""
    groups = [(label, cmds) for label, cmds in groups if cmds]
    if len(groups) < 2:
        return [("", lines)]
    seen: set[str] = set()
    out = []
    for k, (given, cmds) in enumerate(groups, 1):
        label = given if given and given not in seen else f"option_{k}"
        seen.add(label)
        out.append((label, cmds))
    return out


def _label(text: str) -> str:
    text = re.sub(r"^(?:for|if using|if you use|with|on|using)\s+", "", text.strip(), flags=re.I)
    return slug(text, words_max=3) if re.search(r"[A-Za-z0-9]", text) else ""


def is_announcement(text: str) -> bool:
    """Does the sentence tell a group something about the release ("Announce completion
    ...", "Notify the team ...", "Post in #deployments: ...")? Telling one person or a
    call ("Announce all findings to the incident commander", "Announce on the call ...")
    is not a message to the release's channels."""
    plain = text.replace("`", "").replace("*", "")
    return (
        bool(_ANNOUNCE.search(plain))
        and bool(_AUDIENCE.search(plain))
        and not _ONE_PERSON.search(plain)
    )


def _example_message(
    fences: list[Block], subitems: list[Block]
) -> tuple[str | None, int | None, list[Block]]:
    """The message an announcement item shows: its own block, else the block of a sub-item
    that introduces it ("Example ... message:"); with the sub-items that only held it."""
    introducing = [
        sub
        for sub in subitems
        if _INTRODUCES.search(sub.text)
        and not any(is_command(c) for c in sub.codes)
        and not any(c.kind == "item" for c in sub.children)
    ]
    if fences:
        return fences[0].content, fences[0].line + 1, introducing
    for sub in introducing:
        blocks = [c for c in sub.children if c.kind == "fence"]
        if blocks:
            return blocks[0].content, blocks[0].line + 1, [sub]
    return None, None, []


def after_lead(item: Block) -> str:
    """'**Title** — more words': the more words."""
    if not item.lead or not item.text.startswith(item.lead):
        return ""
    return item.text[len(item.lead) :].lstrip(" —:-").strip()


def block_title(block: Block) -> str:
    """A short title: the bold lead, else the text before the first command's colon."""
    if block.lead:
        return block.lead.rstrip(":").strip()
    text = block.text
    if block.codes and ":" in text.split("`")[0]:
        text = text.split("`")[0].rsplit(":", 1)[0]
    text = re.sub(r"`[^`]*`", lambda m: m.group(0)[1:-1] if len(m.group(0)) < 40 else "", text)
    return re.sub(r"\s+", " ", text).strip(" :.") or (block.codes[0] if block.codes else "step")


def _column(header: list[str], words: tuple[str, ...]) -> int | None:
    for word in words:
        for k, name in enumerate(header):
            if word in name:
                return k
    return None
