"""check_runbook: references, cycles, roles, action types and parameters, template names."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import Field

from shipcaptain.actions.base import (
    Action,
    ActionParams,
    DurableAction,
    DurableContext,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.actions.checks import SqlCheckAction
from shipcaptain.actions.registry import Registry
from shipcaptain.runbook.checks import (
    check_runbook,
    explain_errors,
    format_path,
)
from shipcaptain.runbook.durations import Duration
from shipcaptain.runbook.model import Runbook


class CommandParams(ActionParams):
    command: str = Field(min_length=1)
    timeout: Duration | None = None
    retries: int = 0


class FakeShell(Action[CommandParams]):
    name = "shell"
    Params = CommandParams

    def describe(self, params: CommandParams, ctx: PlanContext) -> str:
        return params.command

    def run(self, params: CommandParams, ctx: StepContext) -> Outcome:
        return Outcome.success()


class ApprovalParams(ActionParams):
    prompt: str
    roles: list[str] = []
    quorum: int = Field(default=1, ge=1)


class FakeApproval(DurableAction[ApprovalParams]):
    name = "approval"
    Params = ApprovalParams

    def describe(self, params: ApprovalParams, ctx: PlanContext) -> str:
        return params.prompt

    def run_durable(self, params: ApprovalParams, ctx: DurableContext) -> Outcome:
        return Outcome.success()


class ChecklistParams(ActionParams):
    item: str
    confirm_by: str | None = None


class FakeChecklist(DurableAction[ChecklistParams]):
    name = "checklist"
    Params = ChecklistParams

    def describe(self, params: ChecklistParams, ctx: PlanContext) -> str:
        return params.item

    def run_durable(self, params: ChecklistParams, ctx: DurableContext) -> Outcome:
        return Outcome.success()


class PageParams(ActionParams):
    team: str


class FakePager(DurableAction[PageParams]):
    """A plug-in gate that names a role in a parameter of its own."""

    name = "page"
    Params = PageParams
    role_params: ClassVar[tuple[str, ...]] = ("team",)

    def describe(self, params: PageParams, ctx: PlanContext) -> str:
        return params.team

    def run_durable(self, params: PageParams, ctx: DurableContext) -> Outcome:
        return Outcome.success()


class OnlyRegistered(Registry):
    def _load_entry_points(self) -> None:
        self._loaded = True


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = OnlyRegistered()
    for cls in (FakeShell, FakeApproval, FakeChecklist, FakePager):
        reg.register(cls)
    return reg


def shell(step_id: str, command: str = "true", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "shell", "with": {"command": command}, **extra}


def runbook(*phases: list[dict[str, Any]], **top: Any) -> Runbook:
    data: dict[str, Any] = {
        "name": "demo",
        "roles": {"captain": {"title": "Captain"}, "sre": {"title": "SRE"}},
        "parameters": {"version": {"required": True}},
        "phases": [{"id": f"p{n}", "steps": steps} for n, steps in enumerate(phases)],
    }
    data.update(top)
    return Runbook.model_validate(data)


def found(rb: Runbook, registry: Registry) -> list[tuple[str, str]]:
    return [(format_path(path), msg) for path, msg in check_runbook(rb, registry)]


def test_a_clean_runbook_has_no_problems(registry: Registry) -> None:
    rb = runbook(
        [shell("tag", "git tag v{{ version }}", owner="captain")],
        [
            shell("deploy", "deploy {{ steps.tag.commit }}", needs=["tag"]),
            {
                "id": "sign_off",
                "action": "approval",
                "with": {"prompt": "ok?", "roles": ["captain"]},
            },
        ],
        rollback=[shell("undo", "undo {{ release.reason }}")],
        comms={"templates": {"start": "v{{ version }} by {{ release.started_by }}"}},
    )
    assert found(rb, registry) == []


# ---- ids and references ----------------------------------------------------------------


def test_duplicate_step_ids_across_phases_and_rollback(registry: Registry) -> None:
    rb = runbook([shell("tag")], [shell("tag")], rollback=[shell("tag")])
    assert found(rb, registry) == [
        ("phases[1].steps[0].id", "step id 'tag' is already used by phases[0].steps[0]"),
        ("rollback[0].id", "step id 'tag' is already used by phases[0].steps[0]"),
    ]


def test_duplicate_phase_ids(registry: Registry) -> None:
    data = runbook([shell("a")], [shell("b")]).model_dump(by_alias=True)
    data["phases"][1]["id"] = "p0"
    assert found(Runbook.model_validate(data), registry) == [
        ("phases[1].id", "phase id 'p0' is already used by phases[0]"),
    ]


def test_needs_an_unknown_step(registry: Registry) -> None:
    rb = runbook([shell("tag"), shell("push", needs=["tga"])])
    assert found(rb, registry) == [
        ("phases[0].steps[1].needs[0]", "needs unknown step 'tga'; did you mean 'tag'?")
    ]


def test_rollback_steps_only_need_rollback_steps(registry: Registry) -> None:
    rb = runbook([shell("tag")], rollback=[shell("undo", needs=["tag", "nothing"])])
    assert found(rb, registry) == [
        (
            "rollback[0].needs[0]",
            "'tag' is a release step; a rollback step can only need rollback steps",
        ),
        ("rollback[0].needs[1]", "needs unknown rollback step 'nothing'; known: undo"),
    ]


def test_after_an_unknown_phase(registry: Registry) -> None:
    data = runbook([shell("a")], [shell("b")]).model_dump(by_alias=True)
    data["phases"][1]["after"] = ["p9"]
    assert found(Runbook.model_validate(data), registry) == [
        ("phases[1].after[0]", "runs after unknown phase 'p9'; known: p0, p1"),
    ]


def test_unknown_guards_and_guard_steps(registry: Registry) -> None:
    rb = runbook(
        [shell("a", guards=["rollout_done", "replicas_ok"])],
        guards={"rollout_done": {"after_steps": ["a", "rollout"]}},
    )
    assert found(rb, registry) == [
        ("phases[0].steps[0].guards[1]", "unknown guard 'replicas_ok'; known: rollout_done"),
        ("guards.rollout_done.after_steps[1]", "waits for unknown step 'rollout'; known: a"),
        (
            "phases[0].steps[0].guards[0]",
            "guard 'rollout_done' waits for step 'a' itself, and a guard is checked before its "
            "step starts: it could never pass; guard another step",
        ),
    ]


def test_owner_must_be_a_role(registry: Registry) -> None:
    rb = runbook([shell("a", owner="captian")], rollback=[shell("r", owner="ops")])
    assert found(rb, registry) == [
        ("phases[0].steps[0].owner", "unknown role 'captian'; did you mean 'captain'?"),
        ("rollback[0].owner", "unknown role 'ops'; known: captain, sre"),
    ]


# ---- cycles ------------------------------------------------------------------------------


def test_a_cycle_of_needs_names_its_steps_in_order(registry: Registry) -> None:
    rb = runbook([shell("a", needs=["c"]), shell("b", needs=["a"]), shell("c", needs=["b"])])
    assert found(rb, registry) == [
        (
            "phases[0].steps[0].needs",
            "dependency cycle: a -> c -> b -> a (each step waits for the next)",
        )
    ]


def test_a_cycle_through_a_guard(registry: Registry) -> None:
    rb = runbook(
        [shell("migrate", guards=["after_rollout"]), shell("rollout", needs=["migrate"])],
        guards={"after_rollout": {"after_steps": ["rollout"]}},
    )
    [(where, message)] = found(rb, registry)
    assert where == "phases[0].steps[0]"
    assert message.startswith("dependency cycle: migrate -> rollout -> migrate")


def test_a_cycle_against_the_phase_order(registry: Registry) -> None:
    # p1 runs after p0 by default, so a step of p0 cannot need one of p1
    rb = runbook([shell("a", needs=["b"])], [shell("b")])
    [(where, message)] = found(rb, registry)
    assert where == "phases[0].steps[0].needs"
    assert message.startswith("dependency cycle: a -> b -> a")


def test_phases_after_each_other_are_one_problem(registry: Registry) -> None:
    data = runbook([shell("a")], [shell("b")]).model_dump(by_alias=True)
    data["phases"][0]["after"] = ["p1"]
    assert found(Runbook.model_validate(data), registry) == [
        ("phases[0].after", "phases wait for each other in a cycle: p0 -> p1 -> p0"),
    ]


def test_a_later_phase_may_be_needed_when_the_order_allows_it(registry: Registry) -> None:
    # the rollout phase runs after build only, so it may need a step of the migrations phase
    rb = Runbook.model_validate(
        {
            "name": "demo",
            "phases": [
                {"id": "build", "steps": [shell("tag")]},
                {"id": "migrations", "steps": [shell("expand"), shell("contract")]},
                {
                    "id": "rollout",
                    "after": ["build"],
                    "steps": [shell("apply", needs=["expand"])],
                },
            ],
        }
    )
    assert found(rb, registry) == []


# ---- actions -----------------------------------------------------------------------------


def test_unknown_action_types_everywhere(registry: Registry) -> None:
    rb = runbook(
        [
            {"id": "a", "action": "shel", "with": {}},
            shell("b", undo={"action": "kubectl", "with": {}}),
        ],
        rollback=[{"id": "r", "action": "slack"}],
        guards={"g": {"check": {"action": "prometheus", "with": {}}}},
    )
    assert found(rb, registry) == [
        ("phases[0].steps[0].action", "unknown action type 'shel'; did you mean 'shell'?"),
        (
            "phases[0].steps[1].undo.action",
            "unknown action type 'kubectl'; known: approval, checklist, page, shell",
        ),
        (
            "rollback[0].action",
            "unknown action type 'slack'; known: approval, checklist, page, shell",
        ),
        (
            "guards.g.check.action",
            "unknown action type 'prometheus'; known: approval, checklist, page, shell",
        ),
    ]


def test_action_parameters_are_checked_by_the_action(registry: Registry) -> None:
    rb = runbook(
        [
            {"id": "a", "action": "shell", "with": {"comand": "true"}},
            {"id": "b", "action": "shell", "with": {"command": "true", "timeout": "soon"}},
            {"id": "c", "action": "approval", "with": {"prompt": "ok?", "quorum": 0}},
        ]
    )
    assert found(rb, registry) == [
        ("phases[0].steps[0].with.command", "required field is missing"),
        ("phases[0].steps[0].with.comand", "unknown field 'comand'; did you mean 'command'?"),
        (
            "phases[0].steps[1].with.timeout",
            "'soon' is not a duration; write a number of seconds or text like '30s', '5m', '1h30m'",
        ),
        ("phases[0].steps[2].with.quorum", "must be greater than or equal to 1; got 0"),
    ]


def test_undo_and_guard_check_parameters_are_checked(registry: Registry) -> None:
    rb = runbook(
        [shell("a", undo={"action": "shell", "with": {}})],
        guards={"g": {"check": {"action": "shell", "with": {"command": ""}}}},
    )
    assert found(rb, registry) == [
        ("phases[0].steps[0].undo.with.command", "required field is missing"),
        ("guards.g.check.with.command", "String should have at least 1 character; got ''"),
    ]


def test_a_templated_value_is_checked_after_rendering(registry: Registry) -> None:
    rb = runbook(
        [
            shell("a", "true", **{}),
            {
                "id": "b",
                "action": "shell",
                "with": {"command": "true", "retries": "{{ version }}", "timeout": "later"},
            },
        ]
    )
    # the template may well render to a number; the plain text cannot be a duration
    assert found(rb, registry) == [
        (
            "phases[0].steps[1].with.timeout",
            "'later' is not a duration; write a number of seconds or text like "
            "'30s', '5m', '1h30m'",
        )
    ]


def test_gates_name_known_roles(registry: Registry) -> None:
    rb = runbook(
        [
            {
                "id": "a",
                "action": "approval",
                "with": {"prompt": "ok?", "roles": ["sre", "owners"]},
            },
            {"id": "b", "action": "checklist", "with": {"item": "backup", "confirm_by": "capitan"}},
            {"id": "c", "action": "page", "with": {"team": "dba"}},
            {
                "id": "d",
                "action": "checklist",
                "with": {"item": "x", "confirm_by": "{{ version }}"},
            },
        ]
    )
    assert found(rb, registry) == [
        ("phases[0].steps[0].with.roles[1]", "unknown role 'owners'; known: captain, sre"),
        ("phases[0].steps[1].with.confirm_by", "unknown role 'capitan'; did you mean 'captain'?"),
        ("phases[0].steps[2].with.team", "unknown role 'dba'; known: captain, sre"),
    ]


# ---- templates ---------------------------------------------------------------------------


def test_templates_may_only_use_parameters_and_release_values(registry: Registry) -> None:
    rb = runbook(
        [
            shell(
                "a", "echo {{ versoin }} {{ release.id }} {{ roles.sre.title }} {{ runbook.name }}"
            )
        ],
        comms={"templates": {"start": "{{ who }} deploys {{ version }}"}},
    )
    known = "known: version, release, steps, roles, runbook"
    assert found(rb, registry) == [
        ("phases[0].steps[0].with.command", f"unknown name 'versoin' in template; {known}"),
        ("comms.templates.start", f"unknown name 'who' in template; {known}"),
    ]


def test_names_set_inside_a_template_are_fine(registry: Registry) -> None:
    rb = runbook(
        [shell("a", "{% for d in ['api', 'web'] %}{{ d }}{% endfor %} {{ range(3)|list }}")]
    )
    assert found(rb, registry) == []


def test_template_syntax_errors(registry: Registry) -> None:
    rb = runbook([shell("a", "echo {{ version"), shell("b", "echo {{ version | nofilter }}")])
    assert found(rb, registry) == [
        (
            "phases[0].steps[0].with.command",
            "template syntax error: unexpected end of template, expected 'end of print statement'.",
        ),
        ("phases[0].steps[1].with.command", "template syntax error: No filter named 'nofilter'."),
    ]


def test_templates_in_nested_parameters_are_checked(registry: Registry) -> None:
    rb = runbook(
        [{"id": "a", "action": "approval", "with": {"prompt": "ok", "roles": ["{{ team }}"]}}]
    )
    assert found(rb, registry) == [
        (
            "phases[0].steps[0].with.roles[0]",
            "unknown name 'team' in template; known: version, release, steps, roles, runbook",
        )
    ]


def test_step_outputs_must_come_from_earlier_steps(registry: Registry) -> None:
    rb = runbook(
        [shell("tag"), shell("build", "echo {{ steps.tag.commit }}")],
        [shell("deploy", "echo {{ steps['build'].image }} {{ steps.nothing.x }}")],
        rollback=[shell("r", "echo {{ steps.deploy.x }}")],
    )
    assert found(rb, registry) == [
        (
            "phases[0].steps[1].with.command",
            "uses outputs of step 'tag', which is not sure to have run before 'build': "
            "add it to 'needs'",
        ),
        (
            "phases[1].steps[0].with.command",
            "uses outputs of unknown step 'nothing'; known: tag, build, deploy",
        ),
    ]


def test_an_undo_may_use_its_own_steps_outputs(registry: Registry) -> None:
    rb = runbook(
        [shell("tag", undo={"action": "shell", "with": {"command": "rm {{ steps.tag.x }}"}})]
    )
    assert found(rb, registry) == []


# ---- parameters --------------------------------------------------------------------------


def test_parameter_names_and_defaults(registry: Registry) -> None:
    rb = runbook(
        [shell("a")],
        parameters={
            "steps": {},
            "env": {"default": "prod", "choices": ["staging", "production"]},
            "count": {"type": "integer", "default": "many"},
            "version": {"required": True, "default": "1.0.0", "pattern": r"\d+\.\d+\.\d+"},
        },
    )
    assert found(rb, registry) == [
        (
            "parameters.steps",
            "the name 'steps' is reserved for templates (release, steps, roles, runbook)",
        ),
        (
            "parameters.env.default",
            "bad default: parameter 'env' must be one of staging, production, not 'prod'",
        ),
        (
            "parameters.count.default",
            "bad default: parameter 'count' must be a whole number, not 'many'",
        ),
        (
            "parameters.version.required",
            "a parameter with a default is never missing: drop 'required' or 'default'",
        ),
        (
            "parameters.env",
            "parameter 'env' reads like the release's environment, but a parameter's name "
            'decides nothing: declare it at the top of the runbook: environment: "{{ env }}" '
            "(or a fixed name, environment: production)",
        ),
    ]


# ---- helpers -----------------------------------------------------------------------------


def test_format_path_spells_paths_like_the_file() -> None:
    assert (
        format_path(("phases", 2, "steps", 0, "with", "command"))
        == "phases[2].steps[0].with.command"
    )
    assert format_path(("slas", "P1", "mitigate")) == "slas.P1.mitigate"
    assert format_path(("roles", "Bad Role")) == 'roles["Bad Role"]'
    assert format_path(()) == ""


def test_explain_errors_follows_the_data_not_union_tags() -> None:
    from pydantic import ValidationError

    class Expect(ActionParams):
        status: int | list[int]
        labels: list[str | int] = []

    data = {"status": {"code": 200}, "labels": ["a", 1.5]}
    with pytest.raises(ValidationError) as info:
        Expect.model_validate(data)
    assert explain_errors(info.value.errors(), Expect, data) == [
        (("status",), "must be a whole number or a list; got {'code': 200}"),
        (("labels", 1), "must be text or a whole number; got 1.5"),
    ]


def _migrate(step_id: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "migrate", "with": {"directory": "m", "phase": phase}, **extra}


def _rollout(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "k8s_rollout", "with": {"deployments": [step_id]}, **extra}


def test_a_contract_migration_must_wait_for_every_rollout(registry: Registry) -> None:
    early = runbook(
        [_migrate("expand", "expand"), _migrate("contract", "contract")],
        [_rollout("api"), _rollout("web")],
    )
    order = [(p, m) for p, m in found(early, registry) if "contract" in m]
    assert order == [
        (
            "phases[0].steps[1].needs",
            "a breaking (contract) migration must run after the app rollout; it does not "
            "wait for api, web: add them to needs",
        )
    ]
    half = runbook([_migrate("expand", "expand"), _rollout("api"), _rollout("web")],
                   [_migrate("contract", "contract", needs=["api"])])  # fmt: skip
    # the second phase runs after the first: both rollouts are already before it
    assert [m for _, m in found(half, registry) if "contract" in m] == []
    beside = runbook(
        [_migrate("expand", "expand"), _rollout("api", needs=["expand"]),
         _migrate("contract", "contract", needs=["expand"])],
    )  # fmt: skip
    assert [m for _, m in found(beside, registry) if "contract" in m] == [
        "a breaking (contract) migration must run after the app rollout; it does not "
        "wait for api: add them to needs"
    ]


def test_a_guard_must_be_able_to_stop_its_step(registry: Registry) -> None:
    registry.register(SqlCheckAction)
    query = "select count(*) from pg_stat_replication"
    rb = runbook(
        [shell("a", guards=["recorded", "judged"])],
        guards={
            "recorded": {"check": {"action": "sql_check", "with": {"query": query}}},
            "judged": {"check": {"action": "sql_check", "with": {"query": query, "above": 0}}},
        },
    )
    assert found(rb, registry) == [
        (
            "guards.recorded.check.with",
            "a guard's sql_check needs an expectation (equals, below, above or rows)",
        )
    ]
