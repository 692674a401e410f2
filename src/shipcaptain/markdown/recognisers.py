"""Which commands in a Markdown runbook become which steps.

``NATIVE`` is the one table of commands that have (or will have) a native action. A
mapping whose action is not installed yet (``shipcaptain actions`` does not list it) is
imported as a ``shell`` step running the original command, with the native action and its
parameters recorded in the step's description; once the action exists the importer emits
it instead, with no other change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Native:
    """A command pattern and the native action (with parameters) it stands for. ``params``
    gets the match and the text around the command (the item's title); it returns None
    when the native action needs something neither says (the command stays a shell step)."""

    name: str
    pattern: re.Pattern[str]
    action: str
    params: Callable[[re.Match[str], str], Params | None]


def _rollout(m: re.Match[str], _context: str) -> Params:
    params: Params = {"deployments": [m.group("name")]}
    if m.group("timeout"):
        params["timeout"] = m.group("timeout")
    if m.group("ns"):
        params["namespace"] = m.group("ns")
    return params


def _tag(m: re.Match[str], _context: str) -> Params:
    params: Params = {"tag": m.group("tag")}
    if m.group("message"):
        params["message"] = m.group("message")
    params["push"] = bool(m.group("push"))
    return params


#: words saying which phase a migration belongs to; the expand words are looked for first
#: ("non-breaking" is expand, not breaking)
_EXPAND_WORDS = re.compile(
    r"\b(backwards?[- ]compatible|expand|additive|non[- ]breaking|add(s|ing)?|create)\b", re.I
)
_CONTRACT_WORDS = re.compile(r"\b(breaking|contract|destructive|drop(s|ping)?|remove)\b", re.I)


def migration_phase(text: str) -> str | None:
    """'Apply backward-compatible migrations first' -> 'expand'; None when it does not say."""
    if _EXPAND_WORDS.search(text):
        return "expand"
    if _CONTRACT_WORDS.search(text):
        return "contract"
    return None


def _supabase_push(m: re.Match[str], context: str) -> Params | None:
    """``supabase db push [--file F]``: the native step applies every pending migration of
    the phase the text names, from the file's directory (``supabase`` without a file)."""
    file = m.group("file")
    phase = migration_phase(f"{context} {file or ''}")
    if phase is None:
        return None
    directory = str(PurePosixPath(file).parent) if file else "supabase"
    return {"directory": directory, "phase": phase}


_NS = r"(?:\s+(?:-n|--namespace)[ =](?P<ns>\S+))?"
_NS_AFTER = r"(?:\s+(?:-n|--namespace)[ =](?P<ns2>\S+))?"
_DEPLOYMENT = r"(?P<ref>(?:deploy|deployment|deployments)/(?P<name>[\w.\x00-]+))"


def _namespace(m: re.Match[str], params: Params) -> Params:
    ns = next(
        (m.group(g) for g in ("ns", "ns2", "ns3") if g in m.re.groupindex and m.group(g)), None
    )
    return {**params, "namespace": ns} if ns else params


def _set_image(m: re.Match[str], _context: str) -> Params | None:
    """``kubectl set image deployment/api api=ghcr.io/acme/api:1.4 [-n ns]``."""
    images: Params = {}
    for pair in m.group("pairs").split():
        container, _, image = pair.partition("=")
        if not container or not image:
            return None
        images[container] = image
    return _namespace(m, {"deployment": m.group("ref"), "images": images})


def _undo(m: re.Match[str], _context: str) -> Params:
    """``kubectl rollout undo deployment/api [-n ns]`` (no --to-revision)."""
    return _namespace(m, {"deployments": [m.group("ref")]})


NATIVE: tuple[Native, ...] = (
    Native(
        "kubectl rollout status",
        re.compile(
            r"^kubectl" + _NS + r"\s+rollout\s+status\s+(?:deploy|deployment|deployments)/"
            r"(?P<name>[\w.\x00-]+)(?:\s+--timeout[ =](?P<timeout>\w+))?\s*$"
        ),
        "k8s_rollout",
        _rollout,
    ),
    Native(
        "kubectl set image",
        re.compile(
            r"^kubectl"
            + _NS
            + r"\s+set\s+image\s+"
            + _DEPLOYMENT
            + _NS_AFTER
            + r"\s+(?P<pairs>(?:[\w*.-]+=[^\s=]+\s*)+?)"
            + _NS_AFTER.replace("ns2", "ns3")
            + r"\s*$"
        ),
        "k8s_set_image",
        _set_image,
    ),
    Native(
        "kubectl rollout undo",
        re.compile(r"^kubectl" + _NS + r"\s+rollout\s+undo\s+" + _DEPLOYMENT + _NS_AFTER + r"\s*$"),
        "k8s_rollback",
        _undo,
    ),
    Native(
        "git tag",
        re.compile(
            r"^git\s+tag\s+(?:-a\s+|-s\s+)?(?P<tag>\S+)(?:\s+-m\s+(?:\"(?P<message>[^\"]*)\"|'[^']*'))?"
            r"(?P<push>\s*&&\s*git\s+push\s+\S+\s+\S+)?\s*$"
        ),
        "git_tag",
        _tag,
    ),
    Native(
        "supabase db push",
        re.compile(r"^supabase\s+db\s+push(?:\s+--file[ =](?P<file>\S+))?\s*$"),
        "migrate",
        _supabase_push,
    ),
)

#: A fenced block in one of these languages holds shell commands.
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh", ""})
#: A fenced ``sql`` block is a check on the database: this native action (parameter
#: ``query``) once it is installed, else ``psql`` run by a shell step.
SQL_ACTION = "sql_check"

_NUMBER = r"`?(-?\d+(?:\.\d+)?)`?"
#: What the text around a ``sql`` block says its result must be, in the words runbooks
#: use: "should return no rows", "expect 0", "2 rows", "below 5", "more than 100".
_SQL_EXPECTATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "no_rows",
        re.compile(
            r"\b(?:no|zero|0)\s+rows?\b|\b(?:returns?|return|be)\s+(?:nothing|empty)\b"
            r"|\bis\s+empty\b",
            re.I,
        ),
    ),
    ("below", re.compile(r"\b(?:below|under|less than|fewer than)\s+" + _NUMBER, re.I)),
    ("above", re.compile(r"\b(?:above|over|more than|greater than|at least)\s+" + _NUMBER, re.I)),
    ("rows", re.compile(r"\b(\d+)\s+rows?\b", re.I)),
    (
        "equals",
        re.compile(
            r"\b(?:expect(?:ed|s)?|should\s+(?:be|return|equal)|must\s+(?:be|return|equal)"
            r"|equals?)\s*(?:to\s+)?(?::\s*)?" + _NUMBER,
            re.I,
        ),
    ),
)

