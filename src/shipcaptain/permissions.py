"""Who may do what: declared as data, checked by one function.

The permissions are a table: for each action, the roles that may do it in each environment
(``"*"``: any environment not named; the role ``"*"``: anyone on the team). The defaults
are ``DEFAULT_PERMISSIONS``; a team file's ``permissions:`` section replaces them action
by action. ``authorize()`` is the one check: the CLI and the client call it for a quick,
clear answer, the engine calls it again at a gate (the check that counts: a decision that
reaches the engine without passing is recorded as refused), and the REST API calls it.

On top of the table, ``authorize()`` enforces separation of duties: the person who
started a release may not approve its approval gates, and the person who initiated a
rollback may not approve it. At a gate, the gate's own ``roles``/``people`` must match too.

Authority comes from the team only (roles per environment, see ``shipcaptain.team``):
a runbook is data from whoever wrote it. Its ``roles.<id>.members`` can only narrow who
holds a role the team grants (a person the team makes ``release_captain`` is not the
captain of a runbook whose captain ``members`` leave them out), never widen it: a runbook
role the team grants to nobody is held by nobody. The role ``"*"`` in the team file grants
every role (a small team where everyone does everything); members still narrow it.

Which runbooks may run where is the team's too: ``check_runbook_allowed()`` (an
allow-list per environment, see ``RunbookRule``), and ``authorize_start()`` is the
one check of a start, made by the client (the CLI and the REST API, uploaded runbooks
included) and again by the engine when a worker begins the release.

Without a team in the store (programmatic use, tests of the engine alone) there is no
policy: the permission table is not consulted and the runbook's roles count as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipcaptain.errors import PermissionDenied
from shipcaptain.records import Person, RunbookRule

if TYPE_CHECKING:
    from typing import Protocol

    from shipcaptain.runbook.model import Runbook
    from shipcaptain.store import GateRecord, ReleaseRecord, Store

    class RoleShape(Protocol):
        @property
        def members(self) -> Sequence[str]: ...

    class RolesShape(Protocol):
        """What the check reads of a runbook: its roles and their members (a parsed
        ``Runbook``, or the roles recorded with a release: ``RecordedRoles``)."""

        @property
        def roles(self) -> Mapping[str, RoleShape]: ...


#: Every action a person can be allowed, with what it means.
ACTIONS: dict[str, str] = {
    "release.start": "start a release",
    "release.cancel": "cancel a release",
    "release.resume": "resume a release",
    "gate.decide": "decide a gate",
    "rollback.initiate": "initiate a rollback",
    "rollback.approve": "approve a rollback",
    "migrations.apply": "apply database migrations outside a release",
    "worker.run": "run releases in an engine process",
    "incident.open": "open an incident",
    "incident.acknowledge": "acknowledge an incident",
    "incident.mitigate": "mark an incident mitigated",
    "incident.resolve": "resolve an incident",
}

#: The permissions when the team file says nothing: action -> environment -> roles.
DEFAULT_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "release.start": {"*": ("release_captain",)},
    "release.cancel": {"*": ("release_captain", "oncall_sre")},
    "release.resume": {"*": ("release_captain", "oncall_sre")},
    "gate.decide": {"*": ("*",)},
    "rollback.initiate": {"*": ("release_captain", "oncall_sre")},
    "rollback.approve": {"*": ("oncall_sre",)},
    "migrations.apply": {"*": ("release_captain",)},
    # a worker serves every environment: the role must be held for "*"
    "worker.run": {"*": ("worker", "release_captain", "oncall_sre")},
    "incident.open": {"*": ("release_captain", "oncall_sre")},
    "incident.acknowledge": {"*": ("release_captain", "oncall_sre")},
    "incident.mitigate": {"*": ("release_captain", "oncall_sre")},
    "incident.resolve": {"*": ("release_captain", "oncall_sre")},
}

#: Environments that run only allow-listed runbooks unless the team file says otherwise
#: (``environments: {production: {protected: false}}``).
PROTECTED_BY_DEFAULT = frozenset({"production"})

#: The role that, in the team file, grants every role.
EVERY_ROLE = "*"

#: The environment an action that is not tied to one (``worker.run``) is checked in.
EVERY_ENVIRONMENT = "*"

#: gate kinds where the person who started the release may not decide (separation of duties)
SEPARATED_KINDS = frozenset({"approval", "rollback"})


@dataclass(frozen=True)
class GateRule:
    """What a gate requires of the person deciding it."""

    kind: str  # "approval" or "checklist"
    roles: tuple[str, ...]
    people: tuple[str, ...]

    @classmethod
    def of(cls, gate: GateRecord) -> GateRule:
        """The rule of a recorded gate."""
        return cls(kind=gate.kind, roles=tuple(gate.roles), people=tuple(gate.people))


@dataclass(frozen=True)
class Policy:
    """The permission table in force, and whether a team is configured at all."""

    permissions: Mapping[str, Mapping[str, Sequence[str]]] = field(
        default_factory=lambda: DEFAULT_PERMISSIONS
    )
    team: bool = True
    assigned: frozenset[str] = frozenset()
    """Every role the team gives to someone, in any environment."""
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The team file's ``environments:`` section (``protected``, per environment)."""
    runbooks: Sequence[RunbookRule] = ()
    """The allow-list: which runbooks may run in which environment."""
    people: tuple[Person, ...] = ()
    """Everyone known to the team (inactive people too), read with the rest."""

    def person(self, name: str) -> Person:
        """The team's person ``name`` as this policy read them; not on it, someone not on
        a team that exists (inactive), or of no team (no team at all). The check that uses
        this policy uses this person: one read of the team, never a person from one
        moment and the permissions from another."""
        return _person_in(self.people, name)

    def allowed_roles(self, action: str, environment: str) -> tuple[str, ...]:
        table = self.permissions.get(action, DEFAULT_PERMISSIONS.get(action, {}))
        return tuple(table.get(environment, table.get("*", ())))

    def every_role(self) -> set[str]:
        """Every role the team or the permission table names (what ``"*"`` grants)."""
        named = {r for table in self.permissions.values() for rs in table.values() for r in rs}
        return (named | self.assigned) - {EVERY_ROLE}

    def protected(self, environment: str) -> bool:
        """Does ``environment`` run only allow-listed runbooks (:func:`check_runbook_allowed`)?"""
        said = self.environments.get(environment, {}).get("protected")
        if said is not None:
            return bool(said)
        return environment in PROTECTED_BY_DEFAULT


