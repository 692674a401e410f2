"""Classify a migration, statement by statement, with PostgreSQL's own parser (pglast).

* **expand**: safe while the old app version runs (create table, add a nullable column or one
  with a constant default, create index concurrently, new function or policy, ...);
* **contract**: breaks the running app (drop or rename, change a column's type, set NOT NULL,
  drop a function, ...). A statement we do not know is contract.

A header comment ``-- shipcaptain: phase=expand`` (or ``contract``) overrides the verdict; the
override is shown. Lock risks (an index built without CONCURRENTLY, a foreign key or check
constraint without NOT VALID, a type change that rewrites the table) are findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pglast
from pglast import enums, parser

from shipcaptain.errors import Location, UsageError

Phase = Literal["expand", "contract"]

_HEADER = re.compile(r"^\s*--\s*shipcaptain:\s*phase\s*=\s*(\w+)\s*$", re.MULTILINE)

#: statements that only add things the old app does not know about
_EXPAND_NODES = {
    "CreateStmt",
    "CreateFunctionStmt",
    "CreatePolicyStmt",
    "CreateEnumStmt",
    "CompositeTypeStmt",
    "CreateSeqStmt",
    "ViewStmt",
    "CreateSchemaStmt",
    "CreateExtensionStmt",
    "CreateTrigStmt",
    "GrantStmt",
    "CommentStmt",
    "CreateDomainStmt",
    "VariableSetStmt",
    "InsertStmt",
    "AlterEnumStmt",
    "CreateTableAsStmt",
    "AlterPolicyStmt",
    "GrantRoleStmt",
    "CreateRoleStmt",
    "AlterDefaultPrivilegesStmt",
    "TransactionStmt",
}
_AT = enums.AlterTableType


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    statement: int  # 1-based index of the statement in the migration

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "statement": self.statement}


@dataclass(frozen=True)
class StatementVerdict:
    sql: str
    kind: str  # the parser's node name, e.g. AlterTableStmt
    phase: Phase
    reason: str
    transactional: bool = True


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "inferred_phase": self.inferred,
            "declared_phase": self.declared,
            "statements": [
                {
                    "kind": s.kind,
                    "phase": s.phase,
                    "reason": s.reason,
                    "transactional": s.transactional,
                }
                for s in self.statements
            ],
            "findings": [f.to_dict() for f in self.findings],
        }


def split_statements(sql: str, file: str = "<sql>") -> list[str]:
    try:
        return [s for s in parser.split(sql) if s.strip()]
    except parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        line = sql[:index].count("\n") + 1 if index is not None else None
        raise UsageError(
            f"SQL does not parse: {exc.args[0]}", location=Location(file, line)
        ) from exc


def classify_sql(sql: str, file: str = "<sql>") -> Classification:
    verdicts: list[StatementVerdict] = []
    findings: list[Finding] = []
    created: set[str] = set()
    for index, text in enumerate(split_statements(sql, file), start=1):
        node = pglast.parse_sql(text)[0].stmt
        verdicts.append(_classify(node, text, index, created, findings))
    inferred: Phase = "contract" if any(v.phase == "contract" for v in verdicts) else "expand"
    declared = _declared(sql, file)
    return Classification(
        phase=declared or inferred,
        statements=verdicts,
        findings=findings,
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


def _relname(rel: Any) -> str:
    return f"{rel.schemaname}.{rel.relname}" if getattr(rel, "schemaname", None) else rel.relname


def _classify(
    node: Any, text: str, index: int, created: set[str], findings: list[Finding]
) -> StatementVerdict:
    kind = type(node).__name__

    def verdict(phase: Phase, reason: str, transactional: bool = True) -> StatementVerdict:
        return StatementVerdict(text, kind, phase, reason, transactional)

    if kind == "CreateStmt":
        created.add(_relname(node.relation))
        return verdict("expand", "creates a table")
    if kind == "IndexStmt":
        if node.concurrent:
            return verdict("expand", "creates an index concurrently", transactional=False)
        if _relname(node.relation) not in created:
            findings.append(
                Finding(
                    "index-without-concurrently",
                    f"CREATE INDEX on {_relname(node.relation)} without CONCURRENTLY blocks writes "
                    "while it builds",
                    index,
                )
            )
        return verdict("expand", "creates an index")
    if kind == "AlterTableStmt":
        return _alter_table(node, text, index, created, findings)
    if kind == "RenameStmt":
        return verdict("contract", "renames an object the running app may use")
    if kind == "DropStmt":
        if enums.ObjectType(node.removeType) == enums.ObjectType.OBJECT_INDEX:
            return verdict("expand", "drops an index", transactional=not node.concurrent)
        what = enums.ObjectType(node.removeType).name.removeprefix("OBJECT_").lower()
        return verdict("contract", f"drops a {what}")
    if kind == "UpdateStmt":
        findings.append(
            Finding("backfill", "UPDATE rewrites rows and holds row locks until it commits", index)
        )
        return verdict("expand", "changes data (backfill)")
    if kind in ("VacuumStmt", "ReindexStmt") or (
        kind == "ReindexStmt" and getattr(node, "concurrent", False)
    ):
        return verdict("expand", "maintenance", transactional=kind != "VacuumStmt")
    if kind in _EXPAND_NODES:
        return verdict("expand", "adds something the old app does not use")
    if kind == "DoStmt":
        return verdict("contract", "DO block: its effect cannot be analysed")
    return verdict("contract", f"unknown statement ({kind}): treated as contract")


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


def _alter_table(
    node: Any, text: str, index: int, created: set[str], findings: list[Finding]
) -> StatementVerdict:
    table = _relname(node.relation)
    new_table = table in created
    phase: Phase = "expand"
    reasons: list[str] = []
    for cmd in node.cmds:
        sub = _AT(cmd.subtype)
        p, reason = _alter_cmd(sub, cmd, table, index, new_table, findings)
        reasons.append(reason)
        if p == "contract":
            phase = "contract"
    return StatementVerdict(text, "AlterTableStmt", phase, "; ".join(reasons))


def _alter_cmd(
    sub: Any, cmd: Any, table: str, index: int, new_table: bool, findings: list[Finding]
) -> tuple[Phase, str]:
    col = cmd.name
    if sub == _AT.AT_AddColumn:
        coldef = cmd.def_
        cons = {enums.ConstrType(c.contype) for c in (coldef.constraints or ())}
        if enums.ConstrType.CONSTR_DEFAULT in cons:
            default = next(
                c for c in coldef.constraints if c.contype == enums.ConstrType.CONSTR_DEFAULT
            )
            if _volatile(default.raw_expr):
                findings.append(
                    Finding(
                        "volatile-default",
                        f"adding {table}.{coldef.colname} with a non-constant default rewrites the "
                        "table",
                        index,
                    )
                )
            return "expand", f"adds column {coldef.colname} with a default"
        if enums.ConstrType.CONSTR_NOTNULL in cons and not new_table:
            return "contract", f"adds NOT NULL column {coldef.colname} without a default"
        return "expand", f"adds nullable column {coldef.colname}"
    if sub == _AT.AT_DropColumn:
        return "contract", f"drops column {col}"
    if sub == _AT.AT_AlterColumnType:
        if not new_table:
            findings.append(
                Finding(
                    "column-type-change",
                    f"changing the type of {table}.{col} may rewrite the table under an "
                    "ACCESS EXCLUSIVE lock",
                    index,
                )
            )
        return "contract", f"changes the type of column {col}"
    if sub == _AT.AT_SetNotNull:
        if not new_table:
            findings.append(
                Finding(
                    "set-not-null",
                    f"SET NOT NULL on {table}.{col} scans the table under an ACCESS EXCLUSIVE lock",
                    index,
                )
            )
        return "contract", f"sets NOT NULL on column {col}"
    if sub in (
        _AT.AT_DropNotNull,
        _AT.AT_ColumnDefault,
        _AT.AT_DropConstraint,
        _AT.AT_ValidateConstraint,
    ):
        return "expand", "relaxes or validates a column or constraint"
    if sub == _AT.AT_AddConstraint:
        con = cmd.def_
        ctype = enums.ConstrType(con.contype)
        if ctype in (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK) and not (
            con.skip_validation or new_table
        ):
            findings.append(
                Finding(
                    "constraint-without-not-valid",
                    f"adding a {ctype.name.removeprefix('CONSTR_').lower()} constraint on {table} "
                    "without NOT VALID scans the table under lock",
                    index,
                )
            )
        return "expand", f"adds a {ctype.name.removeprefix('CONSTR_').lower()} constraint"
    if sub in (_AT.AT_EnableRowSecurity, _AT.AT_ForceRowSecurity):
        if new_table:
            return "expand", "enables row level security on a new table"
        return "contract", "enables row level security: the running app may lose access"
    return "contract", f"unknown ALTER TABLE command {sub.name}: treated as contract"
