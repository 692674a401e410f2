"""A runbook's outline: its steps in the order they run, each with its phase, label, action
and effective dependencies. What ``release show`` and a release's page list of a release's
runbook, and the one definition of a step's dependencies and of that order (the model's
``Runbook.dependencies`` and ``Runbook.topological_order`` are these functions).

A release records its outline when it is created (:func:`outline_json`, the store's
``outline`` column, made from the checked runbook), and ``release show`` reads it back with
:func:`outline_from_json`: no YAML on that path (libyaml's import alone was ~10 ms of the
command, issue 27). The same document records the runbook's roles and their members, what
the permission check of a decision, a cancel or a resume reads of a runbook
(:func:`roles_from_json`): those commands parse no runbook either.

For a release created before outlines were recorded, :func:`read_outline` takes the outline
from a release's recorded runbook text without the runbook model: the text was checked when
the release was created, so reading a handful of fields from the YAML (libyaml, through
PyYAML) is enough, where parsing and checking the whole runbook (pydantic, the round-trip
YAML loader, the action registry, Jinja) cost a read-only command about 150 ms of CPU (issue
27). Anything it does not recognise as a checked runbook's (another type, a YAML 1.1 reading
that differs from the checked YAML 1.2 one, such as ``yes`` read as true) gives None: the
caller parses the runbook instead.

Only the standard library, and PyYAML inside :func:`read_outline`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # what the functions below read of a runbook's phases, steps and guards

    class StepShape(Protocol):
        @property
        def id(self) -> str: ...
        @property
        def needs(self) -> Sequence[str]: ...
        @property
        def guards(self) -> Sequence[str]: ...

    class PhaseShape(Protocol):
        @property
        def id(self) -> str: ...
        @property
        def after(self) -> Sequence[str] | None: ...
        @property
        def steps(self) -> Sequence[StepShape]: ...

    class GuardShape(Protocol):
        @property
        def after_steps(self) -> Sequence[str]: ...


def dependencies(
    phases: Sequence[PhaseShape], guards: Mapping[str, GuardShape]
) -> dict[str, list[str]]:
    """Every step's effective dependencies: its ``needs``, its guards' ``after_steps``, and
    every step of the phases its phase runs after (``after``, else the phase before it).
    Unknown ids are kept (the checks report them)."""
    by_phase = {p.id: [s.id for s in p.steps] for p in phases}
    deps: dict[str, list[str]] = {}
    for index, phase in enumerate(phases):
        before: list[str] = []
        for ph in phase_after(phases, index):
            before.extend(by_phase.get(ph, []))
        for step in phase.steps:
            found: list[str] = []
            for dep in [*before, *step.needs]:
                if dep not in found and dep != step.id:
                    found.append(dep)
            for gname in step.guards:
                guard = guards.get(gname)
                for dep in guard.after_steps if guard else []:
                    if dep not in found and dep != step.id:
                        found.append(dep)
            deps[step.id] = found
    return deps


def phase_after(phases: Sequence[PhaseShape], index: int) -> list[str]:
    """The phases the phase at ``index`` runs after."""
    phase = phases[index]
    if phase.after is not None:
        return list(phase.after)
    return [phases[index - 1].id] if index > 0 else []


def topological_order(steps: Iterable[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Step ids in an order where every step comes after its dependencies; the order of
    ``steps`` (the file's) breaks ties so the order is stable. Raises ValueError on a cycle.

    In layers: first the steps that wait for none, then those that wait only for the first
    layer, and so on, each layer in the file's order (a step's layer is the length of its
    longest chain of dependencies). Linear in the steps and their dependencies (looking for
    the ready steps again after each layer was quadratic in a chain: ~1 ms a step at 100)."""
    remaining = [s for s in steps if s in deps]
    members = set(remaining)
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for s in members:
        # a dependency outside ``deps`` is no obstacle; one in ``deps`` but not among
        # ``steps`` is never done (reported as a cycle)
        needed = {d for d in deps[s] if d in deps}
        waiting[s] = len(needed)
        for d in needed:
            dependents.setdefault(d, []).append(s)
    layer_of: dict[str, int] = {}
    layer = [s for s in members if waiting[s] == 0]
    depth = 0
    while layer:
        following = []
        for s in layer:
            layer_of[s] = depth
            for t in dependents.get(s, ()):
                waiting[t] -= 1
                if waiting[t] == 0:
                    following.append(t)
        layer = following
        depth += 1
    stuck = [s for s in remaining if s not in layer_of]
    if stuck:
        raise ValueError("dependency cycle among: " + ", ".join(stuck))
    ranked = sorted((layer_of[s], i) for i, s in enumerate(remaining))
    return [remaining[i] for _, i in ranked]


@dataclass(frozen=True)
class OutlineStep:
    """A step as a release's outline lists it: ``label`` is its title, else its id;
    ``needs`` its effective dependencies."""

    id: str
    phase: str
    label: str
    action: str
    needs: list[str]