def policy_of(store: Store) -> Policy:
    """The policy the store's team set (defaults for actions it does not name), with its
    people (:meth:`Policy.person`): all of it as one snapshot of the database."""
    team = store.read_team()
    merged: dict[str, Mapping[str, Sequence[str]]] = dict(DEFAULT_PERMISSIONS)
    merged.update(team.permissions or {})
    assigned = frozenset(role for p in team.people if p.active for role in p.roles_in(None))
    return Policy(
        permissions=merged,
        team=bool(team.people),
        assigned=assigned,
        environments=team.environments,
        runbooks=team.runbooks,
        people=team.people,
    )


def check_runbook_allowed(
    environment: str, runbook_name: str, digest: str, policy: Policy
) -> RunbookRule | None:
    """May the runbook ``runbook_name`` with text of sha256 ``digest`` run in
    ``environment``? The entry that allows it (None: the environment has no allow-list
    and is not protected, so any runbook may), else PermissionDenied.

    An environment is restricted when it is protected (``production`` unless the team file
    says ``protected: false``; any environment the team file marks ``protected: true``) or
    has at least one allow-list entry. Without a team there is no policy."""
    if not policy.team:
        return None
    rules = [r for r in policy.runbooks if r.environment == environment]
    for rule in rules:
        if rule.matches(runbook_name, digest):
            return rule
    if not rules and not policy.protected(environment):
        return None
    why = "is protected" if policy.protected(environment) else "has an allow-list of runbooks"
    listed = "; it allows " + ", ".join(r.describe() for r in rules) if rules else ""
    raise PermissionDenied(
        f"the runbook {runbook_name!r} (sha256 {digest[:16]}) may not run in {environment}: "
        f"{environment} {why} and this runbook is not on it{listed}. An admin allows it "
        f"with: shipcaptain team runbooks allow --env {environment} RUNBOOK"
    )


