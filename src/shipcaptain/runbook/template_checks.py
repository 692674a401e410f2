"""What ``validate`` checks in a template before any release renders it.

The sandbox (``template_sandbox``) refuses these at run time too; finding them here names
the file, line and field while the author is still editing, and ``plan`` never renders
them. For each template (without rendering it):

* ``{% include %}``, ``{% import %}`` and ``{% extends %}``: a template cannot read files;
* ``_``-prefixed attributes (``''.__class__``) and ``self``: Python internals;
* filters and tests that do not exist, and calls of anything but ``range``, macros and
  the data methods the sandbox allows (``'x'.ljust(9)``, ``''.format()``);
* constant expressions over the sandbox's limits (``'x' * 10**10``, ``range(10**9)``,
  ``2 ** 10**9``, ``'x' | center(10**9)``), found by folding them with the sandbox's own
  bounded operators;
* in a shell command line (an action's ``shell_params``), a value where it cannot be
  quoted (right after ``$`` or ``\\``, inside backticks ...).

Unknown names and unknown step outputs are checked in ``checks._check_templates``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext, Impossible

from shipcaptain.runbook.shell_quoting import ShellQuotingError, quote_values
from shipcaptain.runbook.template_sandbox import (
    ALLOWED_METHODS,
    TemplateRefused,
    TemplateSandbox,
    bounded_binop,
    bounded_range,
    misused_names,
)
from shipcaptain.runbook.templating import _envs

_METHODS = sorted(set().union(*ALLOWED_METHODS.values()))
_FILES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_FOLDED = (nodes.BinExpr, nodes.Call, nodes.Filter)


def template_problems(source: str, *, shell: bool = False) -> list[str]:
    """Messages for what the sandbox would refuse in ``source`` (empty when none, or when
    it does not parse: the syntax error is reported on its own)."""
    env = _envs()[0]
    try:
        tree = env.parse(source)
    except (TemplateSyntaxError, RecursionError):
        return []
    problems: list[str] = []
    macros = {m.name for m in tree.find_all(nodes.Macro)} | {"caller", "loop"}
    try:
        problems += misused_names(tree)
        for node in _walk(tree):
            problems += _node_problems(node, env, macros)
    except RecursionError:
        problems.append("the template is nested too deeply; split it into simpler parts")
    if shell:
        problems += _shell_problems(source)
    return list(dict.fromkeys(problems))


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def _node_problems(node: nodes.Node, env: TemplateSandbox, macros: set[str]) -> list[str]:
    if isinstance(node, _FILES):
        tag = type(node).__name__.lower().replace("fromimport", "from ... import")
        return [
            f"{{% {tag} %}} is not allowed: a runbook template cannot read other files; "
            "write the text in the runbook itself"
        ]
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return [_internal(node.attr)]
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
        and node.arg.value.startswith("_")
    ):
        return [_internal(node.arg.value)]
    problems = []
    if isinstance(node, nodes.Call):
        problems += _call_problems(node, macros)
    if isinstance(node, _FOLDED):
        problems += _folding_problems(node, env)
    return problems


def _internal(attr: str) -> str:
    return (
        f"attribute {attr!r} is not allowed: names starting with '_' are Python internals; "
        "use the value's own fields"
    )


def _call_problems(node: nodes.Call, macros: set[str]) -> list[str]:
    callee = node.node
    if isinstance(callee, nodes.Getattr) and callee.attr not in _METHODS:
        if callee.attr in macros:
            return []
        close = _suggest(callee.attr, _METHODS)
        return [
            f"calling .{callee.attr}() is not allowed in a template{close}; a template may call "
            "only data methods (.get, .items, .split, .upper ...) and filters: see "
            "'Templates' in the runbook format reference"
        ]
    return []


def _folding_problems(node: nodes.Expr, env: TemplateSandbox) -> list[str]:
    try:
        _fold(node, env)
    except (TemplateRefused, SecurityError) as exc:
        return [str(exc)]
    except Exception:
        pass
    return []


def _fold(node: nodes.Node, env: TemplateSandbox) -> Any:
    """The value of a constant expression, computed with the sandbox's bounded operators
    (Jinja itself does not fold the operators a sandbox intercepts); Impossible if it
    is not constant."""
    if isinstance(node, nodes.BinExpr) and node.operator in env.intercepted_binops:
        return bounded_binop(node.operator, _fold(node.left, env), _fold(node.right, env))
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        if node.node.name != "range" or node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise Impossible()
        return bounded_range(*(_fold(arg, env) for arg in node.args))
    if isinstance(node, nodes.Filter) and node.node is not None:
        function = env.filters.get(node.name)
        if function is None or getattr(function, "jinja_pass_arg", None) is not None:
            raise Impossible()
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise Impossible()
        return function(_fold(node.node, env), *(_fold(arg, env) for arg in node.args))
    if isinstance(node, nodes.Expr):
        return node.as_const(EvalContext(env))
    raise Impossible()


# ---- shell command lines ----------------------------------------------------------------

_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_OPT_OUT = re.compile(r"\|\s*(raw|shell_quote)\s*$")


def _shell_problems(source: str) -> list[str]:
    """Put a stand-in value where each ``{{ }}`` is and quote them as a render would."""
    values: list[str] = []

    def stand_in(match: re.Match[str]) -> str:
        if _OPT_OUT.search(match.group(1).strip()):
            return "1"
        values.append("1")  # a value that fits everywhere: the places are checked, not it
        return f"\x00{len(values) - 1}\x00"

    text = _EXPRESSION.sub(stand_in, _STATEMENT.sub("", source))
    try:
        quote_values(text, re.compile("\x00(\\d+)\x00"), values)
    except ShellQuotingError as exc:
        return [f"in a shell command: {exc}"]
    return []


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
