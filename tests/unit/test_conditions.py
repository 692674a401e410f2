"""Conditional steps (`when:`): checked by validate, shown by plan with the reason a step
will be skipped."""

from __future__ import annotations

from typing import Any

from shipcaptain.actions.registry import registry
from shipcaptain.plan import make_plan
from shipcaptain.runbook.checks import check_runbook, format_path
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import resolve_parameters


def runbook(when: str, **extra: Any) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "app",
            "environment": "{{ environment }}",
            "parameters": {"environment": {"default": "staging"}},
            "phases": [
                {
                    "id": "p",
                    "steps": [
                        {"id": "tag", "action": "shell", "with": {"command": "true"}},
                        {
                            "id": "lint",
                            "action": "shell",
                            "needs": ["tag"],
                            "when": when,
                            "with": {"command": "true"},
                        },
                        {"id": "other", "action": "shell", "with": {"command": "true"}},
                    ],
                }
            ],
            **extra,
        }
    )


def problems(rb: Runbook) -> list[tuple[str, str]]:
    return [(format_path(p), m) for p, m in check_runbook(rb, registry)]


def test_a_valid_condition_passes() -> None:
    assert problems(runbook("environment == 'production' and steps.tag.exit_code == 0")) == []


def test_conditions_are_checked_like_templates() -> None:
    where = "phases[0].steps[1].when"
    [(path, message)] = problems(runbook("{{ environment }}"))
    assert (path, "write the condition as an expression") == (where, message[:36])
    [(path, message)] = problems(runbook("enviroment == 'production'"))
    assert path == where
    assert "unknown name 'enviroment' in the condition" in message
    [(path, message)] = problems(runbook("steps.other.exit_code == 0"))
    assert "reads step 'other', which is not sure to have run before 'lint'" in message
    assert problems(runbook("steps.tag.exit_cod == 0")) == []  # a shell's outputs are open
    [(path, message)] = problems(runbook("steps.tag.outputs.exit_code == 0"))
    assert "did you mean steps.tag.exit_code?" in message
    [(path, message)] = problems(runbook("environment ==="))
    assert "template syntax error" in message


def test_plan_shows_why_a_step_will_be_skipped() -> None:
    rb = runbook("environment == 'production'")
    plan = make_plan(rb, resolve_parameters(rb, {}), registry)
    lint = next(s for s in plan.steps if s.id == "lint")
    assert (
        lint.skipped
        == "skipped: when \"environment == 'production'\" is false (environment=staging)"
    )
    production = make_plan(rb, resolve_parameters(rb, {"environment": "production"}), registry)
    assert next(s for s in production.steps if s.id == "lint").skipped is None
    # a condition on what an earlier step outputs is decided when the step would start
    later = make_plan(runbook("steps.tag.exit_code == 0"), {"environment": "staging"}, registry)
    step = next(s for s in later.steps if s.id == "lint")
    assert (step.when, step.skipped) == ("steps.tag.exit_code == 0", None)
