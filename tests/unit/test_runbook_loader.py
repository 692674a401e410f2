"""Loading runbook files: every mistake is reported with file, line and field, never a traceback."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from shipcaptain.actions.base import Action, ActionParams, Outcome, PlanContext, StepContext
from shipcaptain.actions.registry import Registry
from shipcaptain.errors import InvalidRunbook, Location, RunbookProblem
from shipcaptain.runbook.durations import Duration
from shipcaptain.runbook.loader import (
    load_runbook,
    load_runbook_file,
    parse_runbook,
    runbook_digest,
)
from shipcaptain.runbook.templating import (
    ReleaseInfo,
    build_context,
    render_params,
    render_text,
    resolve_parameters,
)

APPS = ("api", "web", "worker")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "valuecanvas" / "runbook.yaml"


class CommandParams(ActionParams):
    command: str = Field(min_length=1)
    timeout: Duration | None = None


class FakeShell(Action[CommandParams]):
    name = "shell"
    Params = CommandParams

    def describe(self, params: CommandParams, ctx: PlanContext) -> str:
        return params.command

    def run(self, params: CommandParams, ctx: StepContext) -> Outcome:
        return Outcome.success()


class OnlyRegistered(Registry):
    """A registry that knows only what a test registers (no installed plug-ins)."""

    def _load_entry_points(self) -> None:
        self._loaded = True


@pytest.fixture
def registry() -> Registry:
    reg = OnlyRegistered()
    reg.register(FakeShell)
    return reg


def write(tmp_path: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path, registry: Registry) -> list[RunbookProblem]:
    with pytest.raises(InvalidRunbook) as info:
        load_runbook(path, registry=registry)
    assert all(isinstance(p, RunbookProblem) for p in info.value.problems)
    return info.value.problems  # type: ignore[return-value]


GOOD = """
name: demo
roles:
  captain:
    title: Release Captain
parameters:
  version:
    required: true
phases:
  - id: build
    steps:
      - id: tag
        action: shell
        owner: captain
        with:
          command: |
            git tag v{{ version }}
"""


def test_a_good_runbook_loads_with_its_text_and_digest(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, GOOD)
    loaded = load_runbook_file(path, registry=registry)
    assert loaded.runbook.name == "demo"
    assert loaded.path == path
    assert loaded.text == path.read_text(encoding="utf-8")
    assert loaded.digest == hashlib.sha256(loaded.text.encode()).hexdigest()
    assert runbook_digest(loaded.text) == loaded.digest
    # ruamel's string types are gone: a block scalar is a plain str
    command = loaded.runbook.steps["tag"].with_["command"]
    assert type(command) is str
    assert command == "git tag v{{ version }}\n"


def test_parse_runbook_names_the_given_file(registry: Registry) -> None:
    text = textwrap.dedent(GOOD).lstrip("\n").replace("owner: captain", "owner: nobody")
    with pytest.raises(InvalidRunbook) as info:
        parse_runbook(text, "from-api.yaml", registry=registry)
    assert str(info.value).startswith("from-api.yaml:13: phases[0].steps[0].owner: unknown role")


def test_a_bad_timeout_names_file_line_and_field(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - id: build
            steps:
              - id: first
                action: shell
                with: {command: "true"}
              - id: second
                action: shell
                with: {command: "true"}
                timeout: soon
        """,
        name="file.yaml",
    )
    [problem] = problems_of(path, registry)
    assert problem.location == Location(str(path), 11, "phases[0].steps[1].timeout")
    assert str(problem).startswith(f"{path}:11: phases[0].steps[1].timeout: 'soon' is not a")


def test_every_problem_is_listed_in_line_order(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        roles:
          Bad Role: {title: x}
        phases:
          - id: build
            steps:
              - id: tag
                action: shell
                tiemout: 3
                on_failure: abort
              - id: push
        """,
    )
    found = [(p.location.line, p.location.field, p.message) for p in problems_of(path, registry)]
    assert found == [
        (
            3,
            'roles["Bad Role"]',
            "'Bad Role' is not a valid name: use a-z, 0-9, '_' and '-', starting with a letter",
        ),
        (9, "phases[0].steps[0].tiemout", "unknown field 'tiemout'; did you mean 'timeout'?"),
        (
            10,
            "phases[0].steps[0].on_failure",
            "must be 'halt', 'rollback' or 'continue'; got 'abort'",
        ),
        # a missing field has no line of its own: the step's line is used
        (11, "phases[0].steps[1].action", "required field is missing"),
    ]


def test_a_value_that_fits_no_union_member_is_one_problem(
    tmp_path: Path, registry: Registry
) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        parameters:
          version:
            default: [1, 2]
        phases:
          - id: build
            steps: [{id: tag, action: shell, with: {command: "true"}}]
        """,
    )
    [problem] = problems_of(path, registry)
    assert problem.location is not None
    assert (problem.location.line, problem.location.field) == (4, "parameters.version.default")
    assert problem.message == "must be text, a whole number or true or false; got [1, 2]"


