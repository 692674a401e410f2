"""The release's environment is declared, never guessed from a parameter's name."""

from __future__ import annotations

from typing import Any

import pytest

from shipcaptain.errors import UsageError
from shipcaptain.runbook.checks import check_environment, format_path
from shipcaptain.runbook.environment import release_environment
from shipcaptain.runbook.model import Runbook


def runbook(**extra: Any) -> Runbook:
    step = {"id": "a", "action": "shell", "with": {"command": extra.pop("command", "true")}}
    return Runbook.model_validate(
        {"name": "app", "phases": [{"id": "p", "steps": [step]}], **extra}
    )


def problems(rb: Runbook) -> list[tuple[str, str]]:
    return [(format_path(p), m) for p, m in check_environment(rb)]


def test_a_parameter_called_env_is_not_the_environment_until_declared() -> None:
    rb = runbook(parameters={"env": {"default": "production"}})
    assert release_environment(rb, {"env": "production"}) == "default"
    [(path, message)] = problems(rb)
    assert path == "parameters.env"
    assert 'environment: "{{ env }}"' in message
    declared = runbook(environment="{{ env }}", parameters={"env": {"default": "production"}})
    assert problems(declared) == []
    assert release_environment(declared, {"env": "production"}) == "production"
    assert release_environment(runbook(environment="staging"), {}) == "staging"


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"exclusive_environments": ["production", "eu-production"]}, "exclusive_environments"),
        ({"incidents": {"customer_facing": ["prod"]}}, "incidents.customer_facing"),
        ({"command": "deploy --to {{ release.environment }}"}, "phases[0].steps[0].with.command"),
    ],
)
def test_relying_on_environments_without_declaring_one_is_refused(
    extra: dict[str, Any], path: str
) -> None:
    [(found, message)] = problems(runbook(**extra))
    assert found == path
    assert "declare it at the top of the runbook" in message
    assert problems(runbook(environment="production", **extra)) == []


def test_the_declaration_uses_parameters_only() -> None:
    rb = runbook(environment="{{ steps.a.exit_code }}", parameters={"env": {}})
    [(path, message)] = problems(rb)
    assert path == "environment"
    assert "may use the parameters (env), not steps" in message
    with pytest.raises(UsageError, match="is empty"):
        release_environment(runbook(environment="{{ env }}", parameters={"env": {}}), {"env": ""})