def authorize_start(
    person: Person,
    *,
    environment: str,
    runbook: Runbook,
    digest: str,
    policy: Policy,
) -> str | None:
    """The one check of a release's start, wherever it comes from (the CLI, the REST API
    with a runbook path or an uploaded runbook, a worker beginning the release): ``person``
    may ``release.start`` in ``environment`` by the team's roles (the runbook's members only
    narrow them), and the runbook is allowed there. The role they start it in, or
    PermissionDenied."""
    role = authorize(
        person, "release.start", environment=environment, policy=policy, runbook=runbook
    )
    check_runbook_allowed(environment, runbook.name, digest, policy)
    return role


def person_named(store: Store, name: str) -> Person:
    """The team's person ``name``; without a team, someone with no team roles.

    Not found, the team is read once, and the answer is from that read: the person, when
    they joined in between (a team made as a release starts), else someone not on a team
    that exists, else someone of no team. (Found missing, then told off by a team read a
    moment later that already held them, a starter was refused as "not on the team".)"""
    from shipcaptain.errors import NotFound

    try:
        return store.get_person(name)
    except NotFound:
        pass
    return _person_in(store.list_people(), name)


def _person_in(people: Sequence[Person], name: str) -> Person:
    """``name`` among ``people`` (a team as read at one moment); not among them, someone not
    on a team that exists (inactive), or of no team (no team at all: no team roles)."""
    found = next((p for p in people if p.name == name), None)
    return found if found is not None else Person(name=name, active=not people)


def roles_of(
    person: Person, runbook: RolesShape | None, environment: str, policy: Policy
) -> list[str]:
    """The roles ``person`` holds in ``environment``.

    With a team: the roles the team grants them there (``"*"``: every role), less the
    runbook roles whose ``members`` leave them out. The runbook never adds a role.
    Without a team (no policy): the runbook roles whose ``members`` list them, and those
    without members (open to everyone)."""
    if not policy.team:
        held = list(person.roles_in(environment))
        for rid, role in (runbook.roles if runbook is not None else {}).items():
            if (person.name in role.members or not role.members) and rid not in held:
                held.append(rid)
        return held
    granted = list(person.roles_in(environment))
    if EVERY_ROLE in granted:
        extra = sorted(policy.every_role() | set(runbook.roles if runbook else ()))
        granted = [r for r in granted if r != EVERY_ROLE]
        granted += [r for r in extra if r not in granted]
    if runbook is None:
        return granted
    return [
        rid
        for rid in granted
        if rid not in runbook.roles
        or not runbook.roles[rid].members
        or person.name in runbook.roles[rid].members
    ]


