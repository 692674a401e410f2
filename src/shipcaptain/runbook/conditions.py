"""Conditional steps: a step's ``when:`` is a Jinja expression over the release's values
(``environment == 'production'``, ``steps.changelog.migrations``); false skips the step.

The expression sees what a step's templates see (``steps`` holds the outputs of the steps
that finished before it). It is evaluated in the same sandbox as templates, when the step
would start; ``plan`` evaluates it already when it reads only the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipcaptain.errors import Location, RunbookProblem
from shipcaptain.runbook.templating import TemplateUse, inspect_template, render_text


def as_template(expression: str) -> str:
    """The condition as a template that renders ``true`` or ``false``."""
    return "{% if (" + expression + ") %}true{% else %}false{% endif %}"


def inspect_condition(expression: str) -> TemplateUse:
    """What the condition reads; RunbookProblem for a syntax error."""
    if any(marker in expression for marker in ("{{", "{%", "}}", "%}")):
        raise RunbookProblem(
            "write the condition as an expression, without {{ }}: e.g. "
            "when: \"environment == 'production'\""
        )
    return inspect_template(as_template(expression))


def condition_holds(
    expression: str, context: Mapping[str, Any], *, location: Location | None = None
) -> bool:
    """Evaluate the condition; RunbookProblem if it cannot be (a name that is not there)."""
    return render_text(as_template(expression), context, location=location) == "true"


def skip_reason(expression: str) -> str:
    return f"skipped: when {expression!r} is false"
