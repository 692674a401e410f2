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
from dataclasses import dataclass, field
from typing import Any, Literal

import pglast
from pglast import ast, enums, parser

from shipcaptain.errors import Location, UsageError
from shipcaptain.migrations.objects import (
    RECREATABLE,
    Key,
    bare,
    created_keys,
    drop_keys,
    references,
    table_of,
)

Phase = Literal["expand", "contract"]
Effect = Literal["expand", "contract", "neutral"]

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
_AT = enums.AlterTableType


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    statement: int  # 1-based index of the statement in the migration
    line: int = 0  # line in the file

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "statement": self.statement,
            "line": self.line,
        }


@dataclass(frozen=True)
class StatementVerdict:
    sql: str
    kind: str  # the parser's node name, e.g. AlterTableStmt
    phase: Effect
    reason: str
    transactional: bool = True
    line: int = 0  # where the statement starts in the file
    index_name: str | None = None  # the index a non-transactional statement builds or drops
    changes: frozenset[str] = frozenset()  # names of objects it creates, alters or drops
    refers: frozenset[str] = frozenset()  # names of objects it mentions
    opaque: bool = False  # dynamic SQL: its objects are not known
    commits: bool = False  # a DO block with COMMIT or ROLLBACK inside

    @property
    def transaction_control(self) -> bool:
        return self.kind == "TransactionStmt" or self.commits


@dataclass
class Classification:
    phase: Phase
    statements: list[StatementVerdict]
    findings: list[Finding] = field(default_factory=list)
    declared: Phase | None = None  # from the header comment
    inferred: Phase = "expand"

    @property
    def transactional(self) -> bool:
        return all(s.transactional for s in self.statements)

    @property
    def contract_statements(self) -> list[StatementVerdict]:
        return [s for s in self.statements if s.phase == "contract"]

    @property
    def wrapped(self) -> bool:
        """The file is ``BEGIN; ...; COMMIT;`` and has no other transaction control."""
        tc = [s for s in self.statements if s.transaction_control]
        return (
            len(tc) == 2
            and self.statements[0] is tc[0]
            and self.statements[-1] is tc[1]
            and _txkind(tc[0]) in ("BEGIN", "START")
            and _txkind(tc[1]) in ("COMMIT", "END")
        )

    @property
    def refusal(self) -> str | None:
        """Why the file cannot run as one transaction (transaction control inside it)."""
        tc = [s for s in self.statements if s.transaction_control]
        if not tc or self.wrapped:
            return None
        first = next(
            (s for s in tc if s is not self.statements[0] or _txkind(s) not in ("BEGIN", "START")),
            tc[0],
        )
        what = first.reason if first.commits else f"{_txkind(first)} at line {first.line}"
        return (
            f"{what} controls the transaction inside the file: "
            "a failure after it would leave part of the file applied; split the file there "
            "into two migrations, or remove it (shipcaptain runs each file as one transaction)"
        )

    @property
    def changes(self) -> set[str]:
        return set().union(*(s.changes for s in self.statements)) if self.statements else set()

    @property
    def refers(self) -> set[str]:
        return set().union(*(s.refers for s in self.statements)) if self.statements else set()

    @property
    def opaque(self) -> bool:
        return any(s.opaque for s in self.statements)

    @property
    def creates_unknown(self) -> bool:
        """It creates an extension: objects the file does not name."""
        return any(s.kind == "CreateExtensionStmt" for s in self.statements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "inferred_phase": self.inferred,
            "declared_phase": self.declared,
            "contract_because": [
                {"line": s.line, "kind": s.kind, "reason": s.reason}
                for s in self.contract_statements
            ],
            "refused": self.refusal,
            "statements": [
                {
                    "line": s.line,
                    "kind": s.kind,
                    "phase": s.phase,
                    "reason": s.reason,
                    "transactional": s.transactional,
                }
                for s in self.statements
            ],
            "findings": [f.to_dict() for f in self.findings],
        }


def _txkind(s: StatementVerdict) -> str:
    return s.sql.strip().split(None, 1)[0].upper().rstrip(";")


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


@dataclass
class _File:
    """What the classifier knows while it reads one file."""

    created: set[Key] = field(default_factory=set)  # made earlier in this file
    replaced: set[Key] = field(default_factory=set)  # ... by CREATE OR REPLACE only
    later: dict[Key, list[int]] = field(default_factory=dict)  # line(s) where a key is made
    findings: list[Finding] = field(default_factory=list)
    index: int = 0  # the statement being classified

    def new(self, kind: str, name: str) -> bool:
        return (kind, name) in self.created

    def new_table(self, name: str | None) -> bool:
        return name is not None and ("table", name) in self.created

    def finding(self, rule: str, message: str, line: int) -> None:
        self.findings.append(Finding(rule, message, self.index, line))


def classify_sql(sql: str, file: str = "<sql>") -> Classification:
    statements = split_statements(sql, file)
    state = _File()
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


