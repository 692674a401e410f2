"""Who may do what: declared as data, checked by one function.

The CLI, the API and the engine all call ``check_gate_decision``; the engine's check is the
one that counts (a decision that reaches it without passing is recorded as refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipcaptain.errors import PermissionDenied
from shipcaptain.runbook.model import Runbook

if TYPE_CHECKING:
    from shipcaptain.store import GateRecord


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


#: role ids that may start a rollback, and that may approve one (by their ending, so
#: ``release_captain`` and ``captain``, ``oncall_sre`` and ``sre`` all count). The people
#: data (``rollback.initiate`` / ``rollback.approve``) replaces these at merge.
ROLLBACK_INITIATE_ROLES = ("captain",)
ROLLBACK_APPROVE_ROLES = ("sre",)


def rollback_roles(runbook: Runbook, action: str) -> list[str]:
    """The runbook's roles that may ``rollback.initiate`` or ``rollback.approve``."""
    if action not in ("rollback.initiate", "rollback.approve"):
        raise ValueError(f"unknown permission {action!r}")
    endings = ROLLBACK_INITIATE_ROLES if action == "rollback.initiate" else ROLLBACK_APPROVE_ROLES
    return [rid for rid in runbook.roles if rid.endswith(endings)]


def check_rollback(
    runbook: Runbook, action: str, *, user: str, initiator: str | None = None
) -> str:
    """``rollback.initiate``: ``user`` holds a captain role. ``rollback.approve``: ``user``
    holds an SRE role and is not the person who initiated the rollback. Returns the role,
    or raises PermissionDenied saying why not."""
    wanted = rollback_roles(runbook, action)
    if action == "rollback.approve" and initiator is not None and user == initiator:
        raise PermissionDenied(
            f"{user} initiated this rollback and cannot also approve it (separation of duties)"
        )
    if not wanted:
        raise PermissionDenied(
            f"{action}: the runbook {runbook.name!r} declares no role ending in "
            + repr(
                ROLLBACK_INITIATE_ROLES[0]
                if action == "rollback.initiate"
                else ROLLBACK_APPROVE_ROLES[0]
            )
        )
    held = roles_of(user, runbook)
    for role in wanted:
        if role in held:
            return role
    raise PermissionDenied(
        f"{user} may not {action.split('.')[1]} a rollback: it needs role {' or '.join(wanted)}"
        + (f"; {user} holds {', '.join(held)}" if held else f"; {user} holds no role")
    )


def check_decision(
    rb: Runbook, gate: GateRecord, user: str, started_by: str, as_role: str | None
) -> str | None:
    """The one check of a gate decision: a rollback's approval gate needs an SRE other than
    the person who initiated the rollback; other gates follow their own rule."""
    if gate.kind == "rollback":
        return check_rollback(
            rb, "rollback.approve", user=user, initiator=str(gate.evidence.get("initiator", ""))
        )
    rule = GateRule(kind=gate.kind, roles=tuple(gate.roles), people=tuple(gate.people))
    return check_gate_decision(rb, rule, user=user, started_by=started_by, as_role=as_role)
