"""Checks of a runbook's comms that need the step graph: an ``announce`` step sends a
template that exists, and a message that cites checks is sent only after them.

The runbook's completion message says "Key smoke tests passed: ..." and asks the feature
owners for their final sign-off: sent before those smoke tests finished it would claim
what nobody knows yet; a validation error says which ``needs`` are missing.
"""

from __future__ import annotations

from shipcaptain.runbook.checks import Problem, _earlier_steps, _forward_steps, _suggest
from shipcaptain.runbook.model import Runbook


def smoke_steps(rb: Runbook) -> list[str]:
    """The steps whose success a message cites as ``release.smoke_tests_passed``."""
    if rb.comms.smoke_tests is not None:
        return [s for s in rb.comms.smoke_tests if s in rb.steps]
    return [sid for sid, step in rb.steps.items() if step.action in ("smoke", "health")]


def check_announcements(rb: Runbook) -> list[Problem]:
    problems: list[Problem] = []
    phases = [p.id for p in rb.phases]
    for i, pid in enumerate(rb.comms.start_after or []):
        if pid not in phases:
            msg = f"unknown phase {pid!r}{_suggest(pid, phases)}"
            problems.append((("comms", "start_after", i), msg))
    earlier = _earlier_steps(rb)
    templates = rb.comms.templates
    for path, step in _forward_steps(rb):
        if step.action != "announce":
            continue
        name = step.with_.get("template")
        if not isinstance(name, str):
            continue  # the action's own parameters check says what is wrong
        if name not in templates:
            known = ", ".join(templates) or "none"
            msg = f"unknown comms template {name!r}; known: {known}"
            problems.append(((*path, "with", "template"), msg))
            continue
        if "smoke_tests_passed" not in templates[name]:
            continue
        missing = [s for s in smoke_steps(rb) if s not in earlier.get(step.id, set())]
        if missing:
            msg = (
                f"the {name!r} message cites the smoke tests passed, but this step does not "
                f"wait for {', '.join(missing)}: add them (or a step after them) to needs"
            )
            problems.append(((*path, "needs"), msg))
    return problems