def authorize(
    person: Person,
    action: str,
    *,
    environment: str,
    policy: Policy,
    runbook: RolesShape | None = None,
    release: ReleaseRecord | None = None,
    gate: GateRule | None = None,
    initiator: str | None = None,
    as_role: str | None = None,
) -> str | None:
    """May ``person`` do ``action`` in ``environment``? Returns the role they act in (None:
    no particular role), or raises :class:`PermissionDenied` saying why not.

    ``runbook``: its roles' ``members`` narrow the team's roles (a parsed runbook, or the
    roles recorded with the release). ``release`` is the release acted on (its starter may
    not approve its approval gates);
    ``gate`` the gate decided (for ``gate.decide``); ``initiator`` who initiated what is
    being approved (for ``rollback.approve``: they may not approve it themself).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not person.active:
        raise PermissionDenied(f"{person.name} is not on the team")
    held = roles_of(person, runbook, environment, policy)
    if as_role is not None and as_role not in held:
        raise PermissionDenied(f"{person.name} does not hold the role {as_role!r} in {environment}")
    role: str | None = as_role
    if policy.team:
        allowed = policy.allowed_roles(action, environment)
        if "*" not in allowed:
            matching = [r for r in ([as_role] if as_role else held) if r in allowed]
            if not matching:
                where = "every environment" if environment == EVERY_ENVIRONMENT else environment
                raise PermissionDenied(
                    f"{person.name} may not {ACTIONS[action]} ({action}) in {where}: "
                    f"it needs role {' or '.join(allowed) or '(nobody)'}; "
                    + _holds(person.name, held)
                )
            role = matching[0]
    if action == "rollback.approve" and initiator is not None and person.name == initiator:
        raise PermissionDenied(
            f"{person.name} initiated this rollback and cannot also approve it "
            "(separation of duties)"
        )
    if action == "gate.decide" and gate is not None and gate.kind == "rollback" and policy.team:
        authorize(
            person, "rollback.approve", environment=environment, policy=policy,
            runbook=runbook, initiator=initiator,
        )  # fmt: skip
    if action == "gate.decide" and gate is not None:
        started_by = release.started_by if release is not None else None
        if gate.kind in SEPARATED_KINDS and person.name in (started_by, initiator):
            what = "started this release" if person.name == started_by else "initiated this"
            raise PermissionDenied(
                f"{person.name} {what} and cannot also approve it (separation of duties)"
            )
        role = _gate_role(person.name, gate, held, as_role)
    return role


def gate_parts_of(evidence: Mapping[str, Any] | None, name: str, held: Sequence[str]) -> list[int]:
    """For a gate in parts (``evidence["parts"]``, see ``GateRequest``): the indexes of
    the parts ``name`` may confirm, as a listed person or by a role they hold (``held``)."""
    parts = (evidence or {}).get("parts") or []
    return [
        i
        for i, part in enumerate(parts)
        if name in part.get("people", ()) or set(part.get("roles", ())) & set(held)
    ]


def evidence_for(evidence: Mapping[str, Any], covers: Sequence[int]) -> dict[str, Any]:
    """What a person deciding a gate saw: the gate's evidence, and of a gate in parts only
    the parts ``covers`` (theirs)."""
    if "parts" not in evidence:
        return dict(evidence)
    parts = evidence.get("parts") or []
    return {**evidence, "parts": [parts[i] for i in covers]}


def _holds(name: str, held: Sequence[str]) -> str:
    return f"{name} holds {', '.join(held)}" if held else f"{name} holds no role"


def _gate_role(name: str, gate: GateRule, held: list[str], as_role: str | None) -> str | None:
    if gate.people and name in gate.people:
        return as_role
    candidates = [as_role] if as_role is not None else held
    if not gate.roles and not gate.people:
        return candidates[0] if candidates else None
    for role in candidates:
        if role in gate.roles:
            return role
    wanted = [*(f"role {r}" for r in gate.roles), *gate.people]
    raise PermissionDenied(
        f"{name} may not decide this gate: it needs {' or '.join(wanted)}; {_holds(name, held)}"
    )


def describe(policy_permissions: Mapping[str, Mapping[str, Sequence[str]]]) -> list[dict[str, Any]]:
    """The table as rows (action, environment, roles) for ``shipcaptain team show``."""
    return [
        {"action": action, "environment": env, "roles": list(roles)}
        for action in ACTIONS
        for env, roles in policy_permissions.get(action, {}).items()
    ]


#: Without a team: the runbook role ids that may start a rollback, and that may approve one
#: (by their ending, so ``release_captain`` and ``captain``, ``oncall_sre`` and ``sre`` all
#: count). With a team, the permission table's ``rollback.initiate`` / ``rollback.approve``
#: decide (see ``check_rollback``).
ROLLBACK_INITIATE_ROLES = ("captain",)
ROLLBACK_APPROVE_ROLES = ("sre",)


def rollback_roles(runbook: Runbook, action: str) -> list[str]:
    """The runbook's roles that may ``rollback.initiate`` or ``rollback.approve``."""
    if action not in ("rollback.initiate", "rollback.approve"):
        raise ValueError(f"unknown permission {action!r}")
    endings = ROLLBACK_INITIATE_ROLES if action == "rollback.initiate" else ROLLBACK_APPROVE_ROLES
    return [rid for rid in runbook.roles if rid.endswith(endings)]


def check_rollback(
    runbook: Runbook,
    action: str,
    *,
    user: str,
    initiator: str | None = None,
    environment: str = "*",
) -> str | None:
    """The rollback rule of a store without a team (with one, the permission table decides:
    ``authorize``): ``rollback.initiate`` needs a captain role of the runbook,
    ``rollback.approve`` an SRE role, and never the person who initiated the rollback.
    Returns the role, or raises PermissionDenied saying why not."""
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
    held = roles_of(Person(name=user), runbook, environment, Policy(team=False))
    for role in wanted:
        if role in held:
            return role
    raise PermissionDenied(
        f"{user} may not {action.split('.')[1]} a rollback: it needs role {' or '.join(wanted)}"
        + (f"; {user} holds {', '.join(held)}" if held else f"; {user} holds no role")
    )