def _statement(node: Any, text: str, line: int, state: _File) -> StatementVerdict:
    if isinstance(node, ast.DoStmt):
        return _do_block(node, text, line, state)
    phase, reason, transactional, index_name = _effect(node, line, state)
    changed = {name for _kind, name in created_keys(node)}
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


def _effect(node: Any, line: int, state: _File) -> tuple[Effect, str, bool, str | None]:
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
        return (*_alter_table(node, line, state), True, None)
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


def _drop(node: Any, line: int, state: _File) -> tuple[Effect, str]:
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
        how = "made earlier in" if all(k in state.created for k in keys) else "re-created by"
        return "expand", f"drops {', '.join(f'{k} {n}' for k, n in keys)} {how} this file"
    cascade = " (CASCADE)" if node.behavior == enums.DropBehavior.DROP_CASCADE else ""
    return "contract", f"drops {', '.join(breaking)}{cascade}"


def _rename(node: Any, state: _File) -> tuple[Effect, str]:
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


def _grant(node: Any, state: _File) -> tuple[Effect, str]:
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


#: functions whose value is fixed per transaction: PostgreSQL stores it without a rewrite
_STABLE_DEFAULTS = {"now", "statement_timestamp", "transaction_timestamp"}


def _volatile(expr: Any) -> bool:
    kind = type(expr).__name__
    if kind in ("A_Const", "SQLValueFunction"):
        return False
    if kind == "TypeCast":
        return _volatile(expr.arg)
    if kind == "FuncCall":
        return expr.funcname[-1].sval not in _STABLE_DEFAULTS or bool(expr.args)
    return True


def _alter_table(node: Any, line: int, state: _File) -> tuple[Effect, str]:
    table = node.relation.relname
    if enums.ObjectType(node.objtype) != enums.ObjectType.OBJECT_TABLE:
        what = enums.ObjectType(node.objtype).name.removeprefix("OBJECT_").lower()
        return "expand", f"changes a {what}"
    new_table = state.new_table(table)
    phase: Effect = "expand"
    reasons: list[str] = []
    for cmd in node.cmds:
        p, reason = _alter_cmd(_AT(cmd.subtype), cmd, table, line, new_table, state)
        reasons.append(reason)
        if p == "contract":
            phase = "contract"
    if new_table and phase == "expand":
        reasons.append(f"{table} was made in this file")
    return phase, "; ".join(reasons)


def _alter_cmd(
    sub: Any, cmd: Any, table: str, line: int, new_table: bool, state: _File
) -> tuple[Effect, str]:
    col = cmd.name
    if sub == _AT.AT_AddColumn:
        coldef = cmd.def_
        cons = {enums.ConstrType(c.contype) for c in (coldef.constraints or ())}
        if enums.ConstrType.CONSTR_DEFAULT in cons:
            default = next(
                c for c in coldef.constraints if c.contype == enums.ConstrType.CONSTR_DEFAULT
            )
            if _volatile(default.raw_expr) and not new_table:
                state.finding(
                    "volatile-default",
                    f"adding {table}.{coldef.colname} with a non-constant default rewrites the "
                    "table",
                    line,
                )
            return "expand", f"adds column {coldef.colname} with a default"
        if enums.ConstrType.CONSTR_FOREIGN in cons and not new_table:
            state.finding(
                "constraint-without-not-valid",
                f"adding {table}.{coldef.colname} with a foreign key checks every row under lock "
                "(add the column, then the constraint NOT VALID, then VALIDATE it)",
                line,
            )
        if enums.ConstrType.CONSTR_NOTNULL in cons and not new_table:
            return "contract", f"adds NOT NULL column {table}.{coldef.colname} without a default"
        return "expand", f"adds column {coldef.colname}"
    if new_table:
        return "expand", f"changes {table}, made in this file"
    if sub == _AT.AT_DropColumn:
        return "contract", f"drops column {table}.{col}"
    if sub == _AT.AT_AlterColumnType:
        state.finding(
            "column-type-change",
            f"changing the type of {table}.{col} may rewrite the table under an "
            "ACCESS EXCLUSIVE lock",
            line,
        )
        return "contract", f"changes the type of column {table}.{col}"
    if sub == _AT.AT_SetNotNull:
        state.finding(
            "set-not-null",
            f"SET NOT NULL on {table}.{col} scans the table under an ACCESS EXCLUSIVE lock",
            line,
        )
        return "contract", f"sets NOT NULL on column {table}.{col}"
    if sub in (
        _AT.AT_DropNotNull,
        _AT.AT_ColumnDefault,
        _AT.AT_DropConstraint,
        _AT.AT_ValidateConstraint,
        _AT.AT_ChangeOwner,
        _AT.AT_ReplicaIdentity,
        _AT.AT_SetStatistics,
        _AT.AT_SetOptions,
        _AT.AT_ResetOptions,
        _AT.AT_SetRelOptions,
        _AT.AT_ResetRelOptions,
        _AT.AT_AddIdentity,
        _AT.AT_SetIdentity,
        _AT.AT_EnableTrig,
        _AT.AT_EnableAlwaysTrig,
        _AT.AT_EnableReplicaTrig,
        _AT.AT_AddIndex,
    ):
        return "expand", f"{sub.name.removeprefix('AT_')} on {table}"
    if sub == _AT.AT_AddConstraint:
        con = cmd.def_
        ctype = enums.ConstrType(con.contype)
        what = ctype.name.removeprefix("CONSTR_").lower()
        if ctype in (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK) and not (
            con.skip_validation
        ):
            state.finding(
                "constraint-without-not-valid",
                f"adding a {what} constraint on {table} without NOT VALID scans the table "
                "under lock",
                line,
            )
        return "expand", f"adds a {what} constraint"
    if sub in (_AT.AT_EnableRowSecurity, _AT.AT_ForceRowSecurity):
        return "contract", f"enables row level security on {table}: the running app may lose access"
    if sub in (_AT.AT_DisableTrig, _AT.AT_DisableTrigAll, _AT.AT_DisableTrigUser):
        return "contract", f"disables a trigger on {table} the running app's writes rely on"
    return "contract", f"{sub.name.removeprefix('AT_')} on {table}: treated as contract"


