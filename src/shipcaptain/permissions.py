"""Who may do what: declared as data, checked by one function.

The CLI, the API and the engine all call ``check_gate_decision``; the engine's check is the
one that counts (a decision that reaches it without passing is recorded as refused).
"""

from __future__ import annotations

from dataclasses import dataclass

from shipcaptain.errors import PermissionDenied
from shipcaptain.runbook.model import Runbook


@dataclass(frozen=True)
class GateRule:
    """What a gate requires of the person deciding it."""

    kind: str  # "approval" or "checklist"
    roles: tuple[str, ...]
    people: tuple[str, ...]


#: gate kinds where the person who started the release may not decide (separation of duties)
SEPARATED_KINDS = frozenset({"approval"})


def roles_of(user: str, runbook: Runbook) -> list[str]:
    """The runbook roles ``user`` holds. A role without members is open to everyone."""
    return [rid for rid, role in runbook.roles.items() if not role.members or user in role.members]


def check_gate_decision(
    runbook: Runbook, rule: GateRule, *, user: str, started_by: str, as_role: str | None = None
) -> str | None:
    """Return the role ``user`` decides in, or raise PermissionDenied saying why not."""
    if rule.kind in SEPARATED_KINDS and user == started_by:
        raise PermissionDenied(
            f"{user} started this release and cannot also approve it (separation of duties)"
        )
    held = roles_of(user, runbook)
    if as_role is not None and as_role not in held:
        raise PermissionDenied(f"{user} does not hold the role {as_role!r}")
    if rule.people and user in rule.people:
        return as_role
    if as_role is not None:
        if as_role not in held:
            raise PermissionDenied(f"{user} does not hold the role {as_role!r}")
        candidates = [as_role]
    else:
        candidates = held
    if not rule.roles and not rule.people:
        return candidates[0] if candidates else None
    for role in candidates:
        if role in rule.roles:
            return role
    wanted = [*(f"role {r}" for r in rule.roles), *rule.people]
    raise PermissionDenied(
        f"{user} may not decide this gate: it needs {' or '.join(wanted)}"
        + (f"; {user} holds {', '.join(held)}" if held else f"; {user} holds no role")
    )
