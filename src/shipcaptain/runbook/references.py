"""What a template reads of the steps' outputs: ``steps.<id>.<output>`` and deeper.

``inspect_template`` (templating) says which steps a template uses; this module also says
which of their outputs, so that ``validate`` can refuse ``steps.tag_release.comit`` or the
GitHub Actions spelling ``steps.tag_release.outputs.commit`` before a release starts
instead of failing the step (and perhaps rolling back) when it renders.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

_parser = SandboxedEnvironment()


@dataclass(frozen=True)
class OutputRef:
    """``steps.<step>.<output>[.<then>]``: ``then`` is the name read inside the output
    (the key after ``outputs`` in ``steps.x.outputs.y``), None when there is none."""

    step: str
    output: str
    then: str | None = None

    @property
    def text(self) -> str:
        return ".".join(["steps", self.step, self.output, *([self.then] if self.then else [])])


def _key(node: nodes.Node) -> str | None:
    """The constant name an attribute or item access reads, else None."""
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        value = node.arg.value
        return value if isinstance(value, str) else None
    return None


def _chain(node: nodes.Node) -> list[str] | None:
    """``steps.a.b.c`` as ``["a", "b", "c"]`` when ``node`` is an access chain on
    ``steps`` with constant names; None otherwise."""
    names: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        key = _key(node)
        if key is None:
            return None
        names.append(key)
        node = node.node
    if isinstance(node, nodes.Name) and node.name == "steps":
        return names[::-1]
    return None


def output_references(source: str) -> list[OutputRef]:
    """Every ``steps.<step>.<output>`` the template reads (once each, in order); a template
    that does not parse reads nothing here (its syntax error is reported elsewhere)."""
    try:
        tree = _parser.parse(source)
    except TemplateSyntaxError:
        return []
    found: dict[OutputRef, None] = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain = _chain(node)
        if chain is None or len(chain) < 2:
            continue
        ref = OutputRef(chain[0], chain[1], chain[2] if len(chain) > 2 else None)
        # the longest chain wins: steps.a.b.c also matches steps.a.b, keep one per output
        shorter = OutputRef(ref.step, ref.output)
        if ref.then is not None:
            found.pop(shorter, None)
            found[ref] = None
        elif not any(r.step == ref.step and r.output == ref.output for r in found):
            found[ref] = None
    return list(found)
