"""The SQL statements inside a ``DO`` block, parsed with PostgreSQL's PL/pgSQL parser
(pglast's ``parse_plpgsql``), each with its line in the migration file.

``EXECUTE 'literal'`` is parsed like any statement. ``EXECUTE`` of a string built at run
time (``'GRANT ... TO ' || role``, ``format('DROP TABLE %I', t)``) is parsed from its
template, each computed part standing for a name: its effect is known, the objects it names
are not. Anything else it executes, and a block in another language, cannot be analysed.
``COMMIT`` or ``ROLLBACK`` inside a block ends the migration's transaction part way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pglast
from pglast import ast, parser

_EXEC = "PLpgSQL_stmt_execsql"
_DYN = "PLpgSQL_stmt_dynexecute"
_PERFORM = "PLpgSQL_stmt_perform"
_TXN = {"PLpgSQL_stmt_commit": "COMMIT", "PLpgSQL_stmt_rollback": "ROLLBACK"}


@dataclass(frozen=True)
class Inner:
    """One SQL statement in a DO block (``stmt`` None: ``problem`` says why)."""

    stmt: Any
    line: int
    problem: str = ""
    dynamic: bool = False  # parsed from the template of SQL built at run time
    commits: bool = False  # COMMIT or ROLLBACK


#: what stands for a computed part of dynamic SQL
DYNAMIC = "__dynamic__"


def do_statements(node: Any, text: str, line: int) -> Iterator[Inner]:
    """Each SQL statement in a DO block, with its line in the file."""
    body = next((a for a in node.args if a.defname == "as"), None)
    language = next((a.arg.sval for a in node.args if a.defname == "language"), "plpgsql")
    if body is None or language.lower() != "plpgsql":
        yield Inner(None, line, f"DO block in {language}: its effect cannot be analysed")
        return
    first = line + text[: body.arg_location or 0].count("\n")
    source = (
        f"CREATE FUNCTION __do() RETURNS void LANGUAGE plpgsql AS $__sc__${body.arg.sval}$__sc__$"
    )
    try:
        tree = pglast.parse_plpgsql(source)
    except parser.ParseError as exc:
        yield Inner(None, line, f"DO block does not parse as PL/pgSQL: {exc.args[0]}")
        return
    for name, item in _plpgsql_items(tree):
        at = first + int(item.get("lineno", 1)) - 1
        if name in _TXN:
            yield Inner(None, at, f"{_TXN[name]} inside a DO block at line {at}", commits=True)
            continue
        expr = item.get("sqlstmt") or item.get("query") or item.get("expr") or {}
        query = expr.get("PLpgSQL_expr", {})
        sql = query.get("query", "")
        dynamic = False
        if name == _DYN:
            literal, dynamic = _template(sql)
            if literal is None:
                yield Inner(
                    None, at, f"DO block runs dynamic SQL at line {at}: it cannot be analysed"
                )
                continue
            sql = literal
        try:
            stmts = pglast.parse_sql(sql)
        except parser.ParseError:
            what = "dynamic SQL whose template" if dynamic else "statement"
            yield Inner(None, at, f"DO block {what} at line {at} does not parse")
            continue
        for raw in stmts:
            yield Inner(raw.stmt, at, dynamic=dynamic)


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


def _template(expr: str) -> tuple[str | None, bool]:
    """The SQL an EXECUTE expression runs: ``(text, False)`` for a string literal, ``(template,
    True)`` for ``'...' || x || '...'`` or ``format('...%I...', x)``, ``(None, ...)`` for
    anything else."""
    try:
        node: Any = pglast.parse_sql(f"SELECT {expr}")[0].stmt
    except parser.ParseError:
        return None, False
    target = node.targetList[0].val if node.targetList and len(node.targetList) == 1 else None
    literal = _const(target)
    if literal is not None:
        return literal, False
    if isinstance(target, ast.A_Expr) and _operator(target) == "||":
        parts = [p if (p := _const(x)) is not None else DYNAMIC for x in _concatenated(target)]
        return "".join(parts), True
    if (
        isinstance(target, ast.FuncCall)
        and target.funcname
        and target.funcname[-1].sval == "format"
        and target.args
        and (fmt := _const(target.args[0])) is not None
    ):
        return _FORMAT.sub(_placeholder, fmt).replace("%%", "%"), True
    return None, False


_FORMAT = re.compile(r"%(?:\d+\$)?-?\d*([IsL])")


def _placeholder(match: re.Match[str]) -> str:
    return f"'{DYNAMIC}'" if match.group(1) == "L" else DYNAMIC


def _const(node: Any) -> str | None:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return str(node.val.sval)
    return None


def _operator(node: Any) -> str:
    return "".join(str(n.sval) for n in node.name or () if isinstance(n, ast.String))


def _concatenated(node: Any) -> Iterator[Any]:
    for side in (node.lexpr, node.rexpr):
        if isinstance(side, ast.A_Expr) and _operator(side) == "||":
            yield from _concatenated(side)
        else:
            yield side