# -- DO blocks -------------------------------------------------------------------------------

_EXEC = "PLpgSQL_stmt_execsql"
_DYN = "PLpgSQL_stmt_dynexecute"
_PERFORM = "PLpgSQL_stmt_perform"
_TXN = {"PLpgSQL_stmt_commit": "COMMIT", "PLpgSQL_stmt_rollback": "ROLLBACK"}


def _with_inner(node: Any, text: str, line: int) -> Iterator[tuple[Any, int]]:
    """The statement, or for a DO block each SQL statement inside it, with its line."""
    if not isinstance(node, ast.DoStmt):
        yield node, line
        return
    for inner, inner_line, _problem in _do_statements(node, text, line):
        if inner is not None:
            yield inner, inner_line


def _do_statements(node: Any, text: str, line: int) -> Iterator[tuple[Any, int, str]]:
    """``(parsed statement or None, line, problem)`` for each SQL statement in a DO block."""
    body = next((a for a in node.args if a.defname == "as"), None)
    language = next((a.arg.sval for a in node.args if a.defname == "language"), "plpgsql")
    if body is None or language.lower() != "plpgsql":
        yield None, line, f"DO block in {language}: its effect cannot be analysed"
        return
    first = line + text[: body.arg_location or 0].count("\n")
    source = (
        f"CREATE FUNCTION __do() RETURNS void LANGUAGE plpgsql AS $__sc__${body.arg.sval}$__sc__$"
    )
    try:
        tree = pglast.parse_plpgsql(source)
    except parser.ParseError as exc:
        yield None, line, f"DO block does not parse as PL/pgSQL: {exc.args[0]}"
        return
    for name, item in _plpgsql_items(tree):
        at = first + int(item.get("lineno", 1)) - 1
        if name in _TXN:
            yield None, at, f"{_TXN[name]} inside a DO block at line {at}"
            continue
        expr = item.get("sqlstmt") or item.get("query") or item.get("expr") or {}
        query = expr.get("PLpgSQL_expr", {})
        sql = query.get("query", "")
        if name == _DYN:
            literal = _string_literal(sql)
            if literal is None:
                yield None, at, f"DO block runs dynamic SQL at line {at}: it cannot be analysed"
                continue
            sql = literal
        try:
            stmts = pglast.parse_sql(sql)
        except parser.ParseError:
            yield None, at, f"DO block statement at line {at} does not parse"
            continue
        for raw in stmts:
            yield raw.stmt, at, ""


def _plpgsql_items(tree: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_items(item)
    elif isinstance(tree, dict):
        for key, value in tree.items():
            if (key in (_EXEC, _DYN, _PERFORM) or key in _TXN) and isinstance(value, dict):
                yield key, value
            else:
                yield from _plpgsql_items(value)


def _string_literal(expr: str) -> str | None:
    try:
        node: Any = pglast.parse_sql(f"SELECT {expr}")[0].stmt
    except parser.ParseError:
        return None
    target = node.targetList[0].val if node.targetList and len(node.targetList) == 1 else None
    if isinstance(target, ast.A_Const) and isinstance(target.val, ast.String):
        return str(target.val.sval)
    return None


def _do_block(node: Any, text: str, line: int, state: _File) -> StatementVerdict:
    verdicts: list[StatementVerdict] = []
    problems: list[str] = []
    for inner, at, problem in _do_statements(node, text, line):
        if inner is None:
            problems.append(problem)
        else:
            verdicts.append(_statement(inner, "", at, state))
    contract = [v for v in verdicts if v.phase == "contract"]
    changes = frozenset().union(*(v.changes for v in verdicts)) if verdicts else frozenset()
    refers = frozenset().union(*(v.refers for v in verdicts)) if verdicts else frozenset()
    phase: Effect
    if problems:
        phase, reason = "contract", problems[0]
    elif contract:
        phase = "contract"
        reason = "DO block: " + "; ".join(f"line {v.line}: {v.reason}" for v in contract)
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
        opaque=bool(problems),
        commits=any(" inside a DO block" in p for p in problems),
    )
