"""Commands about runbooks: validate, plan, schema, actions, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipcaptain.cli.common import Obj, handle_errors, json_option, param_option
from shipcaptain.errors import UsageError
from shipcaptain.runbook.params import parse_params

if TYPE_CHECKING:
    pass

runbook_arg = click.argument("runbook", type=click.Path(path_type=Path))


@click.command()
@runbook_arg
@click.option(
    "--team",
    "team_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check the runbook against this team file: every gate's role is held by "
    "someone (else it names the gate and the team's closest role), approval quorums its "
    "roles' holders can reach.",
)
@json_option
@click.pass_obj
@handle_errors
def validate(obj: Obj, runbook: Path, team_file: Path | None, as_json: bool) -> None:
    """Check a runbook: fields, references, cycles, roles, actions and their parameters."""
    loaded = obj.client.load(runbook)
    rb = loaded.runbook
    if team_file is not None:
        _check_against_team(loaded, team_file, obj.client.registry)
    warnings = obj.client.comms_warnings(rb)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": True,
                    "name": rb.name,
                    "steps": len(rb.steps),
                    "phases": len(rb.phases),
                    "digest": loaded.digest,
                    "warnings": warnings,
                }
            )
        )
    else:
        click.echo(
            f"{runbook}: valid runbook {rb.name!r}: {len(rb.phases)} phases, "
            f"{len(rb.steps)} steps, {len(rb.rollback)} rollback steps"
        )
        for warning in warnings:
            click.echo(f"warning: {runbook}: {warning}", err=True)


def _check_against_team(loaded: Any, team_file: Path, registry: Any) -> None:
    """What only the team can tell: gates whose role nobody holds, approvals whose quorum
    its role holders cannot reach."""
    from shipcaptain.errors import InvalidRunbook, RunbookProblem
    from shipcaptain.runbook.team_checks import team_problems
    from shipcaptain.team import load_team_file

    holders: dict[str, set[str]] = {}
    for person in load_team_file(team_file).people:
        for roles in person.roles.values():
            for role in roles:
                holders.setdefault(role, set()).add(person.name)
    found = team_problems(loaded.runbook, registry, holders, str(team_file))
    if found:
        raise InvalidRunbook(
            [RunbookProblem(msg, location=loaded.locate(path)) for path, msg in found]
        )


@click.command()
@runbook_arg
@param_option
@click.option("--rollback", is_flag=True, help="Show the rollback plan too.")
@json_option
@click.pass_obj
@handle_errors
def plan(obj: Obj, runbook: Path, params: tuple[str, ...], rollback: bool, as_json: bool) -> None:
    """Show what a release would do, step by step and wave by wave. Nothing is executed."""
    from shipcaptain.cli.render import print_plan

    release_plan = obj.client.plan(runbook, parse_params(params))
    if as_json:
        click.echo(json.dumps(release_plan.to_dict(), indent=2, default=str))
    else:
        print_plan(release_plan, show_rollback=rollback)


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@handle_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the runbook format (generated from the models)."""
    from shipcaptain.runbook.schema import runbook_json_schema

    text = json.dumps(runbook_json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.command()
@json_option
@click.pass_obj
@handle_errors
def actions(obj: Obj, as_json: bool) -> None:
    """List the action types a runbook can use (built-in and plug-ins)."""
    reg = obj.client.registry
    rows: list[dict[str, Any]] = []
    for name in reg.names():
        action = reg.get(name)
        rows.append(
            {
                "name": name,
                "summary": action.summary,
                "idempotent": action.idempotent,
                "parameters": sorted(action.Params.model_fields),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<12} {row['summary']}")
        click.echo(f"{'':<12} parameters: {', '.join(row['parameters'])}")


def needs_demo_extra(who: str, exc: ModuleNotFoundError) -> UsageError:
    """The sandbox's own dependencies come with the demo extra."""
    return UsageError(
        f"{who} needs the package {exc.name!r}, which comes with the demo extra: "
        "pip install 'shipcaptain[demo]'"
    )


@click.command()
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build the sandbox [default: a new temporary directory]",
)
@click.option("--version", "version", default="1.4.0", help="Version to release.")
@click.option(
    "--crash-at",
    metavar="STEP",
    help="Kill the engine process (kill -9) when STEP starts, then resume: shows "
    "that no finished step runs again.",
)
@click.option(
    "--bad-metrics",
    is_flag=True,
    help="The error rate rises after the rollout: the metrics analysis fails and the "
    "release rolls back (needs prometheus).",
)
@click.option(
    "--bad-image",
    is_flag=True,
    help="Release an api image the registry cannot pull: the rollout fails and the "
    "runbook's rollback puts the running version back.",
)
@click.option(
    "--dashboard",
    is_flag=True,
    help="Serve the web dashboard while the release runs, print its address and a token "
    "to sign in as fola (Feature Owner), and leave fola's sign-offs to you in the browser.",
)
@click.option(
    "--team",
    is_flag=True,
    help="The production topology: PostgreSQL state (--database-url if it is PostgreSQL, "
    "else a throwaway server), a server and two workers as their own processes, everyone "
    "using the CLI with --server; a worker is killed mid-release, a drill incident is "
    "reminded and escalated by a worker, and the release is rolled back.",
)
@click.pass_obj
@handle_errors
def demo(
    obj: Obj,
    workspace: Path | None,
    version: str,
    crash_at: str | None,
    bad_metrics: bool,
    bad_image: bool,
    dashboard: bool,
    team: bool,
) -> None:
    """Run the ValueCanvas runbook end to end in a local sandbox: a real git repository
    with a bare origin, a local health endpoint, and demo people approving their gates."""
    try:
        from shipcaptain.sandbox.demo import run_demo
        from shipcaptain.sandbox.team_demo import run_team_demo
    except ModuleNotFoundError as exc:  # the demo's own dependencies are an extra
        raise needs_demo_extra("the demo", exc) from exc

    obj.full_settings()  # the sandbox copies them (model_copy)
    if team:
        if crash_at or bad_metrics or bad_image or dashboard:
            raise UsageError(
                "--team runs its own story (a worker killed, an incident, a rollback): "
                "leave out --crash-at, --bad-metrics, --bad-image and --dashboard"
            )
        raise SystemExit(run_team_demo(obj.settings, workspace=workspace, version=version))
    code = run_demo(
        obj.settings,
        workspace=workspace,
        version=version,
        crash_at=crash_at,
        bad_metrics=bad_metrics,
        bad_image=bad_image,
        dashboard=dashboard,
    )
    raise SystemExit(code)


@click.command()
@runbook_arg
@param_option
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="A fault to inject (repeatable): ci_red, stale_backup, late_commit, bad_image, "
    "crash_loop, stuck_rollout, replica_lag, contract_migration_fails, prometheus_unreachable, "
    "worker_kill, state_db_unreachable, slack_down, error_rate, latency.",
)
@click.option("--all-faults", is_flag=True, help="Inject every fault the sandbox knows.")
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    help="The team's repository: its files become the sandbox's app repository (instead of "
    "the demo app's); its scripts run there.",
)
@click.option(
    "--migrations",
    type=click.Path(path_type=Path),
    help="The team's migrations: put where the runbook's migrate steps read them, run on the "
    "sandbox's PostgreSQL primary (with its streaming replica).",
)
@click.option(
    "--manifests",
    type=click.Path(path_type=Path),
    help="The team's kustomize overlay: put where the runbook's k8s_apply steps read it, "
    "applied to the Kubernetes API double before the first release.",
)
@click.option(
    "--team",
    "team",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The team's own team file (roles per environment, who answers gates) instead of "
    "the sandbox's: the sandbox's people act as its members; a gate nobody in it may answer "
    "is reported and its release cancelled.",
)
@click.option(
    "--damage-window",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long users may see a bad build's errors or latency before it is caught: "
    "caught later is 'caught late' (default: 300 s).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("rehearsal-report"),
    show_default=True,
    help="Where the scorecard (report.md, report.json), the log and the evidence bundles go.",
)
@json_option
@click.pass_obj
@handle_errors
def rehearse(
    obj: Obj,
    runbook: Path,
    params: tuple[str, ...],
    faults: tuple[str, ...],
    all_faults: bool,
    repo: Path | None,
    migrations: Path | None,
    manifests: Path | None,
    team: Path | None,
    damage_window: float | None,
    report_dir: Path,
    as_json: bool,
) -> None:
    """Rehearse RUNBOOK in the sandbox world with injected faults and score which safety
    nets held. Every integration is mapped onto the sandbox; a step that would reach an
    endpoint outside it stops the rehearsal before it starts. Exits 10 when a fault is
    missed (or never reached), so CI can rehearse a runbook on every change to it. With
    --repo, --migrations and --manifests the team's own material is mapped onto the sandbox;
    what cannot be mapped is refused before anything starts. The report is also kept in
    the rehearsals directory (SHIPCAPTAIN_REHEARSALS_DIR) for the dashboard's Rehearsals
    page."""
    try:
        from shipcaptain.sandbox.rehearse import run_rehearsal
        from shipcaptain.sandbox.rehearse_material import Material
        from shipcaptain.sandbox.rehearse_report import markdown
    except ModuleNotFoundError as exc:  # the sandbox's own dependencies are an extra
        raise needs_demo_extra("rehearse", exc) from exc

    obj.full_settings()  # the sandbox copies them (model_copy)
    report = run_rehearsal(
        obj.settings,
        runbook,
        parse_params(params),
        faults=faults,
        all_faults=all_faults,
        report_dir=report_dir,
        material=Material(repo, migrations, manifests),
        team=team,
        damage_window=damage_window,
    )
    click.echo(json.dumps(report, indent=2) if as_json else markdown(report))
    raise SystemExit(10 if report["missed"] else 0)


def register(group: click.Group) -> None:
    for command in (validate, plan, schema, actions, demo, rehearse):
        group.add_command(command)