def test_a_list_that_must_not_be_empty(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, "name: demo\nphases:\n  - id: build\n    steps: []\n")
    [problem] = problems_of(path, registry)
    assert str(problem) == f"{path}:4: phases[0].steps: needs at least 1 item"


def test_action_parameters_use_the_yaml_key_with(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - id: build
            steps:
              - id: tag
                action: shell
                with:
                  command: git tag
                  timeout: whenever
        """,
    )
    [problem] = problems_of(path, registry)
    assert problem.location == Location(str(path), 9, "phases[0].steps[0].with.timeout")
    assert "'whenever' is not a duration" in problem.message


def test_checks_report_the_line_of_the_reference(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - id: build
            steps:
              - id: tag
                action: shell
                with: {command: "true"}
              - id: push
                action: shell
                needs:
                  - tag
                  - tga
                with: {command: "true"}
        """,
    )
    [problem] = problems_of(path, registry)
    assert str(problem) == (
        f"{path}:12: phases[0].steps[1].needs[1]: needs unknown step 'tga'; did you mean 'tag'?"
    )


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, "name: demo\nphases:\n  - id: [build\n    steps: []\n")
    [problem] = problems_of(path, registry)
    assert problem.location is not None
    assert problem.location.file == str(path)
    assert problem.location.line == 4
    assert problem.message.startswith("not valid YAML: ")
    assert "from line 3" in problem.message


def test_a_duplicate_key_is_a_mistake(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, "name: demo\nname: other\nphases: []\n")
    [problem] = problems_of(path, registry)
    assert problem.location is not None
    assert problem.location.line == 2
    assert 'duplicate key "name"' in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the runbook is empty"),
        ("# only a comment\n", "the runbook is empty"),
        ("- name: demo\n", "the runbook must be a mapping (name:, phases:, ...) at the top level"),
    ],
)
def test_a_file_that_is_not_a_runbook(
    tmp_path: Path, registry: Registry, text: str, message: str
) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(text, encoding="utf-8")
    [problem] = problems_of(path, registry)
    assert problem.message == message


