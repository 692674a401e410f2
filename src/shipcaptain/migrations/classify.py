"""Classify a migration by its effect on the objects that existed before it, statement by
statement, with PostgreSQL's own parser (pglast).

* **expand**: safe while the old app version runs (create table, add a nullable column or one
  with a constant default, create index concurrently, new function or policy, ...);
* **contract**: breaks the running app (drop or rename, change a column's type, set NOT NULL,
  drop a function, revoke, delete rows, ...). A statement we do not know is contract;
* **neutral** (a statement only): reads, session settings (``SET``, ``select set_config(...)``),
  comments, ``NOTIFY``, transaction control.

What the file itself made is not the running app's: changing, dropping or re-creating an
object created earlier in the same file is not breaking, and neither is dropping a trigger,
policy, function, view or index that the file creates again. ``DO`` blocks are parsed
(PL/pgSQL) and classified by the statements inside them; dynamic SQL built at run time
cannot be analysed and makes the block contract. Every contract verdict names its statement
and line.

A header comment ``-- shipcaptain: phase=expand`` (or ``contract``) overrides the verdict; the
override is shown. Lock risks (an index built without CONCURRENTLY, a foreign key or check
constraint without NOT VALID, a type change that rewrites the table) are findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pglast
from pglast import ast, enums, parser

from shipcaptain.errors import Location, UsageError
from shipcaptain.migrations.alter_table import alter_table
from shipcaptain.migrations.objects import (
    RECREATABLE,
    Key,
    bare,
    created_keys,
    drop_keys,
    references,
    table_of,
)
from shipcaptain.migrations.plpgsql import DYNAMIC, do_statements
from shipcaptain.migrations.verdicts import (
    Classification,
    Effect,
    FileState,
    Phase,
    StatementVerdict,
)

_HEADER = re.compile(r"^\s*--\s*shipcaptain:\s*phase\s*=\s*(\w+)\s*$", re.MULTILINE)
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)

#: statements that only add things the old app does not know about
_EXPAND_NODES = {
    "CreateFunctionStmt": "creates or replaces a function",
    "CreatePolicyStmt": "creates a policy",
    "CreateEnumStmt": "creates a type",
    "CreateRangeStmt": "creates a type",
    "CompositeTypeStmt": "creates a type",
    "CreateSeqStmt": "creates a sequence",
    "ViewStmt": "creates or replaces a view",
    "CreateSchemaStmt": "creates a schema",
    "CreateExtensionStmt": "creates an extension",
    "AlterExtensionStmt": "updates an extension",
    "CreateTrigStmt": "creates a trigger",
    "CreateDomainStmt": "creates a domain",
    "InsertStmt": "inserts rows",
    "CreateTableAsStmt": "creates a table from a query",
    "AlterPolicyStmt": "changes a policy",
    "CreateRoleStmt": "creates a role",
    "AlterRoleStmt": "changes a role",
    "AlterRoleSetStmt": "changes a role's settings",
    "AlterDefaultPrivilegesStmt": "changes default privileges",
    "AlterFunctionStmt": "changes a function's settings",
    "AlterOwnerStmt": "changes an owner",
    "AlterSeqStmt": "changes a sequence",
    "AlterDomainStmt": "changes a domain",
    "CreatePublicationStmt": "creates a publication",
    "CreateEventTrigStmt": "creates an event trigger",
    "CreateCastStmt": "creates a cast",
    "DefineStmt": "defines an aggregate, operator or type",
    "RuleStmt": "creates a rule",
    "CreateStatsStmt": "creates statistics",
    "RefreshMatViewStmt": "refreshes a materialized view",
    "SecLabelStmt": "sets a security label",
}
#: statements that change nothing the app sees
_NEUTRAL_NODES = {
    "VariableSetStmt": "session setting",
    "VariableShowStmt": "reads a setting",
    "TransactionStmt": "transaction control",
    "CommentStmt": "comment",
    "NotifyStmt": "notification",
    "ListenStmt": "listen",
    "ExplainStmt": "explain",
    "CheckPointStmt": "checkpoint",
    "DiscardStmt": "session reset",
    "LockStmt": "lock",
}
#: functions a plain SELECT may call and stay neutral: reads and session settings
_NEUTRAL_FUNCTIONS = {
    "set_config",
    "current_setting",
    "pg_sleep",
    "now",
    "count",
    "version",
    "current_user",
    "pg_notify",
    "to_regclass",
    "has_table_privilege",
    "pg_advisory_xact_lock",
    "exists",
    "format",
    "coalesce",
    "unnest",
    "array_agg",
    "lower",
    "upper",
    "length",
    "jsonb_build_object",
    "json_build_object",
}


@dataclass(frozen=True)
class Statement:
    text: str
    line: int
    start: int  # offset in the file


def split_statements(sql: str, file: str = "<sql>") -> list[Statement]:
    try:
        slices = parser.split(sql, only_slices=True)
    except parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        line = sql[:index].count("\n") + 1 if index is not None else None
        raise UsageError(
            f"SQL does not parse: {exc.args[0]}", location=Location(file, line)
        ) from exc
    out = []
    for sl in slices:  # from the statement's first token: comments before it are not its own
        start = _LEADING.match(sql, sl.start, sl.stop).end()  # type: ignore[union-attr]
        text = sql[start : sl.stop]
        if text.strip():
            out.append(Statement(text, sql.count("\n", 0, start) + 1, start))
    return out


def classify_sql(sql: str, file: str = "<sql>") -> Classification:
    statements = split_statements(sql, file)
    state = FileState()
    parsed = [(st, pglast.parse_sql(st.text)[0].stmt) for st in statements]
    for st, node in parsed:  # where each object is (re-)created, DO blocks included
        for inner, line in _with_inner(node, st.text, st.line):
            for key in created_keys(inner):
                state.later.setdefault(key, []).append(line)
    verdicts = []
    for index, (st, node) in enumerate(parsed, start=1):
        state.index = index
        verdicts.append(_statement(node, st.text, st.line, state))
    inferred: Phase = "contract" if any(v.phase == "contract" for v in verdicts) else "expand"
    declared = _declared(sql, file)
    return Classification(
        phase=declared or inferred,
        statements=verdicts,
        findings=state.findings,
        declared=declared,
        inferred=inferred,
    )


def _declared(sql: str, file: str) -> Phase | None:
    match = _HEADER.search(sql)
    if match is None:
        return None
    value = match.group(1)
    if value not in ("expand", "contract"):
        line = sql[: match.start()].count("\n") + 1
        raise UsageError(
            f"phase must be expand or contract, not {value!r}",
            location=Location(file, line, "shipcaptain: phase"),
        )
    return value  # type: ignore[return-value]


def _statement(node: Any, text: str, line: int, state: FileState) -> StatementVerdict:
    if isinstance(node, ast.DoStmt):
        return _do_block(node, text, line, state)
    phase, reason, transactional, index_name = _effect(node, line, state)
    changed = {name for _kind, name in created_keys(node)}
    if phase == "contract":  # whatever it names may be what breaks: count all of it
        changed |= references(node)
    if phase != "neutral":
        target = table_of(node)
        if target:
            changed.add(target)
        if isinstance(node, ast.DropStmt):
            changed |= {name.rsplit(".", 1)[-1] for _k, name in drop_keys(node)}
    for key in created_keys(node):
        if getattr(node, "replace", False) and key not in state.created:
            state.replaced.add(key)
        state.created.add(key)
    if isinstance(node, ast.DropStmt):
        state.created -= set(drop_keys(node))
    return StatementVerdict(
        text,
        type(node).__name__,
        phase,
        reason,
        transactional,
        line,
        index_name,
        frozenset(changed),
        frozenset(references(node)),
    )


def _effect(node: Any, line: int, state: FileState) -> tuple[Effect, str, bool, str | None]:
    kind = type(node).__name__
    if kind == "CreateStmt":
        return "expand", f"creates table {node.relation.relname}", True, None
    if kind == "IndexStmt":
        table = node.relation.relname
        if node.concurrent:
            return "expand", "creates an index concurrently", False, node.idxname
        if not state.new_table(table):
            state.finding(
                "index-without-concurrently",
                f"CREATE INDEX on {table} without CONCURRENTLY blocks writes while it builds",
                line,
            )
        return "expand", "creates an index", True, None
    if kind == "AlterTableStmt":
        return (*alter_table(node, line, state), True, None)
    if kind == "RenameStmt":
        return (*_rename(node, state), True, None)
    if kind == "DropStmt":
        return (*_drop(node, line, state), not node.concurrent, _dropped_index(node))
    if kind == "UpdateStmt":
        if state.new_table(node.relation.relname):
            return "expand", "changes rows of a table made in this file", True, None
        state.finding("backfill", "UPDATE rewrites rows and holds row locks until it commits", line)
        return "expand", "changes data (backfill)", True, None
    if kind in ("DeleteStmt", "TruncateStmt"):
        tables = (
            [node.relation.relname] if kind == "DeleteStmt" else [r.relname for r in node.relations]
        )
        if all(state.new_table(t) for t in tables):
            return "expand", "removes rows of a table made in this file", True, None
        return "contract", f"deletes rows of {', '.join(tables)}", True, None
    if kind == "SelectStmt":
        return (*_select(node), True, None)
    if kind == "GrantStmt":
        return (*_grant(node, state), True, None)
    if kind == "GrantRoleStmt":
        if node.is_grant:
            return "expand", "grants a role", True, None
        return "contract", "revokes a role the running app may use", True, None
    if kind == "AlterEnumStmt":
        if node.oldVal:
            return "contract", f"renames enum value {node.oldVal!r}", True, None
        return "expand", f"adds enum value {node.newVal!r}", True, None
    if kind == "AlterPublicationStmt":
        if node.action == enums.AlterPublicationAction.AP_DropObjects:
            return "contract", "removes tables from a publication", True, None
        return "expand", "changes a publication", True, None
    if kind in ("VacuumStmt", "ReindexStmt"):
        concurrent = kind == "ReindexStmt" and any(
            p.defname == "concurrently" for p in (node.params or ())
        )
        return "expand", "maintenance", not (kind == "VacuumStmt" or concurrent), None
    if kind in _EXPAND_NODES:
        return "expand", _EXPAND_NODES[kind], True, None
    if kind in _NEUTRAL_NODES:
        return "neutral", _NEUTRAL_NODES[kind], True, None
    return "contract", f"unknown statement ({kind}): treated as contract", True, None


def _dropped_index(node: Any) -> str | None:
    if enums.ObjectType(node.removeType) == enums.ObjectType.OBJECT_INDEX and node.objects:
        return bare(node.objects[0])
    return None


def _drop(node: Any, line: int, state: FileState) -> tuple[Effect, str]:
    keys = drop_keys(node)
    if all(kind == "index" for kind, _n in keys):
        return "expand", "drops an index"
    breaking = []
    for kind, name in keys:
        if (kind, name) in state.created:
            continue
        if kind in RECREATABLE and any(at > line for at in state.later.get((kind, name), [])):
            continue  # made again further down: the file puts back what it drops
        breaking.append(f"{kind} {name}")
    if not breaking:
        how = (
            "made earlier in this file"
            if all(k in state.created for k in keys)
            else "which this file creates again"
        )
        return "expand", f"drops {', '.join(f'{k} {n}' for k, n in keys)}, {how}"
    cascade = " (CASCADE)" if node.behavior == enums.DropBehavior.DROP_CASCADE else ""
    return "contract", f"drops {', '.join(breaking)}{cascade}"


def _rename(node: Any, state: FileState) -> tuple[Effect, str]:
    what = enums.ObjectType(node.renameType).name.removeprefix("OBJECT_").lower()
    rel = node.relation.relname if node.relation is not None else None
    if state.new_table(rel):
        return "expand", f"renames a {what} of {rel}, made in this file"
    target = f"{rel}.{node.subname}" if rel and node.subname else (rel or node.subname or "")
    return "contract", f"renames {what} {target} to {node.newname}".replace("  ", " ")


def _select(node: Any) -> tuple[Effect, str]:
    if node.intoClause is not None:
        return "expand", "creates a table from a query"
    unknown = sorted(set(_function_calls(node)) - _NEUTRAL_FUNCTIONS)
    if unknown:
        return "contract", f"calls {', '.join(f'{n}()' for n in unknown)}: effect unknown"
    return "neutral", "reads or sets a session setting"


def _function_calls(node: Any) -> Iterator[str]:
    if isinstance(node, (tuple, list)):
        for item in node:
            yield from _function_calls(item)
    elif isinstance(node, ast.Node):
        if isinstance(node, ast.FuncCall):
            yield bare(node.funcname)
        for name in node:
            yield from _function_calls(getattr(node, name))


def _grant(node: Any, state: FileState) -> tuple[Effect, str]:
    if node.is_grant:
        return "expand", "grants privileges"
    # a function the file made with CREATE OR REPLACE may have existed: only a plain CREATE
    # (or a table's CREATE ... IF NOT EXISTS) proves that nobody used it before
    keys: list[Key] = [
        ("table", str(o.relname))
        if isinstance(o, ast.RangeVar)
        else ("function", bare(o.objname))
        if isinstance(o, ast.ObjectWithArgs)
        else ("?", "?")
        for o in (node.objects or ())
    ]
    if keys and all(k in state.created and k not in state.replaced for k in keys):
        return "expand", "revokes privileges on objects made in this file"
    on = f" on {', '.join(n for _k, n in keys)}" if keys else ""
    return "contract", f"revokes privileges{on} the running app may use"


def _with_inner(node: Any, text: str, line: int) -> Iterator[tuple[Any, int]]:
    """The statement, or for a DO block each SQL statement inside it, with its line."""
    if not isinstance(node, ast.DoStmt):
        yield node, line
        return
    for inner in do_statements(node, text, line):
        if inner.stmt is not None:
            yield inner.stmt, inner.line


def _do_block(node: Any, text: str, line: int, state: FileState) -> StatementVerdict:
    verdicts: list[StatementVerdict] = []
    problems: list[str] = []
    dynamic = commits = False
    for inner in do_statements(node, text, line):
        commits = commits or inner.commits
        if inner.stmt is None:
            problems.append(inner.problem)
        else:
            verdicts.append(_statement(inner.stmt, "", inner.line, state))
            dynamic = dynamic or inner.dynamic
    contract = [v for v in verdicts if v.phase == "contract"]
    changes = frozenset().union(*(v.changes for v in verdicts)) if verdicts else frozenset()
    refers = frozenset().union(*(v.refers for v in verdicts)) if verdicts else frozenset()
    phase: Effect
    if problems:
        phase, reason = "contract", problems[0]
    elif contract:
        phase = "contract"
        reason = "DO block: " + "; ".join(f"line {v.line}: {v.reason}" for v in contract)
        reason = reason.replace(DYNAMIC, "<a name computed at run time>")
    elif any(v.phase == "expand" for v in verdicts):
        phase = "expand"
        reason = "DO block: " + "; ".join(sorted({v.reason for v in verdicts}))
    else:
        phase, reason = "neutral", "DO block that changes nothing the app sees"
    return StatementVerdict(
        text,
        "DoStmt",
        phase,
        reason,
        all(v.transactional for v in verdicts),
        line,
        None,
        changes,
        refers,
        opaque=bool(problems) or dynamic,
        commits=commits,
    )