def outline(
    phases: Sequence[PhaseShape],
    guards: Mapping[str, GuardShape],
    labels: Mapping[str, tuple[str, str]],
) -> list[OutlineStep]:
    """The steps of ``phases`` in the order they run; ``labels``: each step's label and
    action."""
    deps = dependencies(phases, guards)
    phase_of = {s.id: p.id for p in phases for s in p.steps}
    return [
        OutlineStep(sid, phase_of[sid], *labels[sid], needs=list(deps[sid]))
        for sid in topological_order(phase_of, deps)
    ]


# ---- recorded with the release ---------------------------------------------------------------

#: the version of :func:`outline_json`'s document: another version is not read (the caller
#: reads the runbook text instead)
OUTLINE_FORMAT = 1


def outline_json(
    steps: Sequence[OutlineStep], roles: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The outline as the JSON text recorded with a release when it is created (the store's
    ``outline`` column), read back by :func:`outline_from_json`; ``roles``: the runbook's
    roles and their ``members``, read back by :func:`roles_from_json`."""
    import json

    document: dict[str, Any] = {
        "format": OUTLINE_FORMAT,
        "steps": [[s.id, s.phase, s.label, s.action, list(s.needs)] for s in steps],
    }
    if roles is not None:
        document["roles"] = {rid: list(members) for rid, members in roles.items()}
    return json.dumps(document, separators=(",", ":"))


def outline_from_json(text: str | None) -> list[OutlineStep] | None:
    """The outline recorded with a release (:func:`outline_json`), or None when there is none
    or it is not one this version writes (then read it from the runbook text)."""
    if not text:
        return None
    try:
        rows = _recorded(text, "steps")
        if not isinstance(rows, list):
            return None
        found = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 5:
                return None
            sid, phase, label, action, needs = row
            found.append(
                OutlineStep(_text(sid), _text(phase), _text(label), _text(action), _texts(needs))
            )
        return found
    except (_Unrecognised, ValueError):
        return None


def _recorded(text: str, part: str) -> Any:
    """``part`` ("steps", "roles") of the document :func:`outline_json` wrote; ValueError
    when the text is not JSON, _Unrecognised when it is not of this version's format or
    has no such part."""
    import json

    data = _mapping(json.loads(text))
    if data.get("format") != OUTLINE_FORMAT or part not in data:
        raise _Unrecognised
    return data[part]


@dataclass(frozen=True)
class RecordedRole:
    """A runbook role as recorded with a release: its ``members`` (empty: open to whoever
    the team gives the role)."""

    members: tuple[str, ...]


@dataclass(frozen=True)
class RecordedRoles:
    """A runbook's roles as recorded with a release: all the permission check reads of a
    runbook (``shipcaptain.permissions.roles_of``), without parsing its text."""

    roles: dict[str, RecordedRole]


def roles_from_json(text: str | None) -> RecordedRoles | None:
    """The runbook's roles recorded with a release (:func:`outline_json`), or None when
    none were (a release created before they were recorded) or they are not what this
    version writes: then the caller parses the release's runbook."""
    if not text:
        return None
    try:
        return RecordedRoles(
            {
                _text(rid): RecordedRole(tuple(_texts(members)))
                for rid, members in _mapping(_recorded(text, "roles")).items()
            }
        )
    except (_Unrecognised, ValueError):
        return None


# ---- from the recorded text ----------------------------------------------------------------


class _Step:
    """A step of the text, as :func:`dependencies` reads it."""

    __slots__ = ("guards", "id", "needs")

    def __init__(self, id: str, needs: list[str], guards: list[str]) -> None:
        self.id, self.needs, self.guards = id, needs, guards


class _Phase:
    __slots__ = ("after", "id", "steps")

    def __init__(self, id: str, after: list[str] | None, steps: list[_Step]) -> None:
        self.id, self.after, self.steps = id, after, steps


class _Guard:
    __slots__ = ("after_steps",)

    def __init__(self, after_steps: list[str]) -> None:
        self.after_steps = after_steps


class _Unrecognised(Exception):
    """The text is not read as a checked runbook: parse it with the model."""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Unrecognised
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Unrecognised
    return [_text(v) for v in value]


def _mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _Unrecognised
    return value


def read_outline(text: str) -> list[OutlineStep] | None:
    """The outline of a release's recorded (checked) runbook text, or None when the text
    does not read as one here (then parse it with the model)."""
    import yaml

    try:
        data = _mapping(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        guards = {
            _text(name): _Guard(_texts(_mapping(g).get("after_steps", [])))
            for name, g in _mapping(data.get("guards", {})).items()
        }
        phases: list[_Phase] = []
        labels: dict[str, tuple[str, str]] = {}
        for phase in data["phases"]:
            p = _mapping(phase)
            after = p.get("after")
            steps: list[_Step] = []
            for step in p["steps"]:
                s = _mapping(step)
                sid = _text(s["id"])
                if sid in labels:
                    raise _Unrecognised
                labels[sid] = (_text(s.get("title", "")) or sid, _text(s["action"]))
                needs, on = _texts(s.get("needs", [])), _texts(s.get("guards", []))
                steps.append(_Step(sid, needs, on))
            phases.append(_Phase(_text(p["id"]), None if after is None else _texts(after), steps))
        return outline(phases, guards, labels)
    except (_Unrecognised, yaml.YAMLError, KeyError, TypeError, ValueError, RecursionError):
        return None
