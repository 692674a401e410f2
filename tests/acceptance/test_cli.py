"""The CLI as people and scripts use it: exit codes, messages and JSON of every command.

Commands that only read a runbook (validate, plan, schema) run in-process through click's
CliRunner. Commands that run or steer releases run the real CLI as subprocesses
(``python -m shipcaptain.cli.main``) against a throwaway database, on SQLite and on
PostgreSQL; the test watches the state store directly only to know when to act next.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from helpers.demo import assert_rolled_out_on_the_sandbox_cluster
from helpers.processes import command_lines, wait_for
from helpers.releases import write_runbook
from helpers.team import make_team, run_here, token_env
from shipcaptain.cli.main import cli
from shipcaptain.store import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "valuecanvas" / "runbook.yaml"
CLI = [sys.executable, "-m", "shipcaptain.cli.main"]
#: variables of the test harness itself, not settings of shipcaptain
HARNESS_VARIABLES = ("SHIPCAPTAIN_TEST_", "SHIPCAPTAIN_REQUIRE_")

SMALL = """
    name: small
    parameters:
      version: {required: true}
    phases:
      - id: build
        steps:
          - {id: tag, action: shell, with: {command: "touch tagged-{{ version }}"}}
          - {id: notes, action: shell, needs: [tag], with: {command: "echo notes >> effects"}}
          - {id: lint, action: shell, with: {command: "echo lint >> effects"}}
"""

FAILING = """
    name: failing
    phases:
      - id: build
        steps:
          - {id: broken, action: shell, with: {command: "echo boom >&2; exit 3"}}
          - {id: after, action: shell, needs: [broken], with: {command: "touch ran"}}
"""

GATED = """
    name: gated
    roles:
      oncall_sre: {title: On-Call SRE, members: [sam, casey]}
      feature_owner: {title: Feature Owner, members: [fola]}
    phases:
      - id: ship
        steps:
          - {id: first, action: shell, with: {command: "echo first >> effects"}}
          - id: go
            action: approval
            needs: [first]
            with: {prompt: ship it?, roles: [oncall_sre], timeout: 1h}
          - {id: last, action: shell, needs: [go], with: {command: "echo last >> effects"}}
"""


# ---- in-process: commands that only read a runbook -----------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CliRunner with no SHIPCAPTAIN_ setting from the outside world."""
    for name in list(os.environ):
        if name.startswith("SHIPCAPTAIN_") and not name.startswith(HARNESS_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return CliRunner(env={"SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data")})


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), prog_name="shipcaptain", catch_exceptions=False)


def broken_runbook(tmp_path: Path, body: str, marker: str) -> tuple[Path, int]:
    """Write a runbook; return it and the 1-based line on which ``marker`` stands."""
    text = textwrap.dedent(body)
    lines = text.splitlines()
    line = next(i for i, text_line in enumerate(lines, 1) if marker in text_line)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path, line


BROKEN = [
    pytest.param(
        """
        name: broken
        phases:
          - id: one
            steps:
              - id: a
                action: shell
                timeout: soon
                with: {command: "true"}
        """,
        "timeout: soon",
        "phases[0].steps[0].timeout",
        "'soon' is not a duration",
        id="bad-duration",
    ),
    pytest.param(
        """
        name: broken
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - id: go
                action: approval
                with: {prompt: ok?, roles: [nobody]}
        """,
        "roles: [nobody]",
        "phases[0].steps[0].with.roles[0]",
        "unknown role 'nobody'",
        id="unknown-role",
    ),
    pytest.param(
        """
        name: broken
        phases:
          - id: one
            steps:
              - id: a
                action: shell
                needs: [b]
                with: {command: "true"}
              - id: b
                action: shell
                needs: [a]
                with: {command: "true"}
        """,
        "needs: [b]",
        "phases[0].steps[0].needs",
        "dependency cycle: a -> b -> a",
        id="cycle",
    ),
    pytest.param(
        """
        name: broken
        phases:
          - id: one
            steps:
              - id: a
                action: teleport
                with: {to: mars}
        """,
        "action: teleport",
        "phases[0].steps[0].action",
        "unknown action type 'teleport'",
        id="unknown-action",
    ),
]


