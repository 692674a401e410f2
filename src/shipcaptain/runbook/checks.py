"""Checks of a whole runbook that its models alone cannot make.

``check_runbook`` looks at references between parts of the runbook (step ids, phases,
guards, roles), dependency cycles, action types and their parameters (each action's own
``Params`` model), and the names templates use. It returns every problem found as a path
into the YAML document (``("phases", 1, "steps", 0, "with", "command")``) and a message;
the loader turns paths into file lines.

Templates are strings. A parameter value that holds a template (``"{{ version }}"``) is
only checked for the names it uses here; its type and form are checked when the step runs,
after rendering. Everything else in an action's parameters is checked here, so put
templates in text fields: a number or a list written as a template is a string until the
release renders it.

``explain_errors`` turns pydantic's errors into the same (path, message) pairs, in words a
release captain reads; ``format_path`` writes a path the way the YAML file spells it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shipcaptain.errors import RunbookProblem
from shipcaptain.runbook.catalogue import ActionCatalogue
from shipcaptain.runbook.conditions import as_template, inspect_condition
from shipcaptain.runbook.environment import ENVIRONMENT_LIKE
from shipcaptain.runbook.model import Identifier, Runbook, Step
from shipcaptain.runbook.templating import (
    CONTEXT_ROOTS,
    RELEASE_FIELDS,
    has_template,
    inspect_template,
    parameter_value,
)

if TYPE_CHECKING:
    from shipcaptain.runbook.references import OutputRef

DocPath = tuple[str | int, ...]
Problem = tuple[DocPath, str]

#: Parameters of the built-in gates that name runbook roles. A plug-in action declares
#: its own with a ``role_params`` class attribute (a tuple of parameter names).
GATE_ROLE_PARAMS: dict[str, tuple[str, ...]] = {
    "approval": ("roles",),
    "checklist": ("confirm_by",),
}


def check_runbook(rb: Runbook, registry: ActionCatalogue) -> list[Problem]:
    """Every problem of ``rb`` that the models cannot see, in file order per kind."""
    duplicates = _check_ids(rb)
    problems = [*duplicates, *_check_references(rb), *_check_parameters(rb)]
    problems += _check_self_references(rb)
    problems += quorum_problems(rb)
    # with two steps of one id, "which step waits for which" has no answer: fix ids first
    cycles = [] if duplicates else _check_cycles(rb)
    problems += cycles
    problems += _check_actions(rb, registry)
    problems += _check_templates(rb, check_step_outputs=not (cycles or duplicates))
    problems += _check_template_safety(rb, registry)
    problems += check_output_references(rb, registry)
    problems += check_release_commit(rb)
    problems += check_environment(rb)
    problems += check_conditions(rb, check_order=not (cycles or duplicates))
    problems += _check_incidents_and_comms(rb)
    if not (cycles or duplicates):
        from shipcaptain.runbook.comms_checks import check_announcements

        problems += check_migration_order(rb)
        problems += check_announcements(rb)
    problems += [
        (("rollback_validation", k), f"no step {sid!r}" + _suggest(sid, list(rb.steps)))
        for k, sid in enumerate(rb.rollback_validation)
        if sid not in rb.steps
    ]
    return problems


# ---- where things are ----------------------------------------------------------------


def _forward_steps(rb: Runbook) -> Iterator[tuple[DocPath, Step]]:
    for i, phase in enumerate(rb.phases):
        for j, step in enumerate(phase.steps):
            yield ("phases", i, "steps", j), step


def _rollback_steps(rb: Runbook) -> Iterator[tuple[DocPath, Step]]:
    for k, step in enumerate(rb.rollback):
        yield ("rollback", k), step


def _action_calls(rb: Runbook) -> Iterator[tuple[DocPath, str, dict[str, Any]]]:
    """Every action the runbook runs: steps, rollback steps, undo calls and guard checks."""
    for path, step in [*_forward_steps(rb), *_rollback_steps(rb)]:
        yield path, step.action, step.with_
        if step.undo is not None:
            yield (*path, "undo"), step.undo.action, step.undo.with_
    for name, guard in rb.guards.items():
        if guard.check is not None:
            yield ("guards", name, "check"), guard.check.action, guard.check.with_


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(known)}" if known else "; there are none"


# ---- ids and references ----------------------------------------------------------------


def _check_ids(rb: Runbook) -> list[Problem]:
    problems: list[Problem] = []
    seen_phases: dict[str, DocPath] = {}
    for i, phase in enumerate(rb.phases):
        if phase.id in seen_phases:
            where = format_path(seen_phases[phase.id])
            problems.append(
                (("phases", i, "id"), f"phase id {phase.id!r} is already used by {where}")
            )
        seen_phases.setdefault(phase.id, ("phases", i))
    seen_steps: dict[str, DocPath] = {}
    for path, step in [*_forward_steps(rb), *_rollback_steps(rb)]:
        if step.id in seen_steps:
            where = format_path(seen_steps[step.id])
            problems.append(((*path, "id"), f"step id {step.id!r} is already used by {where}"))
        seen_steps.setdefault(step.id, path)
    return problems


def _check_references(rb: Runbook) -> list[Problem]:
    problems: list[Problem] = []
    phase_ids = [p.id for p in rb.phases]
    for i, phase in enumerate(rb.phases):
        for k, name in enumerate(phase.after or []):
            if name not in phase_ids:
                msg = f"runs after unknown phase {name!r}{_suggest(name, phase_ids)}"
                problems.append((("phases", i, "after", k), msg))
    forward = list(rb.steps)
    backward = [s.id for s in rb.rollback]
    guards = list(rb.guards)
    roles = list(rb.roles)
    for group, known in ((_forward_steps(rb), forward), (_rollback_steps(rb), backward)):
        for path, step in group:
            for k, need in enumerate(step.needs):
                if need in known:
                    continue
                if path[0] == "rollback" and need in rb.steps:
                    msg = (
                        f"{need!r} is a release step; a rollback step can only need rollback steps"
                    )
                else:
                    kind = "rollback step" if path[0] == "rollback" else "step"
                    msg = f"needs unknown {kind} {need!r}{_suggest(need, known)}"
                problems.append(((*path, "needs", k), msg))
            for k, name in enumerate(step.guards):
                if name not in guards:
                    msg = f"unknown guard {name!r}{_suggest(name, guards)}"
                    problems.append(((*path, "guards", k), msg))
            if step.owner is not None and step.owner not in roles:
                msg = f"unknown role {step.owner!r}{_suggest(step.owner, roles)}"
                problems.append(((*path, "owner"), msg))
    for name, guard in rb.guards.items():
        for k, step_id in enumerate(guard.after_steps):
            if step_id not in rb.steps:
                msg = f"waits for unknown step {step_id!r}{_suggest(step_id, forward)}"
                problems.append((("guards", name, "after_steps", k), msg))
    return problems


def _check_self_references(rb: Runbook) -> list[Problem]:
    """A step that needs itself, or is guarded by a guard that waits for it, could never
    start (the model drops these from the dependencies, so the cycle check cannot see them)."""
    problems: list[Problem] = []
    later = _later_phases(rb)
    phase_of = rb.phase_of
    for path, step in [*_forward_steps(rb), *_rollback_steps(rb)]:
        for k, need in enumerate(step.needs):
            if need == step.id:
                msg = f"a step cannot need itself; remove {need!r} from needs"
                problems.append(((*path, "needs", k), msg))
        for k, name in enumerate(step.guards):
            guard = rb.guards.get(name)
            for waited in guard.after_steps if guard is not None else []:
                if waited == step.id:
                    msg = (
                        f"guard {name!r} waits for step {step.id!r} itself, and a guard is "
                        "checked before its step starts: it could never pass; guard another step"
                    )
                elif path[0] == "phases" and phase_of.get(waited) in later[phase_of[step.id]]:
                    msg = (
                        f"guard {name!r} waits for step {waited!r} of phase "
                        f"{phase_of[waited]!r}, which runs after this step's phase "
                        f"{phase_of[step.id]!r}: the step could never start"
                    )
                else:
                    continue
                problems.append(((*path, "guards", k), msg))
    return problems


def _later_phases(rb: Runbook) -> dict[str, set[str]]:
    """For each phase, the phases that run after it (directly or not)."""
    after = {p.id: set(rb.phase_after(i)) for i, p in enumerate(rb.phases)}
    later: dict[str, set[str]] = {p.id: set() for p in rb.phases}
    changed = True
    while changed:  # a fixed point: phases are few, and a cycle cannot loop forever
        changed = False
        for phase, before in after.items():
            for earlier in before:
                add = {phase} | later[phase]
                if earlier in later and not add <= later[earlier]:
                    later[earlier] |= add
                    changed = True
    return later


def quorum_problems(
    rb: Runbook, holders: Mapping[str, Collection[str]] | None = None
) -> list[Problem]:
    """Approvals whose quorum more people must reach than could ever approve: those listed
    in ``people`` and the members of its ``roles``. A role's possible members are its
    runbook ``members`` plus, when a team is known, who holds it in the team (``holders``:
    role -> people, in any environment). A role with no members in the runbook and no team
    known could be anyone's: the gate is not judged."""
    problems: list[Problem] = []
    for path, action, params in _action_calls(rb):
        roles, quorum = params.get("roles"), params.get("quorum", 1)
        if action != "approval" or not isinstance(quorum, int) or not isinstance(roles, list):
            continue
        possible = {p for p in params.get("people") or [] if isinstance(p, str)}
        for role in roles:
            if not isinstance(role, str) or role not in rb.roles:
                break  # a template or an unknown role (reported on its own)
            team = None if holders is None else holders.get(role, ())
            if not rb.roles[role].members and team is None:
                break
            possible |= {*rb.roles[role].members, *(team or ())}
        else:
            if roles and quorum > len(possible):
                who = ", ".join(sorted(possible)) or "nobody"
                msg = (
                    f"quorum {quorum} can never be reached: only {len(possible)} "
                    f"{'person' if len(possible) == 1 else 'people'} can approve ({who}); "
                    "lower the quorum or add people to the role"
                )
                problems.append(((*path, "with", "quorum"), msg))
    return problems


