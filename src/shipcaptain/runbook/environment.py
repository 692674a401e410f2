"""The release's environment, as the runbook declares it (``environment:`` at its top).

It is a name (``production``) or a template over the parameters (``{{ env }}``), filled in
when the release is created; a runbook that declares none runs every release in the
environment ``default``. Nothing is inferred from a parameter's name: a runbook whose
parameter happens to be called ``env`` would otherwise run a production release without
the production lock or the production roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipcaptain.errors import UsageError
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import render_text

#: The environment of a release whose runbook declares none.
NO_ENVIRONMENT = "default"

#: Parameter names that read like an environment: validate asks for a declaration.
ENVIRONMENT_LIKE = frozenset({"environment", "env", "stage", "target_environment", "deploy_env"})


def release_environment(rb: Runbook, values: Mapping[str, Any]) -> str:
    """The environment of a release of ``rb`` with the parameter ``values``."""
    if rb.environment is None:
        return NO_ENVIRONMENT
    try:
        name = render_text(rb.environment, dict(values)).strip()
    except Exception as exc:
        raise UsageError(f"cannot fill in the runbook's environment: {exc}") from exc
    if not name:
        raise UsageError(
            f"the runbook's environment {rb.environment!r} is empty for these parameters"
        )
    return name


def relies_on_team_environments(people_roles: list[Mapping[str, Any]], tables: Any) -> list[str]:
    """The environments the team names (roles or permissions for one environment, not
    ``*``), sorted; empty when the team is the same everywhere."""
    named = {env for roles in people_roles for env in roles if env != "*"}
    for table in (tables or {}).values():
        named |= {env for env in table if env != "*"}
    return sorted(named)
