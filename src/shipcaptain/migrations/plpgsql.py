"""The SQL statements inside a ``DO`` block, parsed with PostgreSQL's PL/pgSQL parser
(pglast's ``parse_plpgsql``), each with its line in the migration file.

``EXECUTE 'literal'`` is parsed like any statement; ``EXECUTE`` of a string built at run
time cannot be analysed, and neither can a block in another language. ``COMMIT`` or
``ROLLBACK`` inside a block ends the migration's transaction part way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pglast
from pglast import ast, parser

_EXEC = "PLpgSQL_stmt_execsql"
_DYN = "PLpgSQL_stmt_dynexecute"
_PERFORM = "PLpgSQL_stmt_perform"
_TXN = {"PLpgSQL_stmt_commit": "COMMIT", "PLpgSQL_stmt_rollback": "ROLLBACK"}


def do_statements(node: Any, text: str, line: int) -> Iterator[tuple[Any, int, str]]:
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