def _check_parameters(rb: Runbook) -> list[Problem]:
    problems: list[Problem] = []
    for name, param in rb.parameters.items():
        if name in CONTEXT_ROOTS:
            msg = f"the name {name!r} is reserved for templates ({', '.join(CONTEXT_ROOTS)})"
            problems.append((("parameters", name), msg))
        if param.default is not None:
            if param.required:
                msg = "a parameter with a default is never missing: drop 'required' or 'default'"
                problems.append((("parameters", name, "required"), msg))
            try:
                parameter_value(name, param, param.default)
            except ValueError as exc:
                problems.append((("parameters", name, "default"), f"bad default: {exc}"))
    return problems


# ---- cycles ------------------------------------------------------------------------------


def _find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly tangled group, each starting at its first node in ``graph`` order."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        trail.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, trail)
        trail.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    order = list(graph)
    for n, cycle in enumerate(cycles):
        start = min(range(len(cycle) - 1), key=lambda k: order.index(cycle[k]))
        cycles[n] = [*cycle[start:-1], *cycle[:start], cycle[start]]
    return cycles


def _check_cycles(rb: Runbook) -> list[Problem]:
    index = {p.id: i for i, p in enumerate(rb.phases)}
    phase_graph = {p.id: rb.phase_after(i) for i, p in enumerate(rb.phases)}
    problems: list[Problem] = []
    for cycle in _find_cycles(phase_graph):
        msg = f"phases wait for each other in a cycle: {' -> '.join(cycle)}"
        problems.append((("phases", index[cycle[0]], "after"), msg))
    if problems:
        return problems  # every step of those phases is in a cycle too: say it once
    paths = dict(_forward_steps(rb))
    paths_by_id = {step.id: path for path, step in paths.items()}
    for cycle in _find_cycles(rb.dependencies):
        path = paths_by_id[cycle[0]]
        step = rb.steps[cycle[0]]
        where = (*path, "needs") if cycle[1] in step.needs else path
        msg = f"dependency cycle: {' -> '.join(cycle)} (each step waits for the next)"
        problems.append((where, msg))
    return problems


