"""ALTER TABLE, command by command: what breaks the running app, what only adds, and which
commands lock or rewrite a table in use (findings). On a table made earlier in the same
file every command is expand: no app uses it yet."""

from __future__ import annotations

from typing import Any

from pglast import enums

from shipcaptain.migrations.verdicts import Effect, FileState

_AT = enums.AlterTableType

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


def alter_table(node: Any, line: int, state: FileState) -> tuple[Effect, str]:
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
    sub: Any, cmd: Any, table: str, line: int, new_table: bool, state: FileState
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