_COMMAND_START = re.compile(r"^(?:\./|\$\s+)?[a-z][a-z0-9_.+-]*(?:/[\w.+-]+)*$")
_WAIT = re.compile(
    r"\bwait\s+(?:for\s+)?(?:about\s+)?(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.I,
)
_UNITS = {"s": "s", "m": "m", "h": "h"}


def recognise(command: str, context: str = "") -> tuple[Native, Params | None] | None:
    """The native mapping of one command line, if the table has one (its parameters are
    None when the command and ``context`` do not say enough)."""
    # a template ("<version>" became "{{ version }}") is one word of the command
    spans: list[str] = []

    def hide(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00"

    hidden = re.sub(r"\{\{.*?\}\}", hide, command.strip())
    for native in NATIVE:
        match = native.pattern.match(hidden)
        if match:
            params = native.params(match, context)
            return native, None if params is None else _shown(params, spans)
    return None


def _shown(value: Any, spans: list[str]) -> Any:
    """``value`` with the hidden templates back in place."""
    if isinstance(value, str):
        return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], value)
    if isinstance(value, dict):
        return {_shown(k, spans): _shown(v, spans) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, spans) for v in value]
    return value


def is_command(code: str) -> bool:
    """Does an inline code span look like a command line (not a file, channel or value)?"""
    code = code.strip()
    if not code or code.startswith(("#", "http://", "https://")):
        return False
    first = code.split()[0]
    if first == "$":
        return True
    if not _COMMAND_START.match(first):
        return False
    if first.startswith("./"):
        return True
    return " " in code and "/" not in first and not first.endswith((".md", ".sql", ".yml"))


def strip_prompt(line: str) -> str:
    return line[2:] if line.startswith("$ ") else line


def is_url(code: str) -> bool:
    return code.startswith(("http://", "https://")) and " " not in code


def wait_duration(text: str) -> str | None:
    """ "wait 10 minutes" -> '10m'."""
    match = _WAIT.search(text)
    if match is None:
        return None
    return match.group(1) + _UNITS[match.group(2)[0].lower()]


def sql_expectation(text: str) -> Params:
    """The ``sql_check`` expectation the text states (``{"rows": 0}``, ``{"below": 5.0}``
    ...), or nothing when it states none. "at least N" is above N - 1, for whole numbers
    (counts) only."""
    for kind, pattern in _SQL_EXPECTATIONS:
        match = pattern.search(text)
        if match is None:
            continue
        if kind == "no_rows":
            return {"rows": 0}
        if kind == "rows":
            return {"rows": int(match.group(1))}
        number = float(match.group(1))
        value: float | int = int(number) if number.is_integer() else number
        if kind == "above" and match.group(0).lower().startswith("at least"):
            if not isinstance(value, int):
                return {}  # "at least 0.5" has no strict bound to give: record, do not judge
            value = value - 1
        return {kind: value}
    return {}


def native_or_shell(
    command: str, installed: Collection[str], context: str = ""
) -> tuple[str, Params, str | None]:
    """The action, its parameters and the note for a command: the native action when it is
    installed and the text says enough, else ``shell`` with the mapping recorded as a note."""
    found = recognise(command, context)
    if found is None:
        return "shell", {"command": command}, None
    native, params = found
    if params is None:
        return (
            "shell",
            {"command": command},
            (
                f"maps to native action {native.action} once the text says which phase "
                "(backward-compatible/expand or breaking/contract)"
            ),
        )
    if native.action in installed:
        return native.action, params, None
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return "shell", {"command": command}, f"maps to native action {native.action} ({shown})"
