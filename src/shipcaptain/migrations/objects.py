"""Which database objects a statement creates, and which it refers to, by name.

Names are compared without their schema (``public.boards`` and ``boards`` are one name):
a migration's ``search_path`` is not known here, and treating two objects of one name as
the same errs on the side of "depends on", never "independent". A key is
``(kind, name)``, e.g. ``("table", "boards")``; a trigger's or policy's name includes its
table (``("trigger", "boards.set_updated_at")``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pglast import ast, enums

Key = tuple[str, str]

_OBJ = enums.ObjectType

#: object types whose drop loses nothing the file does not put back when it re-creates them
RECREATABLE = {"trigger", "policy", "function", "procedure", "view", "materialized view", "index"}


def object_kind(removetype: int) -> str:
    kind = _OBJ(removetype).name.removeprefix("OBJECT_").lower().replace("_", " ")
    return {"matview": "materialized view"}.get(kind, kind)


def bare(names: Any) -> str:
    """The last part of a (possibly schema-qualified) name given as String nodes."""
    parts = [str(n.sval) for n in names if isinstance(n, ast.String)]
    return parts[-1] if parts else "?"


def _rel(rel: Any) -> str:
    return str(rel.relname)


def drop_keys(node: Any) -> list[Key]:
    """The keys of the objects a DROP removes."""
    kind = object_kind(node.removeType)
    keys = []
    for obj in node.objects or ():
        if isinstance(obj, ast.ObjectWithArgs):
            keys.append((kind, bare(obj.objname)))
        elif isinstance(obj, ast.TypeName):
            keys.append((kind, bare(obj.names)))
        elif isinstance(obj, (tuple, list)):
            parts = [str(n.sval) for n in obj if isinstance(n, ast.String)]
            if kind in ("trigger", "policy", "rule") and len(parts) >= 2:
                keys.append((kind, f"{parts[-2]}.{parts[-1]}"))
            else:
                keys.append((kind, parts[-1] if parts else "?"))
        elif isinstance(obj, ast.String):
            keys.append((kind, str(obj.sval)))
    return keys


def created_keys(node: Any) -> list[Key]:
    """The keys of the objects a statement creates (or replaces)."""
    if isinstance(node, ast.CreateStmt):
        return [("table", _rel(node.relation))]
    if isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
        kind = "materialized view" if node.objtype == _OBJ.OBJECT_MATVIEW else "table"
        return [(kind, _rel(node.into.rel))]
    if isinstance(node, ast.ViewStmt):
        return [("view", _rel(node.view))]
    if isinstance(node, ast.CreateFunctionStmt):
        return [("procedure" if node.is_procedure else "function", bare(node.funcname))]
    if isinstance(node, ast.CreateTrigStmt):
        return [("trigger", f"{_rel(node.relation)}.{node.trigname}")]
    if isinstance(node, ast.CreatePolicyStmt):
        return [("policy", f"{_rel(node.table)}.{node.policy_name}")]
    if isinstance(node, ast.IndexStmt) and node.idxname:
        return [("index", node.idxname)]
    if isinstance(node, (ast.CreateEnumStmt, ast.CreateRangeStmt)):
        return [("type", bare(node.typeName))]
    if isinstance(node, ast.CompositeTypeStmt):
        return [("type", _rel(node.typevar))]
    if isinstance(node, ast.CreateDomainStmt):
        return [("domain", bare(node.domainname))]
    if isinstance(node, ast.CreateSeqStmt):
        return [("sequence", _rel(node.sequence))]
    if isinstance(node, ast.CreateSchemaStmt):
        return [("schema", node.schemaname or "?")]
    return []


def table_of(node: Any) -> str | None:
    """The table an ALTER TABLE, CREATE INDEX, trigger or policy statement works on."""
    for attr in ("relation", "table"):
        rel = getattr(node, attr, None)
        if isinstance(rel, ast.RangeVar):
            return _rel(rel)
    return None


def references(node: Any) -> set[str]:
    """Every name a statement mentions: tables, functions, types, schemas. A function's
    body is a string to the parser: every word in it counts as a name (more names than
    it uses, never fewer)."""
    names = set(_walk_names(node))
    if isinstance(node, ast.CreateFunctionStmt):
        for opt in node.options or ():
            if opt.defname == "as":
                for part in opt.arg or ():
                    if isinstance(part, ast.String):
                        names |= {w.lower() for w in _WORD.findall(part.sval or "")}
    return names


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _walk_names(node: Any) -> Iterator[str]:
    if isinstance(node, (tuple, list)):
        for item in node:
            yield from _walk_names(item)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, ast.RangeVar):
        yield _rel(node)
        if node.schemaname:
            yield str(node.schemaname)
    elif isinstance(node, ast.FuncCall):
        yield bare(node.funcname)
    elif isinstance(node, ast.TypeName) and node.names:
        name = bare(node.names)
        if len(node.names) == 1 or node.names[0].sval != "pg_catalog":
            yield name
    elif isinstance(node, ast.ObjectWithArgs) and node.objname:
        yield bare(node.objname)
    for name in node:  # a Node iterates over its attribute names
        yield from _walk_names(getattr(node, name))
