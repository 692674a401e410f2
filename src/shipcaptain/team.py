"""The team file: who is on the team, their roles in each environment, the surfaces each
feature owner owns, and (optionally) the permissions table.

::

    people:
      casey:
        name: Casey Park
        admin: true              # manages the team and other people's tokens
        roles:
          "*": [release_captain] # in every environment
      sam:
        roles:
          production: [oncall_sre]
          staging: [oncall_sre, release_captain]
      fola:
        slack: U024BE7LH         # Slack member id: comms mention her (<@U024BE7LH>)
        roles: [feature_owner]   # a list: the same roles in every environment
        surfaces: [canvas, billing]
    permissions:                 # optional: replaces the defaults action by action
      release.start:
        production: [release_captain]
        "*": [release_captain, oncall_sre]
    environments:                # optional: which environments run only allow-listed runbooks
      production: {protected: true}   # the default for production
      staging: {protected: true}

Role names are the runbook's role ids (``roles:`` in the runbook). Authority comes from
this file only: a runbook's ``roles.<id>.members`` can narrow who holds a role here (the
intersection), never add anyone, and a runbook role this file grants to nobody is held by
nobody. ``roles: ["*"]`` grants every role. The allow-list of a protected environment is
kept by the admins with ``shipcaptain team runbooks allow|remove|list``.
``shipcaptain team apply FILE`` loads the file into the state database (the engine and the
API read it from there) and records the change in the audit log.

A mistake is reported with the file, the line and the field, and nothing is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from shipcaptain.errors import InvalidRunbook, PermissionDenied, ShipError, UsageError
from shipcaptain.identity import bootstrap_actor, can_bootstrap
from shipcaptain.permissions import ACTIONS, DEFAULT_PERMISSIONS
from shipcaptain.records import Person, RunbookRule
from shipcaptain.runbook.checks import DocPath, Problem, explain_errors
from shipcaptain.runbook.model import Frozen
from shipcaptain.store import EventRecord, Store

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


class Member(Frozen):
    """One person in the team file."""

    name: str = Field(default="", description="Human name, e.g. 'Casey Park'.")
    email: str = ""
    slack: str = Field(
        default="",
        pattern=r"^([UW][A-Z0-9]{2,})?$",
        description="Slack member id (U... or W..., from their Slack profile): comms "
        "mention them as <@id>. Without it they are named in plain text.",
    )
    admin: bool = Field(default=False, description="Manages the team and others' tokens.")
    roles: dict[str, list[str]] | list[str] = Field(
        default_factory=dict,
        description="Roles per environment ('*': every environment), or a list for all.",
    )
    surfaces: list[str] = Field(
        default_factory=list, description="For feature owners: the surfaces they own."
    )


class Environment(Frozen):
    """What the team says of one environment."""

    protected: bool | None = Field(
        default=None,
        description="Run only runbooks on the environment's allow-list "
        "(default: true for production, false elsewhere).",
    )


class TeamFile(Frozen):
    """The team file's top level."""

    people: dict[str, Member] = Field(description="Everyone on the team, by user name.")
    permissions: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="action -> environment ('*': any other) -> roles ('*': anyone).",
    )
    environments: dict[str, Environment] = Field(
        default_factory=dict, description="environment -> what the team says of it."
    )

    @field_validator("people")
    @classmethod
    def _someone(cls, value: dict[str, Member]) -> dict[str, Member]:
        if not value:
            raise ValueError("the team needs at least one person")
        return value