# ---- actions and their parameters -------------------------------------------------------


def _check_actions(rb: Runbook, registry: ActionCatalogue) -> list[Problem]:
    problems: list[Problem] = []
    names = registry.names()
    for path, action_name, params in _action_calls(rb):
        if action_name not in names:
            msg = f"unknown action type {action_name!r}{_suggest(action_name, names)}"
            problems.append(((*path, "action"), msg))
            continue
        action = registry.get(action_name)
        try:
            action.Params.model_validate(params)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if not _is_template(e.get("input"))]
            for sub, msg in explain_errors(errors, action.Params, params):
                problems.append(((*path, "with", *sub), msg))
        if path[0] == "guards":
            reason = action.cannot_fail_a_guard(params)
            if reason:
                problems.append(((*path, "with"), reason))
        role_params = getattr(action, "role_params", None) or GATE_ROLE_PARAMS.get(action_name, ())
        for key in role_params:
            value = params.get(key)
            named = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            for k, role in enumerate(named):
                if isinstance(role, str) and not has_template(role) and role not in rb.roles:
                    sub = (key,) if isinstance(value, str) else (key, k)
                    msg = f"unknown role {role!r}{_suggest(role, list(rb.roles))}"
                    problems.append(((*path, "with", *sub), msg))
    return problems


