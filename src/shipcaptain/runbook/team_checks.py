"""What only the team file can tell about a runbook: gates nobody can answer.

A gate (an approval's ``roles``, a checklist's or an announce step's ``confirm_by``, a
plug-in's ``role_params``) names runbook roles. The runbook never gives anyone a role: the
team file does, and a role's runbook ``members`` only narrow it. A gate whose role nobody
in the team file holds (in any environment), or whose members hold it nowhere, waits for
an answer that cannot come. ``validate --team`` refuses it, naming the gate, its field and
the team's closest role.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from shipcaptain.runbook.catalogue import ActionCatalogue
from shipcaptain.runbook.checks import GATE_ROLE_PARAMS, Problem, _action_calls, quorum_problems
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import has_template


def team_problems(
    rb: Runbook, registry: ActionCatalogue, holders: Mapping[str, Collection[str]], team_file: str
) -> list[Problem]:
    """Gates nobody in the team can answer, then approvals whose quorum its holders cannot
    reach. ``holders``: role -> the people the team file gives it to."""
    problems: list[Problem] = []
    names = registry.names()
    for path, action_name, params in _action_calls(rb):
        if action_name not in names:
            continue  # reported by check_runbook
        action = registry.get(action_name)
        keys = getattr(action, "role_params", None) or GATE_ROLE_PARAMS.get(action_name, ())
        for key in keys:
            value = params.get(key)
            named = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            for k, role in enumerate(named):
                if not isinstance(role, str) or has_template(role) or role not in rb.roles:
                    continue  # a template, or an unknown role (reported by check_runbook)
                why = _nobody(rb, role, holders, team_file)
                if why:
                    sub = (key,) if isinstance(value, str) else (key, k)
                    gate = path[-1] if path[0] == "guards" else _step_id(rb, path)
                    problems.append(
                        ((*path, "with", *sub), f"nobody can answer the gate {gate!r}: {why}")
                    )
    gates = {path[: path.index("with")] for path, _ in problems}
    quorums = [(p, m) for p, m in quorum_problems(rb, holders) if p[: p.index("with")] not in gates]
    return problems + quorums


def _nobody(
    rb: Runbook, role: str, holders: Mapping[str, Collection[str]], team_file: str
) -> str | None:
    held = set(holders.get(role, ()))
    members = set(rb.roles[role].members)
    if held and (not members or held & members):
        return None
    if held:
        return (
            f"the runbook narrows the role {role!r} to {', '.join(sorted(members))}, and none "
            f"of them holds it in {team_file} (it holds: {', '.join(sorted(held))}); add them "
            "to the role in the team file or fix members"
        )
    team_roles = sorted(r for r, people in holders.items() if people)
    close = difflib.get_close_matches(role, team_roles, n=1, cutoff=0.5)
    if not close:  # 'release_captain' vs the team's 'captain': a word in common
        words = set(role.split("_"))
        close = [r for r in team_roles if words & set(r.split("_"))][:1]
    if close:
        who = ", ".join(sorted(holders[close[0]]))
        hint = f"did you mean {close[0]!r} (held by {who})?"
    elif team_roles:
        hint = f"the team's roles: {', '.join(team_roles)}"
    else:
        hint = "the team file gives nobody any role"
    return f"no one in {team_file} holds the role {role!r}; {hint}"


def _step_id(rb: Runbook, path: tuple[str | int, ...]) -> str:
    if path[0] == "phases":
        return rb.phases[int(path[1])].steps[int(path[3])].id
    return rb.rollback[int(path[1])].id