class InvalidTeamFile(ShipError, ValueError):
    """The team file has mistakes; ``problems`` lists each with file, line and field."""

    code = "SC110"
    exit_code = 2

    def __init__(self, problems: list[ShipError]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        super().__init__("invalid team file:\n  " + "\n  ".join(lines))

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": "invalid team file",
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class Team:
    """A checked team file."""

    people: list[Person]
    permissions: dict[str, dict[str, list[str]]]
    path: str
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def admins(self) -> list[str]:
        return [p.name for p in self.people if p.admin]


def load_team_file(path: str | Path) -> Team:
    """Read and check a team file; :class:`InvalidTeamFile` lists every mistake."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the team file {filename}: {exc.strerror}") from None
    return parse_team(text, filename)


def parse_team(text: str, filename: str) -> Team:
    """Check the text of a team file (``filename``: what mistakes name)."""
    from shipcaptain.runbook.loader import _problems, _read_yaml

    try:
        data, lines = _read_yaml(text, filename)
    except InvalidRunbook as exc:
        raise InvalidTeamFile(
            [_reword(p) for p in exc.problems] or [UsageError(str(exc))]
        ) from None
    try:
        model = TeamFile.model_validate(data)
    except ValidationError as exc:
        found = explain_errors(exc.errors(), TeamFile, data)
        raise InvalidTeamFile(_problems(found, filename, lines)) from None
    found = _check(model)
    if found:
        raise InvalidTeamFile(_problems(found, filename, lines))
    people = [_person(name, member) for name, member in model.people.items()]
    environments = {env: e.model_dump(exclude_none=True) for env, e in model.environments.items()}
    return Team(
        people=people, permissions=model.permissions, path=filename, environments=environments
    )


def _reword(problem: ShipError) -> ShipError:
    message = problem.message.replace("the runbook", "the team file")
    message = message.replace("(name:, phases:, ...)", "(people:, permissions:, environments:)")
    return UsageError(message, location=problem.location)


def _check(model: TeamFile) -> list[Problem]:
    found: list[Problem] = []
    for name, member in model.people.items():
        if not name or set(name) - _NAME_CHARS:
            found.append(
                (("people", name), "a user name is lower-case letters, digits, '.', '_' or '-'")
            )
        if isinstance(member.roles, dict):
            for env, roles in member.roles.items():
                if not roles:
                    found.append((("people", name, "roles", env), "list at least one role"))
    if not any(member.admin for member in model.people.values()):
        found.append((("people",), "the team needs an admin (admin: true) to manage tokens"))
    for action, table in model.permissions.items():
        path: DocPath = ("permissions", action)
        if action not in ACTIONS:
            found.append((path, f"unknown action {action!r}; one of: {', '.join(ACTIONS)}"))
        elif not table:
            found.append((path, "name at least one environment (or '*')"))
    return found


def _person(name: str, member: Member) -> Person:
    roles = member.roles if isinstance(member.roles, dict) else {"*": member.roles}
    return Person(
        name=name,
        display_name=member.name,
        email=member.email,
        slack_id=member.slack,
        roles={env: tuple(held) for env, held in roles.items()},
        surfaces=tuple(member.surfaces),
        admin=member.admin,
    )


def apply_team(store: Store, team: Team, *, by: Person | None) -> EventRecord:
    """Make ``team`` the store's team. ``by`` must be an admin; ``None`` is the bootstrap
    (allowed only while no admin holds a live token; recorded as such)."""
    if by is None:
        if not can_bootstrap(store):
            raise PermissionDenied(
                "the team is managed by its admins: log in as an admin (shipcaptain login)"
            )
        actor = bootstrap_actor()
    elif not by.admin:
        raise PermissionDenied(f"{by.name} is not an admin and may not change the team")
    else:
        actor = by.name
    names = [p.name for p in team.people]
    data: dict[str, Any] = {
        "file": team.path,
        "people": {
            p.name: {
                "roles": {env: list(r) for env, r in p.roles.items()},
                "surfaces": list(p.surfaces),
                "admin": p.admin,
            }
            for p in team.people
        },
        "permissions": team.permissions,
        "environments": team.environments,
    }
    message = f"{actor} applied the team file {Path(team.path).name}: {', '.join(names)}"
    return store.put_team(
        team.people,
        actor=actor,
        message=message,
        data=data,
        permissions=team.permissions,
        environments=team.environments,
    )


def effective_permissions(store: Store) -> dict[str, dict[str, list[str]]]:
    """The permissions in force: the team's, with the defaults for actions it leaves out."""
    given = store.team_permissions() or {}
    out = {
        action: {env: list(r) for env, r in table.items()}
        for action, table in DEFAULT_PERMISSIONS.items()
    }
    out.update(given)
    return out


def team_document(store: Store) -> dict[str, Any]:
    """The team and the permissions in force, as `team show --json` prints them and the
    API's ``GET /team`` answers."""
    from shipcaptain.permissions import describe

    people = [
        {
            "name": p.name,
            "display_name": p.display_name,
            "roles": {env: list(r) for env, r in p.roles.items()},
            "surfaces": list(p.surfaces),
            "admin": p.admin,
            "active": p.active,
        }
        for p in store.list_people()
    ]
    return {"people": people, "permissions": describe(effective_permissions(store))}


# ---- the allow-list of runbooks per environment ------------------------------------------


def runbooks_document(store: Store) -> dict[str, Any]:
    """The allow-list and which environments are protected, as `team runbooks list --json`
    prints it and the API's ``GET /team/runbooks`` answers: every environment the team
    file or the list names, and production."""
    from shipcaptain.permissions import policy_of

    policy = policy_of(store)
    named = {"production", *policy.environments, *(r.environment for r in policy.runbooks)}
    return {
        "environments": {e: {"protected": policy.protected(e)} for e in sorted(named)},
        "runbooks": [dict(r.__dict__) for r in policy.runbooks],
    }


def runbook_rule(
    environment: str, target: str, *, by_name: bool = False, note: str = "", registry: Any = None
) -> RunbookRule:
    """The allow-list entry ``target`` means in ``environment``: ``sha256:<hex>`` (or 64 hex
    digits) is a digest; a runbook file is its digest (``by_name``: its name); with
    ``by_name``, anything else is a runbook name."""
    from shipcaptain.runbook.loader import load_runbook_file

    if not environment.strip():
        raise UsageError("--env: name the environment")
    value = target.strip()
    hexdigits = value.removeprefix("sha256:").lower()
    if value.startswith("sha256:") or (len(hexdigits) == 64 and not Path(value).exists()):
        if len(hexdigits) != 64 or set(hexdigits) - set("0123456789abcdef"):
            raise UsageError(f"{target!r} is not a sha256 digest (64 hex digits)")
        return RunbookRule(environment, "digest", hexdigits, note=note)
    if Path(value).is_file():
        loaded = load_runbook_file(value, registry=registry)
        if by_name:
            return RunbookRule(environment, "name", loaded.runbook.name, note=note)
        return RunbookRule(environment, "digest", loaded.digest, note=note)
    if by_name and value:
        return RunbookRule(environment, "name", value, note=note)
    raise UsageError(
        f"{target!r} is neither a runbook file nor a sha256:<digest> "
        "(add --by-name to allow any runbook of that name)"
    )


def _admin(by: Person, doing: str) -> None:
    if not by.admin:
        raise PermissionDenied(f"{by.name} is not an admin and may not {doing}")


def allow_runbook(store: Store, rule: RunbookRule, *, by: Person) -> bool:
    """Put ``rule`` on the allow-list (admins only; recorded); False if it was there."""
    _admin(by, "change the runbook allow-list")
    what = "any runbook named" if rule.kind == "name" else "the runbook of sha256"
    return store.allow_runbook(
        rule,
        actor=by.name,
        message=f"{by.name} allowed {what} {rule.value} in {rule.environment}"
        + (f": {rule.note}" if rule.note else ""),
    )


def remove_runbook(store: Store, rule: RunbookRule, *, by: Person) -> None:
    """Take ``rule`` off the allow-list (admins only; recorded)."""
    _admin(by, "change the runbook allow-list")
    store.remove_runbook_rule(
        rule,
        actor=by.name,
        message=f"{by.name} took {rule.kind} {rule.value} off the allow-list of {rule.environment}",
    )