def _is_template(value: object) -> bool:
    return isinstance(value, str) and has_template(value)


# ---- templates ---------------------------------------------------------------------------


def _strings(value: Any, path: DocPath) -> Iterator[tuple[DocPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _strings(item, (*path, k))


def _earlier_steps(rb: Runbook) -> dict[str, set[str]]:
    """Every step's dependencies, direct or not (only meaningful without cycles)."""
    deps = rb.dependencies
    memo: dict[str, set[str]] = {}

    def before(step: str) -> set[str]:
        if step not in memo:
            memo[step] = set()
            for dep in deps.get(step, []):
                if dep in deps:
                    memo[step] |= {dep, *before(dep)}
        return memo[step]

    return {step: before(step) for step in deps}


def check_migration_order(rb: Runbook) -> list[Problem]:
    """Breaking (contract) migrations run only after the app rollout: a ``migrate`` step of
    phase ``contract`` must come after every ``k8s_rollout`` step."""
    earlier = _earlier_steps(rb)
    rollouts = [s.id for s in rb.steps.values() if s.action == "k8s_rollout"]
    problems: list[Problem] = []
    for path, step in _forward_steps(rb):
        if step.id not in rb.contract_migrations:
            continue
        missing = [r for r in rollouts if r not in earlier.get(step.id, set())]
        if missing:
            problems.append(
                (
                    (*path, "needs"),
                    "a breaking (contract) migration must run after the app rollout; it does "
                    f"not wait for {', '.join(missing)}: add them to needs",
                )
            )
    return problems


def _check_templates(rb: Runbook, *, check_step_outputs: bool) -> list[Problem]:
    allowed = set(rb.parameters) | set(CONTEXT_ROOTS)
    allowed_text = ", ".join(dict.fromkeys([*rb.parameters, *CONTEXT_ROOTS]))
    earlier = _earlier_steps(rb) if check_step_outputs else {}
    all_steps = set(rb.steps) | {s.id for s in rb.rollback}
    problems: list[Problem] = []
    sources = [(path, (*path, "with"), params) for path, _action, params in _action_calls(rb)] + [
        (("comms",), ("comms", "templates"), dict(rb.comms.templates))
    ]
    for owner_path, base, value in sources:
        owner = _step_at(rb, owner_path)
        for path, text in _strings(value, base):
            if not has_template(text):
                continue
            try:
                use = inspect_template(text)
            except RunbookProblem as exc:
                problems.append((path, exc.message))
                continue
            for name in sorted(use.names - allowed):
                problems.append((path, f"unknown name {name!r} in template; known: {allowed_text}"))
            for attr in sorted(use.release - set(RELEASE_FIELDS)):
                known = ", ".join(RELEASE_FIELDS)
                problems.append((path, f"unknown release fact {attr!r}; known: {known}"))
            if path[:3] == ("comms", "templates", "start") and use.steps:
                used = ", ".join(sorted(use.steps))
                msg = f"the start message is sent before any step runs: it cannot use steps.{used}"
                problems.append((path, msg))
            for step_id in sorted(use.steps):
                if step_id not in all_steps:
                    hint = _suggest(step_id, list(rb.steps))
                    msg = f"uses outputs of unknown step {step_id!r}{hint}"
                    problems.append((path, msg))
                elif owner is not None and check_step_outputs and owner in earlier:
                    own = owner_path[-1] == "undo"  # an undo runs after its own step
                    if step_id not in earlier[owner] and not (own and step_id == owner):
                        msg = (
                            f"uses outputs of step {step_id!r}, which is not sure to have run "
                            f"before {owner!r}: add it to 'needs'"
                        )
                        problems.append((path, msg))
    return problems


# Jinja (~15 ms of CPU to import) is imported when a runbook has a template: the checks of
# templates are imported then, not with this module (a runbook without one never needs it).


def _template_problems(text: str, *, shell: bool) -> list[str]:
    from shipcaptain.runbook.template_checks import template_problems

    return template_problems(text, shell=shell)


def _output_references(text: str) -> list[OutputRef]:
    from shipcaptain.runbook.references import output_references

    return output_references(text)


def _check_template_safety(rb: Runbook, registry: ActionCatalogue) -> list[Problem]:
    """What the template sandbox would refuse (see ``template_checks``), in every template;
    in an action's shell command lines, also values that cannot be quoted where they are."""
    sources: list[tuple[DocPath, dict[str, Any], str | None]] = [
        ((*path, "with"), params, action) for path, action, params in _action_calls(rb)
    ]
    sources.append((("comms", "templates"), dict(rb.comms.templates), None))
    problems: list[Problem] = []
    for base, value, action in sources:
        shell = registry.get(action).shell_params if action in registry.names() else ()
        for path, text in _strings(value, base):
            if has_template(text):
                is_shell = len(path) == len(base) + 1 and path[-1] in shell
                problems += [(path, m) for m in _template_problems(text, shell=is_shell)]
    return problems


def _template_strings(rb: Runbook) -> Iterator[tuple[DocPath, str]]:
    """Every template of the runbook: action parameters (steps, rollback steps, undo calls,
    guard checks) and comms templates."""
    for path, _action, params in _action_calls(rb):
        for sub, text in _strings(params, (*path, "with")):
            if has_template(text):
                yield sub, text
    for name, text in rb.comms.templates.items():
        if has_template(text):
            yield ("comms", "templates", name), text
    for path, step in _forward_steps(rb):
        if step.when is not None:
            yield (*path, "when"), as_template(step.when)


def check_output_references(rb: Runbook, registry: ActionCatalogue) -> list[Problem]:
    """``steps.<id>.<output>`` names an output the step's action declares (its
    ``Outputs`` model); the GitHub Actions spelling ``steps.<id>.outputs.<name>`` is
    refused with the spelling that works. Unknown steps are reported by the template
    check; actions that declare no outputs model are not checked."""
    actions = {s.id: s.action for s in [*rb.steps.values(), *rb.rollback]}
    names = set(registry.names())
    problems: list[Problem] = []
    for path, text in _template_strings(rb):
        for ref in _output_references(text):
            action_name = actions.get(ref.step)
            if action_name is None or action_name not in names:
                continue
            declared = registry.get(action_name).Outputs
            if declared is None:
                continue
            outputs = declared.names()
            if ref.output in outputs:
                continue
            if ref.output == "outputs" and ref.then is not None:
                if ref.then in outputs or not declared.open_ended():
                    right = f"steps.{ref.step}.{ref.then}"
                    hint = (
                        f"did you mean {right}?"
                        if ref.then in outputs
                        else f"{action_name} outputs: {', '.join(outputs) or 'nothing'}"
                    )
                    problems.append(
                        (
                            path,
                            f"{ref.text} is the GitHub Actions spelling; a step's outputs are "
                            f"read as steps.<id>.<output>: {hint}",
                        )
                    )
                continue
            if declared.open_ended():
                continue
            close = difflib.get_close_matches(ref.output, outputs, n=1)
            hint = (
                f"did you mean steps.{ref.step}.{close[0]}?"
                if close
                else f"{action_name} outputs: {', '.join(outputs) or 'nothing'}"
            )
            msg = f"step {ref.step!r} ({action_name}) has no output {ref.output!r}: {hint}"
            problems.append((path, msg))
    return problems


def check_release_commit(rb: Runbook) -> list[Problem]:
    """One commit per release: where CI judges a commit (a ``ci_green`` step), the release
    tag goes on that commit, read from that step's outputs, not on whatever the checkout's
    ``HEAD`` is when the tag step runs."""
    judged = [s.id for s in rb.steps.values() if s.action == "ci_green"]
    if not judged:
        return []
    problems: list[Problem] = []
    for path, step in _forward_steps(rb):
        if step.action != "git_tag":
            continue
        commit = step.with_.get("commit", "HEAD")
        if isinstance(commit, str) and any(
            ref.step in rb.steps for ref in _output_references(commit)
        ):
            continue
        where = (*path, "with", "commit") if "commit" in step.with_ else (*path, "with")
        problems.append(
            (
                where,
                f"tags {commit!r} of the checkout, which need not be the commit CI judged in "
                f'step {judged[0]!r}: write commit: "{{{{ steps.{judged[0]}.commit }}}}" so '
                "the release tags, builds and verifies the commit CI judged",
            )
        )
    return problems


_DECLARE = (
    'declare it at the top of the runbook: environment: "{{{{ {param} }}}}" (or a fixed '
    "name, environment: production)"
)


def check_environment(rb: Runbook) -> list[Problem]:
    """The release's environment is declared (``environment:``), never guessed: the
    declaration uses only parameters, and a runbook that relies on environments (exclusive
    environments, incident rules, ``release.environment`` in a template, a parameter that
    reads like one) without declaring one is refused."""
    params = list(rb.parameters)
    if rb.environment is not None:
        if not has_template(rb.environment):
            return []
        try:
            use = inspect_template(rb.environment)
        except RunbookProblem as exc:
            return [(("environment",), exc.message)]
        others = sorted(use.names - set(params))
        if others:
            known = ", ".join(params) or "none"
            msg = (
                f"the environment is known when the release is created: it may use the "
                f"parameters ({known}), not {', '.join(others)}"
            )
            return [(("environment",), msg)]
        return []
    like = [p for p in params if p in ENVIRONMENT_LIKE]
    hint = _DECLARE.format(param=like[0] if like else "<parameter>")
    problems: list[Problem] = [
        (
            ("parameters", name),
            f"parameter {name!r} reads like the release's environment, but a parameter's "
            f"name decides nothing: {_DECLARE.format(param=name)}",
        )
        for name in like
    ]
    # against the defaults, not what the file spelt: a dumped runbook spells every field
    if rb.exclusive_environments != Runbook.model_fields["exclusive_environments"].get_default(
        call_default_factory=True
    ):
        msg = f"exclusive environments need the release's environment: {hint}"
        problems.append((("exclusive_environments",), msg))
    if rb.incidents.customer_facing != ["production"]:
        msg = f"customer-facing environments need the release's environment: {hint}"
        problems.append((("incidents", "customer_facing"), msg))
    for path, text in _template_strings(rb):
        try:
            use = inspect_template(text)
        except RunbookProblem:
            continue  # reported by the template check
        if "environment" in use.release:
            msg = f"uses release.environment, but the runbook declares none: {hint}"
            problems.append((path, msg))
    return problems


def check_conditions(rb: Runbook, *, check_order: bool = True) -> list[Problem]:
    """A step's ``when`` is an expression that parses, uses known names, and reads only
    steps sure to have finished before it; rollback steps have none."""
    allowed = set(rb.parameters) | set(CONTEXT_ROOTS)
    earlier = _earlier_steps(rb) if check_order else {}
    problems: list[Problem] = [
        ((*path, "when"), "a rollback step always runs when the rollback does: drop 'when'")
        for path, step in _rollback_steps(rb)
        if step.when is not None
    ]
    for path, step in _forward_steps(rb):
        if step.when is None:
            continue
        where = (*path, "when")
        try:
            use = inspect_condition(step.when)
        except RunbookProblem as exc:
            problems.append((where, exc.message))
            continue
        for name in sorted(use.names - allowed):
            known = ", ".join(dict.fromkeys([*rb.parameters, *CONTEXT_ROOTS]))
            problems.append((where, f"unknown name {name!r} in the condition; known: {known}"))
        for step_id in sorted(use.steps):
            if step_id not in rb.steps:
                hint = _suggest(step_id, list(rb.steps))
                problems.append((where, f"the condition reads unknown step {step_id!r}{hint}"))
            elif check_order and step_id not in earlier.get(step.id, set()):
                msg = (
                    f"the condition reads step {step_id!r}, which is not sure to have run "
                    f"before {step.id!r}: add it to 'needs'"
                )
                problems.append((where, msg))
    return problems


def _check_incidents_and_comms(rb: Runbook) -> list[Problem]:
    """Comms and incident rules name steps, phases, roles and severities that exist."""
    problems: list[Problem] = []
    for i, sid in enumerate(rb.comms.smoke_tests or []):
        if sid not in rb.steps:
            msg = f"unknown step {sid!r}{_suggest(sid, list(rb.steps))}"
            problems.append((("comms", "smoke_tests", i), msg))
    rules = rb.incidents
    phases = [p.id for p in rb.phases]
    for i, pid in enumerate(rules.post_deploy_phases):
        # the default names the deployment runbook's phase: only a chosen list must exist
        if pid not in phases and rules.post_deploy_phases != ["post_deploy"]:
            msg = f"unknown phase {pid!r}{_suggest(pid, phases)}"
            problems.append((("incidents", "post_deploy_phases", i), msg))
    for i, role in enumerate(rules.owners):
        if role not in rb.roles:
            problems.append((("incidents", "owners", i), f"unknown role {role!r}"))
    if rb.slas and rules.severity not in rb.slas:
        known = ", ".join(rb.slas)
        msg = f"severity {rules.severity!r} is not in the SLA table ({known})"
        problems.append((("incidents", "severity"), msg))
    return problems


def _step_at(rb: Runbook, path: DocPath) -> str | None:
    """The id of the forward step at ``path`` (or whose undo it is), else None."""
    if path[0] != "phases":
        return None
    i, j = int(path[1]), int(path[3])
    return rb.phases[i].steps[j].id


# ---- pydantic errors in the captain's words ----------------------------------------------

_IDENTIFIER_PATTERN = next(m.pattern for m in get_args(Identifier)[1:] if hasattr(m, "pattern"))
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "empty (null)",
}


def format_path(path: DocPath) -> str:
    """``phases[2].steps[0].with.command``: the path as the YAML file spells it."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += ("." if out else "") + part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def explain_errors(
    errors: Sequence[ErrorDetails], model: type[BaseModel], data: Any
) -> list[Problem]:
    """pydantic's errors for ``data`` (validated as ``model``) as paths into ``data`` and
    plain messages; the several errors of one value that fits no member of a union are one."""
    groups: dict[DocPath, list[ErrorDetails]] = {}
    for error in errors:
        groups.setdefault(_document_path(error, data), []).append(error)
    problems: list[Problem] = []
    for path, group in groups.items():
        if len(group) == 1:
            problems.append((path, _message(group[0], model, path)))
        else:
            wanted = list(dict.fromkeys(_expected(e) for e in group))
            text = ", ".join(wanted[:-1]) + " or " + wanted[-1] if len(wanted) > 1 else wanted[0]
            problems.append((path, f"must be {text}; got {_shown(group[0].get('input'))}"))
    return problems


def _document_path(error: ErrorDetails, data: Any) -> DocPath:
    """Follow pydantic's ``loc`` through ``data``; drop the parts that name union members."""
    loc = error["loc"]
    path: list[str | int] = []
    node = data
    for n, part in enumerate(loc):
        in_mapping = isinstance(node, Mapping) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        elif not (error["type"] == "missing" and n == len(loc) - 1):
            continue  # the name of a union member, '[key]', ...: not in the document
        path.append(part)
    return tuple(path)


def _expected(error: ErrorDetails) -> str:
    return _EXPECTED.get(error["type"], error["msg"].removeprefix("Input should be "))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: ErrorDetails, model: type[BaseModel], path: DocPath) -> str:
    kind, msg, value = error["type"], error["msg"], error.get("input")
    ctx = error.get("ctx", {})
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        fields = _fields_at(model, path[:-1])
        name = str(path[-1]) if path else ""
        hint = _suggest(name, fields) if fields is not None else ""
        return f"unknown field {name!r}{hint}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    is_key = "[key]" in error["loc"]
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _IDENTIFIER_PATTERN:
        what = "name" if is_key else "identifier"
        return f"{value!r} is not a valid {what}: use a-z, 0-9, '_' and '-', starting with a letter"
    if kind in ("enum", "literal_error"):
        return f"must be {ctx.get('expected')}; got {_shown(value)}"
    if kind == "too_short" and isinstance(value, list | dict):
        count = ctx.get("min_length", 1)
        return f"needs at least {count} item{'s' if count != 1 else ''}"
    text = _EXPECTED.get(kind)
    text = f"must be {text}" if text else msg.replace("Input should be", "must be")
    if is_key:
        return f"the name {value!r} is not allowed: {text}"
    scalar = value is None or isinstance(value, str | int | float)
    return f"{text}; got {_shown(value)}" if scalar else text


def _fields_at(model: type[BaseModel], path: DocPath) -> list[str] | None:
    """The field names (as written in YAML) of the model found at ``path``, if any."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` is X; ``X | None`` is X (the first member that has fields)."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = next(
                (a for a in members if get_origin(a) in (list, dict) or _is_model(a)), members[0]
            )
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