def test_a_missing_file_is_an_invalid_runbook_with_the_os_reason(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "nope.yaml"
    [problem] = problems_of(path, registry)
    assert problem.message == "cannot read the runbook: No such file or directory"
    assert problem.location == Location(str(path))


def test_a_directory_is_not_a_runbook(tmp_path: Path, registry: Registry) -> None:
    [problem] = problems_of(tmp_path, registry)
    assert problem.message == "cannot read the runbook: Is a directory"


def test_a_file_that_is_not_utf8(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_bytes(b"name: d\xe9mo\n")
    [problem] = problems_of(path, registry)
    assert problem.message == "the runbook is not UTF-8 text (byte 7)"


def test_a_custom_yaml_tag_is_refused(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - id: build
            steps:
              - id: tag
                action: shell
                with:
                  command: !secret token
        """,
    )
    [problem] = problems_of(path, registry)
    assert str(problem) == (
        f"{path}:8: phases[0].steps[0].with.command: YAML tag !secret is not supported here"
    )


def test_an_alias_to_its_own_container_is_empty(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - &loop
            id: build
            steps: [{id: tag, action: shell, with: {command: "true"}}]
            after: [*loop]
        """,
    )
    [problem] = problems_of(path, registry)
    assert problem.location is not None
    assert problem.location.field == "phases[0].after[0]"
    assert problem.message == "must be text; got None"


def test_too_many_values_after_aliases_are_refused(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shipcaptain.runbook.loader.MAX_VALUES", 50)
    lines = ["name: demo", "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"b{n}: *a" for n in range(10)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    [problem] = problems_of(path, registry)
    assert problem.message == "more than 50 values after expanding aliases"


def test_merge_keys_work_and_fall_back_to_the_parent_line(
    tmp_path: Path, registry: Registry
) -> None:
    path = write(
        tmp_path,
        """
        name: demo
        phases:
          - id: build
            steps:
              - &base
                id: tag
                action: shell
                with: {command: "true"}
              - <<: *base
                id: push
                timeout: later
        """,
    )
    [problem] = problems_of(path, registry)
    assert problem.location == Location(str(path), 11, "phases[0].steps[1].timeout")
    path.write_text(path.read_text().replace("later", "5m"))
    runbook = load_runbook(path, registry=registry)
    assert runbook.steps["push"].action == "shell"
    assert runbook.steps["push"].timeout == 300.0


def test_locate_finds_the_line_of_a_field(tmp_path: Path, registry: Registry) -> None:
    loaded = load_runbook_file(write(tmp_path, GOOD), registry=registry)
    where = loaded.locate(("phases", 0, "steps", 0, "with", "command"))
    assert where == Location(str(loaded.path), 15, "phases[0].steps[0].with.command")
    # a path below a line-less value falls back to its parent
    deeper = loaded.locate(("phases", 0, "steps", 0, "with", "command", 3))
    assert deeper.line == 15


def test_problems_serialise_for_json_output(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, "name: Demo\nphases: []\n")
    with pytest.raises(InvalidRunbook) as info:
        load_runbook(path, registry=registry)
    data: dict[str, Any] = info.value.to_dict()
    assert data["code"] == "SC100"
    assert [(p["line"], p["field"]) for p in data["problems"]] == [(1, "name"), (2, "phases")]


# ---- the example runbook, with the real actions ----------------------------------------


def test_the_valuecanvas_example_loads_with_the_real_actions() -> None:
    runbook = load_runbook(EXAMPLE)
    assert [p.id for p in runbook.phases] == [
        "preflight",
        "tag_and_build",
        "migrations",
        "rollout",
        "smoke",
        "post_deploy",
    ]
    assert set(runbook.roles) == {"release_captain", "oncall_sre", "feature_owner"}
    assert runbook.parameters["version"].required
    assert runbook.parameters["environment"].choices == ["staging", "production"]
    assert {name: (s.acknowledge, s.mitigate) for name, s in runbook.slas.items()} == {
        "P1": (300.0, 1800.0),
        "P2": (900.0, 7200.0),
    }
    assert set(runbook.comms.templates) == {"start", "failed", "rollback", "complete"}
    assert runbook.rollback


def test_the_example_orders_expand_rollout_contract() -> None:
    runbook = load_runbook(EXAMPLE)
    order = runbook.topological_order()
    rollouts = ["rollout_api", "rollout_web", "rollout_worker"]
    assert order.index("expand_migrations") < order.index("apply_manifests")
    assert all(order.index(r) < order.index("contract_migrations") for r in rollouts)
    contract = runbook.steps["contract_migrations"]
    assert contract.guards == ["app_rollout_complete", "read_replicas_healthy"]
    assert runbook.guards["app_rollout_complete"].after_steps == rollouts
    # the three rollout watches run side by side, each limited to 5 minutes
    for step in rollouts:
        assert runbook.dependencies[step] == ["tag_release", "trigger_deploy", "apply_manifests"]
        assert runbook.steps[step].timeout == 300.0
    assert runbook.effective_on_failure(runbook.steps["policy_lint"]) == "continue"
    # a failed policy check must not hold up the post-deploy checks
    assert "policy_lint" not in runbook.dependencies["metrics_analysis"]


def test_the_example_renders_for_a_release() -> None:
    runbook = load_runbook(EXAMPLE)
    values = resolve_parameters(runbook, {"version": "1.4.0"})
    assert values["environment"] == "production"
    release = ReleaseInfo(id="rel-1", started_by="casey", environment="production", reason="5xx")
    outputs = {
        "ci_green": {"commit": "abc1234def"},
        "tag_release": {"commit": "abc1234def"},
        "changelog": {"text": "## v1.4.0"},
        "smoke_api": {
            "tests": 3,
            "failed_by_surface": {"billing": ["billing.Invoices.pay"]},
            "by_surface": {
                "billing": {"tests": 1, "failed": ["billing.Invoices.pay"], "passed": 0}
            },
        },
        "trigger_deploy": {"outputs": {"images": {a: f"sha256:{a}" for a in APPS}}},
    }
    context = build_context(runbook, values, release, outputs)
    tag = render_params(runbook.steps["tag_release"].with_, context)
    assert tag == {"tag": "v1.4.0", "commit": "abc1234def", "remote": "origin"}
    sign_off = render_params(runbook.steps["changelog_confirmed"].with_, context)
    assert (sign_off["title"], sign_off["owners"]) == ("v1.4.0", "feature_owner")
    assert render_params(runbook.steps["smoke_ui_health"].with_, context)["build"] == "abc1234"
    digests = render_params(runbook.steps["image_digest_confirmed"].with_, context)["digests"]
    assert digests == {"api": "sha256:api", "web": "sha256:web", "worker": "sha256:worker"}
    surfaces = render_params(runbook.steps["smoke_surfaces_validated"].with_, context)
    assert json.loads(surfaces["results"])["billing"]["failed"] == ["billing.Invoices.pay"]
    assert "(3 tests ran)" in surfaces["item"]
    for step in [*runbook.steps.values(), *runbook.rollback]:
        render_params(step.with_, context)  # every template renders
    messages = {
        name: render_text(t, context).strip() for name, t in runbook.comms.templates.items()
    }
    assert messages["start"] == (
        "Deploying v1.4.0 to prod. Expected duration 30 minutes. Release Captain: casey."
    )
    assert messages["rollback"] == (
        "Initiating rollback of v1.4.0 due to 5xx. ETA to restore: 15 minutes. "
        "On-Call SRE: sam."  # roles.oncall_sre.mentions: by name without the team file
    )
    assert messages["complete"].startswith(
        "v1.4.0 deployed. Key smoke tests passed: API smoke tests. Workflow run:"
    )