def test_validate_accepts_the_example_runbook(runner: CliRunner) -> None:
    result = invoke(runner, "validate", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "valid runbook 'valuecanvas'" in result.stdout
    as_json = json.loads(invoke(runner, "validate", str(EXAMPLE), "--json").stdout)
    assert as_json["valid"] is True
    assert as_json["name"] == "valuecanvas"
    assert as_json["steps"] == 26


@pytest.mark.parametrize(("body", "marker", "field", "message"), BROKEN)
def test_validate_names_file_line_and_field_of_a_mistake(
    runner: CliRunner, tmp_path: Path, body: str, marker: str, field: str, message: str
) -> None:
    path, line = broken_runbook(tmp_path, body, marker)
    result = invoke(runner, "validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:{line}: {field}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("body", "marker", "field", "message"), BROKEN)
def test_validate_json_error_is_machine_readable(
    runner: CliRunner, tmp_path: Path, body: str, marker: str, field: str, message: str
) -> None:
    path, line = broken_runbook(tmp_path, body, marker)
    result = invoke(runner, "validate", str(path), "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "SC100"
    assert len(error["problems"]) == 1
    problem = error["problems"][0]
    assert problem["code"] == "SC101"
    assert (problem["file"], problem["line"], problem["field"]) == (str(path), line, field)
    assert message in problem["message"]
    assert "Traceback" not in result.stderr


def test_plan_shows_waves_and_executes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    result = invoke(runner, "plan", str(runbook), "-p", "version=1.4.0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "3 steps in 2 waves; nothing is executed" in out
    assert out.index("wave 1 (in parallel)") < out.index("tag: run `touch tagged-1.4.0`")
    assert out.index("lint:") < out.index("wave 2") < out.index("notes:")
    assert not (tmp_path / "tagged-1.4.0").exists()
    assert not (tmp_path / "effects").exists()


def test_plan_json_parses(runner: CliRunner, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    result = invoke(runner, "plan", str(runbook), "-p", "version=1.4.0", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["runbook"] == "small"
    assert plan["values"]["version"] == "1.4.0"
    waves = {s["id"]: s["wave"] for s in plan["steps"]}
    assert waves == {"tag": 0, "lint": 0, "notes": 1}
    assert {s["id"]: s["needs"] for s in plan["steps"]}["notes"] == ["tag"]
    assert not (tmp_path / "tagged-1.4.0").exists()


def test_plan_without_a_required_parameter_names_it(runner: CliRunner, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    result = invoke(runner, "plan", str(runbook))
    assert result.exit_code == 2
    assert "parameter 'version' is required" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = invoke(runner, "plan", str(runbook), "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "SC200"


def test_schema_prints_a_json_schema(runner: CliRunner) -> None:
    result = invoke(runner, "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "$schema" in schema
    assert "phases" in schema["properties"]


def _options(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Context, click.Option]]:
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            yield ctx, param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, click.Context(sub, parent=ctx, info_name=name))


def test_every_option_is_settable_by_a_shipcaptain_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Root options name their variable (and show it in --help); the others get click's
    automatic SHIPCAPTAIN_<COMMAND>_<OPTION>. Each variable is read for its option."""
    root = click.Context(cli, info_name="shipcaptain", **cli.context_settings)
    found = list(_options(cli, root))
    assert len(found) >= 10
    for ctx, option in found:
        where = f"{ctx.command_path} {option.opts[0]}"
        explicit = [option.envvar] if isinstance(option.envvar, str) else option.envvar
        names = explicit or [f"{ctx.auto_envvar_prefix}_{(option.name or '').upper()}"]
        assert all(n.startswith("SHIPCAPTAIN_") for n in names), where
        monkeypatch.setenv(names[0], "from-the-environment")
        assert option.resolve_envvar_value(ctx) == "from-the-environment", where
        monkeypatch.delenv(names[0])
    for option in cli.params:
        if isinstance(option, click.Option) and option.name not in ("help", "version"):
            assert option.show_envvar, f"{option.opts[0]} does not show its variable in --help"


def test_an_automatic_variable_sets_a_subcommand_option(runner: CliRunner, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: rolls
        phases:
          - id: one
            steps:
              - {id: a, action: shell, with: {command: "true"}}
        rollback:
          - {id: announce, action: shell, with: {command: "echo rolled back"}}
        """,
    )
    without = invoke(runner, "plan", str(runbook))
    assert "rollback plan" not in without.stdout
    with_env = runner.invoke(
        cli, ["plan", str(runbook)], env={"SHIPCAPTAIN_PLAN_ROLLBACK": "1"}, prog_name="shipcaptain"
    )
    assert with_env.exit_code == 0, with_env.output
    assert "rollback plan" in with_env.stdout
    assert "announce: run `echo rolled back`" in with_env.stdout


# ---- subprocesses: releases on a real database (SQLite and PostgreSQL) ----------------------


#: who acts when a test does not say
DEFAULT_USER = "ops"


class Shell:
    """Runs the real CLI as a person would, on one throwaway database, from one directory."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.workdir = workdir
        self.tokens = make_team(database_url)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SHIPCAPTAIN_") or k.startswith(HARNESS_VARIABLES)
        }
        self.env = {
            **base,
            "SHIPCAPTAIN_DATABASE_URL": database_url,
            "SHIPCAPTAIN_DATA_DIR": str(workdir / "data"),
            "SHIPCAPTAIN_POLL_INTERVAL": "0.05",
            "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
        }
        self.started: list[subprocess.Popen[str]] = []

    def run(
        self, *args: str, user: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env={**self.env, **token_env(self.tokens, user or DEFAULT_USER), **(env or {})},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str, user: str | None = None) -> Any:
        done = self.run(*args, "--json", user=user)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def here(self, *args: str, user: str | None = None) -> Any:
        """``ARGS --json`` in this process (click's runner), its JSON: for the views a test
        reads to check what a release did, after the commands it is about ran as children
        (test_release_start_runs_to_success_and_list_and_show_report_it runs the views as
        children too), and for approvals that only let a release finish."""
        done = run_here(
            {**self.env, **token_env(self.tokens, user or DEFAULT_USER)},
            self.workdir,
            *args,
            "--json",
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def background(self, *args: str, user: str | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*CLI, *args],
            env={**self.env, **token_env(self.tokens, user or DEFAULT_USER)},
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def sh(database_url: str, tmp_path: Path) -> Iterator[Shell]:
    shell = Shell(database_url, tmp_path)
    try:
        yield shell
    finally:
        shell.stop_all()


def only_release(store: Store) -> str:
    wait_for(lambda: len(store.list_releases()) == 1, what="the release is created")
    return store.list_releases()[0].id


def gate_waiting(store: Store, release_id: str, step: str, run: int) -> Callable[[], bool]:
    return lambda: any(
        g.step_id == step and g.run == run
        for g in store.list_gates(status="waiting", release_id=release_id)
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    """Wait for a `--json` start/resume process: exit code, its JSON, its stderr."""
    out, err = proc.communicate(timeout=timeout)
    try:
        data = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        data = {"unparsed": out}
    return proc.returncode, data, err


def effects(workdir: Path) -> list[str]:
    path = workdir / "effects"
    return path.read_text().split() if path.exists() else []


def test_release_start_runs_to_success_and_list_and_show_report_it(
    sh: Shell, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    done = sh.run("release", "start", str(runbook), "-p", "version=1.4.0", user="casey")
    assert done.returncode == 0, done.stderr
    assert "release.succeeded" in done.stdout
    assert (tmp_path / "tagged-1.4.0").exists()
    assert sorted(effects(tmp_path)) == ["lint", "notes"]

    listed = sh.json("release", "list")
    assert len(listed) == 1
    release = listed[0]
    assert (release["runbook_name"], release["status"], release["started_by"]) == (
        "small",
        "succeeded",
        "casey",
    )
    assert release["params"] == {"version": "1.4.0"}
    assert "runbook_text" not in release

    shown = sh.json("release", "show", release["id"])
    assert shown["release"]["id"] == release["id"]
    assert {s["id"]: s["status"] for s in shown["steps"]} == {
        "tag": "succeeded",
        "lint": "succeeded",
        "notes": "succeeded",
    }
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds[0] == "release.created"
    assert kinds[-1] == "release.succeeded"

    human = sh.run("release", "show", release["id"])
    assert human.returncode == 0, human.stderr
    assert f"release {release['id']}: small to default succeeded" in human.stdout
    # the timeline says what each status change was
    assert "release.succeeded      [running → succeeded]" in human.stdout


def test_a_failing_release_exits_10(sh: Shell, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, FAILING)
    done = sh.run("release", "start", str(runbook), "--json")
    assert done.returncode == 10, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    assert "broken" in result["reason"]
    assert not (tmp_path / "ran").exists()
    shown = sh.here("release", "show", result["id"])
    assert {s["id"]: s["status"] for s in shown["steps"]} == {
        "broken": "failed",
        "after": "skipped",
    }


QUOTED = """
    name: quoted
    parameters:
      tag: {required: true}
    phases:
      - id: build
        steps:
          - id: echo
            action: shell
            with:
              command: >-
                printf '%s' v{{ tag }} > word;
                printf '%s' "Release {{ tag }}" > quoted;
                printf '%s' "$SC_PARAM_TAG" > from-env
              check: test -e {{ tag }}
"""


def test_a_release_parameter_never_runs_as_shell_code(sh: Shell, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, QUOTED)
    tag = "$(touch pwned)`touch pwned`; touch pwned '\"; touch pwned"
    done = sh.run("release", "start", str(runbook), "-p", f"tag={tag}", "--json", user="casey")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "word").read_text() == f"v{tag}"
    assert (tmp_path / "quoted").read_text() == f"Release {tag}"
    assert (tmp_path / "from-env").read_text() == tag


def test_plan_and_validate_refuse_a_template_that_escapes(sh: Shell, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: escapes
        phases:
          - id: p
            steps:
              - id: a
                action: shell
                with: {command: "echo {{ ('x' * 10**10)|length }} {{ lipsum.__globals__ }}"}
        """,
    )
    for command in ("validate", "plan"):
        done = sh.run(command, str(runbook))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "__globals__' is not allowed" in done.stderr
        assert "the repeated value would be 10,000,000,000 long" in done.stderr
        assert "<function" not in done.stdout + done.stderr


def test_a_second_decision_by_the_same_person_is_refused_not_recorded(
    sh: Shell, store: Store, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, GATED.replace("timeout: 1h", "quorum: 2, timeout: 1h"))
    start = sh.background("release", "start", str(runbook), "--json", user="fola")
    release_id = only_release(store)
    wait_for(gate_waiting(store, release_id, "go", 1), what="the gate opens")
    first = sh.run("release", "approve", release_id, "go", user="sam")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "sam: approval of go recorded"
    again = sh.run("release", "approve", release_id, "go", "--json", user="sam")
    assert again.returncode == 5, again.stdout
    error = json.loads(again.stdout)["error"]
    assert "sam already decided the gate 'go'" in error["message"]
    assert "recorded" not in again.stdout
    assert store.get_gate(release_id, "go", 1).status == "waiting"
    assert [d.user for d in store.list_decisions(release_id, "go")] == ["sam"]
    assert any(e.kind == "gate.refused" and e.actor == "sam" for e in store.list_events(release_id))
    # the second approval only completes the quorum: in this process
    assert sh.here("release", "approve", release_id, "go", user="casey")["state"] == "recorded"
    code, result, err = finish(start)
    assert (code, result["status"]) == (0, "succeeded"), err


def test_approval_through_the_cli_checks_who_decides(
    sh: Shell, store: Store, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, GATED)
    start = sh.background("release", "start", str(runbook), "--json", user="casey")
    release_id = only_release(store)
    wait_for(gate_waiting(store, release_id, "go", 1), what="the gate opens")

    stranger = sh.run("release", "approve", release_id, "go", user="dev")
    assert stranger.returncode == 4, stranger.stderr
    assert "dev may not decide this gate: it needs role oncall_sre" in stranger.stderr

    starter = sh.run("release", "approve", release_id, "go", user="casey")
    assert starter.returncode == 4, starter.stderr
    assert "casey started this release and cannot also approve it" in starter.stderr
    assert "separation of duties" in starter.stderr

    assert start.poll() is None  # refused decisions did not move the release
    assert store.get_gate(release_id, "go", 1).status == "waiting"

    approved = sh.run(
        "release", "approve", release_id, "go", "-m", "looks good", "--json", user="sam"
    )
    assert approved.returncode == 0, approved.stderr
    answer = json.loads(approved.stdout)
    assert (answer["user"], answer["decision"], answer["state"]) == ("sam", "approve", "recorded")

    code, result, err = finish(start)
    assert code == 0, err
    assert result["status"] == "succeeded"
    assert effects(tmp_path) == ["first", "last"]
    decisions = store.list_decisions(release_id, "go")
    assert [(d.user, d.decision, d.comment) for d in decisions] == [
        ("sam", "approve", "looks good")
    ]


def test_reject_through_the_cli_fails_the_release(sh: Shell, store: Store, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, GATED)
    start = sh.background("release", "start", str(runbook), "--json", user="casey")
    release_id = only_release(store)
    wait_for(gate_waiting(store, release_id, "go", 1), what="the gate opens")

    rejected = sh.run("release", "reject", release_id, "go", "-m", "not today", user="sam")
    assert rejected.returncode == 0, rejected.stderr

    code, result, err = finish(start)
    assert code == 10, err
    assert result["status"] == "failed"
    assert effects(tmp_path) == ["first"]
    assert store.get_gate(release_id, "go", 1).status == "rejected"
    shown = sh.here("release", "show", release_id)
    assert {s["id"]: s["status"] for s in shown["steps"]}["last"] == "skipped"
    assert any(
        e["kind"] == "gate.rejected" and "not today" in e["message"] for e in shown["events"]
    )


@pytest.mark.slow
def test_cancel_at_a_gate_then_resume_skips_finished_steps(
    sh: Shell, store: Store, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, GATED)
    start = sh.background("release", "start", str(runbook), "--json", user="casey")
    release_id = only_release(store)
    wait_for(gate_waiting(store, release_id, "go", 1), what="the gate opens")

    cancelled = sh.run("release", "cancel", release_id, "--reason", "wrong version", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {"id": release_id, "status": "cancelled"}
    code, result, err = finish(start)
    assert code == 11, err
    assert result["status"] == "cancelled"
    assert sh.here("release", "show", release_id)["release"]["status"] == "cancelled"

    resume = sh.background("release", "resume", release_id, "--json", user="casey")
    wait_for(gate_waiting(store, release_id, "go", 2), what="the gate opens again in run 2")
    # the approval only lets run 2 finish: in this process
    assert sh.here("release", "approve", release_id, "go", user="sam")["state"] == "recorded"
    code, result, err = finish(resume)
    assert code == 0, err
    assert (result["status"], result["run"]) == ("succeeded", 2)
    assert effects(tmp_path) == ["first", "last"]  # first ran once, in run 1
    first = store.latest_step_runs(release_id)["first"]
    assert (first.run, first.already_done) == (2, True)


def test_the_token_says_who_acts(sh: Shell, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    by_env = sh.run("release", "start", str(runbook), "-p", "version=1.0.0", user="dana")
    assert by_env.returncode == 0, by_env.stderr
    assert "started by dana" in by_env.stdout
    other = sh.run("release", "start", str(runbook), "-p", "version=1.0.1", user="erin")
    assert other.returncode == 0, other.stderr
    by_version = {r["params"]["version"]: r["started_by"] for r in sh.here("release", "list")}
    assert by_version == {"1.0.0": "dana", "1.0.1": "erin"}
    unknown = sh.run("release", "list", env={"SHIPCAPTAIN_TOKEN": "sct_made-up-token-value"})
    assert unknown.returncode == 4
    assert "unknown token" in unknown.stderr
    assert "made-up-token-value" not in unknown.stderr + unknown.stdout
    gone = sh.run("--as", "dana", "release", "list")
    assert gone.returncode == 2  # the unauthenticated --as is gone


def test_database_url_and_data_dir_variables_choose_the_state(sh: Shell, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, SMALL)
    assert sh.run("release", "start", str(runbook), "-p", "version=1.0.0").returncode == 0
    # the same database given as a flag instead of the variable sees the release
    url = sh.env["SHIPCAPTAIN_DATABASE_URL"]
    no_url = {"SHIPCAPTAIN_DATABASE_URL": ""}
    flagged = sh.run("--database-url", url, "release", "list", "--json", env=no_url)
    assert flagged.returncode == 0, flagged.stderr
    assert [r["params"]["version"] for r in json.loads(flagged.stdout)] == ["1.0.0"]
    # without a URL the state lives in SHIPCAPTAIN_DATA_DIR
    elsewhere = tmp_path / "elsewhere"
    env = {"SHIPCAPTAIN_DATABASE_URL": "", "SHIPCAPTAIN_DATA_DIR": str(elsewhere)}
    refused = sh.run("release", "list", "--json", env=env)
    assert refused.returncode == 4  # the token is the first database's
    env |= token_env(
        make_team(f"sqlite:///{elsewhere / 'shipcaptain.db'}", ["ops"], admin="ops"), "ops"
    )
    empty = sh.run("release", "list", "--json", env=env)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == []
    assert (elsewhere / "shipcaptain.db").exists()


def test_shipcaptain_debug_shows_the_traceback(sh: Shell) -> None:
    quiet = sh.run("release", "show", "rel-0000000000000000")
    assert quiet.returncode == 3
    assert "Traceback" not in quiet.stderr
    loud = sh.run("release", "show", "rel-0000000000000000", env={"SHIPCAPTAIN_DEBUG": "1"})
    assert loud.returncode == 3
    assert "Traceback" in loud.stderr


def test_an_unknown_release_exits_3(sh: Shell) -> None:
    for args in (
        ("release", "show", "rel-0000000000000000"),
        ("release", "approve", "rel-0000000000000000", "go"),
        ("release", "cancel", "rel-0000000000000000", "--reason", "test"),
        ("release", "resume", "rel-0000000000000000"),
    ):
        done = sh.run(*args, user="sam")
        assert done.returncode == 3, (args, done.stderr)
        assert "no release 'rel-0000000000000000'" in done.stderr, args
        assert "Traceback" not in done.stderr
    as_json = sh.run("release", "show", "rel-0000000000000000", "--json")
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["error"]["code"] == "SC300"


# With a team, on PostgreSQL; test_k8s_demo runs it with no team on SQLite (each run is about
# half a minute, so each case runs once).
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_demo_runs_the_sandbox_release(sh: Shell, tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "demo", "--workspace", str(tmp_path / "sandbox")],
        env={**sh.env, **token_env(sh.tokens, "casey")},  # the team's admin runs the demo
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout
    assert_rolled_out_on_the_sandbox_cluster(done.stdout)
    # the migrations ran on a real primary and streamed to its replica: expand added two
    # columns, contract dropped legacy_owner
    assert (
        "read replica: canvases(id, name, archived_at, owner_team); "
        "migrations 20240110120000, 20240110130000, 20240201090000" in done.stdout
    ), done.stdout[-3000:]
    assert (tmp_path / "sandbox").is_dir()
    # 7: the breaking migrations move to a phase after the rollout
    assert "markdown: the team's deployment-runbook.md imports as 7 phases" in done.stdout
    # the comms went to the sandbox Slack, in the release's thread, and were printed
    slack = done.stdout.split("#releases in the sandbox Slack")[1]
    # the freeze announcement (pre-flight) opens the thread; the start message follows
    # once pre-flight passed, the captain mentioned by the Slack id of the demo's team file
    assert "\n  Feature freeze for v1.4.0" in slack
    assert (
        "\n  └ Deploying v1.4.0 to prod. Expected duration 30 minutes. "
        "Release Captain: <@U0CASEY01>." in slack
    )
    assert re.search(
        r"\n  └ v1\.4\.0 deployed\. Key smoke tests passed: API smoke tests, UI health and "
        r"build hash\. Workflow run: https://\S+/actions/runs/\d+ \(tag v1\.4\.0\)",
        slack,
    ), slack
    assert (tmp_path / "sandbox" / "deployment-runbook.yaml").is_file()


# a password is only in a PostgreSQL URL (on SQLite the test was set up, then skipped)
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_demo_crash_at_keeps_the_database_password_off_command_lines(
    sh: Shell, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql://postgres@"):
        pytest.skip("the canary password goes into a URL of the user postgres")
    canary = "canary-pw-7Gq2x"  # the test server trusts local connections: any password works
    url = database_url.replace("postgres@", f"postgres:{canary}@", 1)
    demo = subprocess.Popen(
        [*CLI, "demo", "--workspace", str(tmp_path / "sandbox"), "--crash-at", "rollout_api"],
        env={**sh.env, "SHIPCAPTAIN_DATABASE_URL": url, **token_env(sh.tokens, "casey")},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sh.started.append(demo)
    leaked, children = set(), set()
    while demo.poll() is None:
        for line in command_lines():
            if canary in line:
                leaked.add(line)
            if "shipcaptain.cli.main release resume" in line:
                children.add(line)
        time.sleep(0.05)
    out, err = demo.communicate()
    assert demo.returncode == 0, out[-3000:] + err[-3000:]
    assert "kill -9 of the engine process" in out
    assert children, "no engine child process was seen"
    assert not leaked, leaked
