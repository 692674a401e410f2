"""Compare shipcaptain's classification of a migration with squawk's rules, where squawk has
one for the same thing. Both sides become ``{(category, line of the statement)}``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from shipcaptain.migrations.classify import split_statements
from shipcaptain.migrations.lint import squawk_path
from shipcaptain.migrations.verdicts import Classification

#: squawk rule -> the category both sides are compared in
SQUAWK_RULES = {
    "ban-drop-column": "drop-column",
    "ban-drop-table": "drop-table",
    "renaming-column": "rename",
    "renaming-table": "rename",
    "adding-required-field": "add-not-null-column",
    "changing-column-type": "column-type-change",
    "require-concurrent-index-creation": "index-without-concurrently",
    "constraint-missing-not-valid": "constraint-without-not-valid",
    "adding-foreign-key-constraint": "constraint-without-not-valid",
    "adding-not-nullable-field": "set-not-null",
}
#: the start of a contract reason -> category
_REASONS = {
    "drops column": "drop-column",
    "drops table": "drop-table",
    "renames column": "rename",
    "renames table": "rename",
    "adds NOT NULL column": "add-not-null-column",
}
_FINDINGS = {
    "column-type-change",
    "index-without-concurrently",
    "constraint-without-not-valid",
    "set-not-null",
}


def ours(cls: Classification) -> set[tuple[str, int]]:
    out = set()
    for s in cls.contract_statements:
        for start, category in _REASONS.items():
            if s.reason.startswith(start):
                out.add((category, s.line))
    out |= {(f.rule, f.line) for f in cls.findings if f.rule in _FINDINGS}
    return out


def squawk(files: list[Path]) -> dict[Path, set[tuple[str, int]]]:
    """squawk's violations of the compared rules, each at the line its statement starts."""
    exe = squawk_path()
    assert exe is not None, "squawk (squawk-cli) is a test dependency"
    proc = subprocess.run(
        [exe, "--reporter", "json", *map(str, files)], capture_output=True, text=True, check=False
    )
    out: dict[Path, set[tuple[str, int]]] = {f: set() for f in files}
    for item in json.loads(proc.stdout):
        category = SQUAWK_RULES.get(item["rule_name"])
        if category is None:
            continue
        path = Path(item["file"])
        starts = [s.line for s in split_statements(path.read_text(), str(path))]
        line = item["line"] + 1  # squawk counts lines from 0
        out[path].add((category, max((s for s in starts if s <= line), default=1)))
    return out
