"""Commands that run and steer releases: release start|list|show|approve|reject|cancel|resume|
rollback, and worker."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipcaptain.cli.common import (
    ROTATE_AUDIT_KEY,
    Obj,
    handle_errors,
    json_option,
    param_option,
)
from shipcaptain.runbook.params import parse_params
from shipcaptain.stop_signal import StopRequested

if TYPE_CHECKING:
    from shipcaptain.client import RollbackRequest
    from shipcaptain.contract import Service
    from shipcaptain.records import ReleaseRecord


@click.group()
def release() -> None:
    """Start, watch and steer releases."""


STAY_HELP = (
    "Run the release here to its end, also while it waits for people at a gate (without "
    "it, a release waiting only for people is handed to a live worker and the command ends)."
)


#: the exit code of a release handed to the workers while it waits for people
WAITING = 12


def _exit_for(status: str) -> int:
    return {"succeeded": 0, "cancelled": 11}.get(status, 10)


def _final(release_id: str, final: ReleaseRecord, as_json: bool, *, rollback: bool = False) -> int:
    """The JSON line and the exit code of a followed run (a rollback's: 0 if rolled back)."""
    if as_json:
        click.echo(
            json.dumps(
                {"id": release_id, "status": final.status, "run": final.run, "reason": final.reason}
            )
        )
    if rollback:
        return 0 if final.status == "rolled_back" else 10
    return _exit_for(final.status)


def _follow_remote(remote: Service, release_id: str, *, as_json: bool) -> int:
    """Follow a release that a server's workers run: its timeline, until it finishes."""
    from shipcaptain.cli.live import follow_remote

    return _final(release_id, follow_remote(remote, release_id, quiet=as_json), as_json)


def _see_through(
    obj: Obj,
    release_id: str,
    run: int,
    *,
    as_json: bool,
    take_over: bool = False,
    rollback: RollbackRequest | None = None,
    stay: bool = True,
) -> int:
    """Until a run of the release (or its ``rollback``) ends: this process runs it with the
    live view (on the state database; unless ``stay``, a release waiting only for people
    is handed to the live workers), or follows the server's workers running it."""
    if not obj.runs_here:
        return _follow_remote(obj.service, release_id, as_json=as_json)
    return _run_here(
        obj,
        release_id,
        run,
        take_over=take_over,
        as_json=as_json,
        rollback=None if rollback is None else rollback.request,
        stay=stay,
    )


def _run_here(
    obj: Obj,
    release_id: str,
    run: int,
    *,
    take_over: bool,
    as_json: bool,
    rollback: dict[str, Any] | None = None,
    stay: bool = True,
) -> int:
    """Run (or take over) a release, or its ``rollback`` run, in this process with the
    live view. Unless ``stay``, a release that waits for people at a gate (no step
    running) is handed to the live workers and the command ends (exit 12)."""
    from shipcaptain.cli.live import follow
    from shipcaptain.client import FINISHED

    settings = obj.settings
    engine = obj.client.host_engine(
        settings.worker_id or f"cli-{release_id}", settings=settings, takes_queued=False
    )
    at_gate = None if stay or rollback is not None else _AtGate(obj, release_id)
    engine.launch()
    try:
        release = obj.client.get(release_id)
        # parsed already by this process (the release's creation, the checks): not again
        engine.runtime.keep_runbook(release.runbook_digest, obj.client.runbook_of(release))
        ended = None
        if take_over:
            engine.take_over(release_id, run)
        elif rollback is not None:
            ended = _when_returned(engine.start_rollback(release_id, run, rollback))
        else:
            ended = _when_returned(engine.start(release_id, run))
        final = follow(obj.client, release_id, quiet=as_json, ended=ended, stop_at=at_gate)
    finally:
        engine.shutdown()
    if final.status not in FINISHED:  # stopped following at a gate: hand it over
        final = obj.client.get(release_id)
        if final.status not in FINISHED:
            return _handed_over(obj, final, engine.executor_id, as_json)
    _clocks_need_a_worker(obj, release_id)
    return _final(release_id, final, as_json, rollback=rollback is not None)


class _AtGate:
    """Whether a release followed in this process waits only for people (at a gate, no
    step running) and a live worker can take it: then ``release start`` hands it over
    and ends. Says once when no worker is alive, so this process keeps running it."""

    def __init__(self, obj: Obj, release_id: str) -> None:
        self.obj = obj
        self.release_id = release_id
        self.said = False

    def __call__(self, release: ReleaseRecord) -> bool:
        if release.status != "waiting":
            return False
        client = self.obj.client
        tries = client.latest_step_runs(self.release_id).values()
        if any(t.status == "running" and t.run == release.run for t in tries):
            return False  # a step still runs here: hand over once only people are awaited
        if client.live_workers():
            return True
        if not self.said:
            self.said = True
            click.echo(
                f"release {self.release_id} waits for people; no worker is alive to hand it "
                "to, so this process keeps running it (start `shipcaptain worker` and it is "
                f"handed over; decide with `shipcaptain release approve {self.release_id} "
                "STEP`)",
                err=True,
            )
        return False


def _handed_over(obj: Obj, release: ReleaseRecord, executor_id: str, as_json: bool) -> int:
    """Hand a release waiting at a gate to the workers; what to do next. Exit 12, never
    0: the release has not finished, and a script that reads 0 as "deployed" must not go
    on (``--stay`` waits for the end)."""
    rid = release.id
    if not obj.client.hand_to_workers(rid, release.run, executor_id):
        click.echo(
            f"release {rid} waits for people; it could not be handed to the workers: a worker "
            f"takes it over within {obj.settings.takeover_after:g}s, or run it here with "
            f"`shipcaptain release resume {rid}`",
            err=True,
        )
        return WAITING
    gates = obj.client.waiting_gates(rid, release.run)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": rid,
                    "status": release.status,
                    "run": release.run,
                    "reason": release.reason,
                    "handed_to_workers": True,
                    "waiting_gates": gates,
                }
            )
        )
        return WAITING
    click.echo(
        f"release {rid} waits for people at {', '.join(gates) or 'a gate'}; handed to "
        "the workers, which run the rest"
    )
    for gate in gates:
        click.echo(f"  decide: shipcaptain release approve {rid} {gate}   (or reject)")
    click.echo(f"  follow: shipcaptain release show {rid}")
    return WAITING


def _when_returned(handle: Any) -> threading.Event:
    """An event set when the workflow of ``handle`` returns (or raises): the live view then
    looks at the release at once instead of at its next refresh."""
    returned = threading.Event()

    def wait() -> None:
        try:
            handle.get_result()
        except BaseException:  # how it ended is read from the store, not from here
            pass
        finally:
            returned.set()

    threading.Thread(target=wait, name="release-returned", daemon=True).start()
    return returned


def _clocks_need_a_worker(obj: Obj, release_id: str) -> None:
    """Say so when the release opened incidents whose SLA clocks no live worker can run
    (this process ran the release, and it takes nothing from the queues)."""
    if not obj.client.has_open_incident(release_id):
        return  # nearly always: one indexed read, not the release's whole view
    view = obj.client.show(release_id, events=False)
    waiting = [i.id for i in view.incidents if i.status != "resolved"]
    if waiting and view.engine is not None and not view.engine.live_workers:
        click.echo(
            f"incident {', '.join(waiting)}: its SLA clock (reminders, escalations) runs on a "
            "worker, and no worker is alive: start one with `shipcaptain worker`",
            err=True,
        )


@release.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@param_option
@click.option("--detach", is_flag=True, help="Queue the release for a worker and return at once.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where commands run [default: the runbook's directory]",
)
@click.option("--stay", is_flag=True, help=STAY_HELP)
@click.option(
    "--on-server",
    is_flag=True,
    help="With --server: RUNBOOK is a path under the server's --runbooks directory, and the "
    "release runs in that runbook's directory there.",
)
@json_option
@click.pass_obj
@handle_errors
def start(
    obj: Obj,
    runbook: Path,
    params: tuple[str, ...],
    detach: bool,
    workdir: Path | None,
    stay: bool,
    on_server: bool,
    as_json: bool,
) -> None:
    """Start a release of RUNBOOK and follow it live (or --detach to hand it to a worker).
    When it waits only for people at a gate and a worker is alive, it is handed to the
    workers and the command ends (exit 12; --stay keeps it here). With --server, the
    server's workers run it (the runbook's text is sent, or with --on-server the server's
    own file is used)."""
    service = obj.service
    record = service.start(runbook, parse_params(params), workdir=workdir, on_server=on_server)
    for warning in service.warnings_for(record):
        click.echo(f"warning: release {record.id}: {warning}", err=True)
    if detach:
        service.queue(record.id, 1)
        if as_json:
            click.echo(json.dumps({"id": record.id, "status": "queued"}))
        else:
            click.echo(
                f"release {record.id} queued; a `shipcaptain worker` will run it.\n"
                f"follow it with: shipcaptain release show {record.id}"
            )
        return
    if not as_json:
        click.echo(f"release {record.id} started by {record.started_by}")
    raise SystemExit(_see_through(obj, record.id, 1, as_json=as_json, stay=stay))


@release.command(name="list")
@click.option("--status", help="Only releases in this status.")
@click.option("--environment", help="Only releases to this environment.")
@click.option("--limit", default=50, show_default=True, help="At most this many releases.")
@json_option
@click.pass_obj
@handle_errors
def list_(obj: Obj, status: str | None, environment: str | None, limit: int, as_json: bool) -> None:
    """List releases, newest first."""
    from shipcaptain.cli.render import print_release_list
    from shipcaptain.codec import release_dict
    from shipcaptain.records import ReleaseFilter

    which = ReleaseFilter(status=status, environment=environment, limit=limit)
    obj.reads_only()
    releases = obj.service.list_releases(which)
    if as_json:
        click.echo(json.dumps([release_dict(r) for r in releases], indent=2, default=str))
    else:
        named = {"status": status, "environment": environment}
        print_release_list(releases, *(f"{k} {v}" for k, v in named.items() if v))


@release.command()
@click.argument("release_id")
@json_option
@click.pass_obj
@handle_errors
def show(obj: Obj, release_id: str, as_json: bool) -> None:
    """Show a release: its steps, open gates and timeline."""
    obj.reads_only()
    service = obj.service
    view = service.show(release_id)
    if as_json:
        from shipcaptain.codec import detail_document

        # the same document as the API's release detail (web.schemas.ReleaseDetail), written
        # without pydantic: a test compares the two
        click.echo(json.dumps(detail_document(view), indent=2))
    else:
        from shipcaptain.cli.render import print_release

        service.user  # noqa: B018 - who reads it: the gate parts shown are theirs
        print_release(view, lambda g: service.gate_parts(view.release, g))


VERBS = {"approve": "approval", "reject": "rejection", "confirm": "confirmation"}


def _decide(
    obj: Obj,
    release_id: str,
    step: str,
    decision: str,
    comment: str,
    role: str | None,
    as_json: bool,
    verb: str,
) -> None:
    user = obj.user
    outcome = obj.service.decide(release_id, step, decision=decision, comment=comment, role=role)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "release": release_id,
                    "step": step,
                    "decision": decision,
                    "user": user,
                    "state": outcome,
                }
            )
        )
    elif outcome == "recorded":
        click.echo(f"{user}: {VERBS[verb]} of {step} recorded")
    else:
        click.echo(
            f"{user}: {VERBS[verb]} of {step} sent; it is recorded when the "
            "release's engine runs (no engine has picked it up yet)"
        )


def _decision_command(name: str, decision: str, doc: str) -> click.Command:
    @click.argument("release_id")
    @click.argument("step")
    @click.option("-m", "--comment", default="", help="Why; kept with the decision.")
    @click.option("--role", help="The role you act in, if you hold several.")
    @json_option
    @click.pass_obj
    @handle_errors
    def command(
        obj: Obj, release_id: str, step: str, comment: str, role: str | None, as_json: bool
    ) -> None:
        _decide(obj, release_id, step, decision, comment, role, as_json, name)

    command.__doc__ = doc
    return release.command(name=name)(command)


approve = _decision_command(
    "approve", "approve", "Approve a waiting gate (or confirm a checklist item)."
)
confirm = _decision_command("confirm", "approve", "Confirm a checklist item (same as approve).")
reject = _decision_command("reject", "reject", "Reject a waiting gate; the gate's step fails.")


@release.command()
@click.argument("release_id")
@click.option("--reason", required=True, help="Why; kept in the timeline.")
@json_option
@click.pass_obj
@handle_errors
def cancel(obj: Obj, release_id: str, reason: str, as_json: bool) -> None:
    """Cancel an active release. Running steps stop at their next checkpoint."""
    record = obj.service.cancel(release_id, reason=reason)
    if as_json:
        click.echo(json.dumps({"id": record.id, "status": record.status}))
    else:
        click.echo(f"release {record.id} cancelled")


@release.command()
@click.argument("release_id")
@click.option("--detach", is_flag=True, help="Queue it for a worker instead of running it here.")
@click.option("--stay", is_flag=True, help=STAY_HELP)
@json_option
@click.pass_obj
@handle_errors
def resume(obj: Obj, release_id: str, detach: bool, stay: bool, as_json: bool) -> None:
    """Resume a failed or cancelled release, or take over one whose process died.
    Steps that already finished are not run again. As with `release start`, a new run
    that waits only for people is handed to a live worker (--stay keeps it here); a
    take-over runs here to its end. With --server, the server's workers run it."""
    action = obj.service.resume(release_id)
    if not as_json:
        click.echo(
            f"resuming {release_id} ({action.reason}): "
            + ("new run " if action.kind == "new_run" else "taking over run ")
            + str(action.run)
        )
    take_over = action.kind == "take_over"
    if detach and obj.service.queue(release_id, action.run, take_over=take_over):
        return  # a take-over is run here, --detach or not
    # a take-over stays in this terminal (recover-a-release.md): whoever takes over a dead
    # terminal's release follows it to its end
    raise SystemExit(
        _see_through(
            obj,
            release_id,
            action.run,
            take_over=take_over,
            as_json=as_json,
            stay=stay or take_over,
        )
    )


@release.command()
@click.argument("release_id")
@click.option("--reason", default="", help="Why; announced and kept in the timeline.")
@click.option(
    "--forward-fix",
    metavar="TEXT",
    help="Past the point of no return: record this forward fix instead of rolling back.",
)
@click.option(
    "--restore-procedure",
    metavar="TEXT",
    help="Past the point of no return: record how the schema is restored, then roll back.",
)
@click.option("--dry-run", is_flag=True, help="Show the rollback plan given what ran; do nothing.")
@click.option("--detach", is_flag=True, help="Queue the rollback for a worker and return at once.")
@json_option
@click.pass_obj
@handle_errors
def rollback(
    obj: Obj,
    release_id: str,
    reason: str,
    forward_fix: str | None,
    restore_procedure: str | None,
    dry_run: bool,
    detach: bool,
    as_json: bool,
) -> None:
    """Roll a release back (one that succeeded, or failed). The captain initiates; an
    on-call SRE other than the captain approves (shipcaptain release approve RELEASE
    rollback/approval); the undo steps, the rollback steps and the post-rollback validation
    run with the live view."""
    from shipcaptain.cli.render import print_rollback_plan

    if dry_run:
        entries, blocked = obj.service.rollback_preview(release_id)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "release": release_id,
                        "plan": [e.__dict__ for e in entries],
                        "points_of_no_return": blocked,
                    },
                    indent=2,
                )
            )
        else:
            click.echo(f"rollback plan of release {release_id}, given what ran:")
            print_rollback_plan(entries, blocked, passed=True)
        return
    asked = obj.service.rollback(
        release_id, reason=reason, forward_fix=forward_fix, restore_procedure=restore_procedure
    )
    run = asked.run
    if run is None:
        if as_json:
            click.echo(json.dumps({"id": release_id, "forward_fix": forward_fix}))
        else:
            click.echo(f"forward fix recorded for {release_id}; nothing was rolled back")
        return
    approve = f"shipcaptain release approve {release_id} rollback/approval"
    if detach:
        obj.service.queue(release_id, run, rollback=asked)
        if as_json:
            click.echo(json.dumps({"id": release_id, "run": run, "status": "queued"}))
        else:
            click.echo(
                f"rollback of {release_id} queued (run {run}); an on-call SRE approves "
                f"it with: {approve}"
            )
        return
    if not as_json:
        click.echo(
            f"rolling back {release_id} (run {run}), initiated by {obj.user}; "
            f"an on-call SRE approves with: {approve}"
        )
    raise SystemExit(_see_through(obj, release_id, run, as_json=as_json, rollback=asked))


@click.command()
@click.option(
    "--id",
    "worker_id",
    envvar="SHIPCAPTAIN_WORKER_ID",
    show_envvar=True,
    help="Executor id: unique per worker process, the same after a restart "
    "[default: <hostname>-worker]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    envvar="SHIPCAPTAIN_WORKER_CONCURRENCY",
    show_envvar=True,
    help="Releases (and rollbacks) each worker runs at once; a worker takes the next queued "
    "one when one of its own ends. Shared by the workers of one database: the worker "
    "started last sets it for all [default: 8]",
)
@ROTATE_AUDIT_KEY
@click.pass_obj
@handle_errors
def worker(
    obj: Obj, worker_id: str | None, concurrency: int | None, rotate_audit_key: Path | None
) -> None:
    """Run an engine process: takes queued releases (up to --concurrency at once), runs
    incident SLA clocks, recovers its own work after a restart, and takes over the work of
    workers that stopped sending heartbeats. Runs as the person of your token, who needs
    the worker.run permission (e.g. the role worker for every environment); recorded in
    the audit log. Refuses to start under the id of a worker that is alive, and with an
    audit key that did not sign the newest event of the log (unless --rotate-audit-key)."""
    import signal

    from shipcaptain.urls import mask_url

    obj.engine_process("worker")
    settings = obj.settings
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    user = obj.person.name  # a worker runs as someone allowed to (worker.run)
    executor_id = worker_id or settings.worker_id_or_default("worker")
    # from the moment it holds its id: a SIGTERM then stops it cleanly, even while launching
    stop = StopRequested().handle(signal.SIGTERM)
    # before this process writes anything: a key of its own would forge the log
    rotated = obj.client.check_audit_key(rotate=rotate_audit_key)
    obj.client.start_worker(
        f"worker {executor_id}", user=user, executor_id=executor_id, rotated=bool(rotated)
    )
    if rotated:
        click.echo(f"audit key rotated (--rotate-audit-key): {rotated}", err=True)
    engine = obj.client.host_engine(executor_id, settings=settings, takes_over=True)
    engine.launch()
    click.echo(
        f"worker {executor_id} running on {mask_url(settings.state_url)}, up to "
        f"{settings.worker_concurrency} releases at once; Ctrl-C stops it",
        err=True,
    )
    click.echo(obj.client.engine_functions(), err=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.shutdown()
        from shipcaptain.events import WorkerStopped

        obj.client.record(
            WorkerStopped.kind,
            user,
            f"{user} stopped the worker {executor_id}",
            {"process": "worker"},
        )


@click.command()
@json_option
@click.pass_obj
@handle_errors
def workers(obj: Obj, as_json: bool) -> None:
    """List engine processes: their heartbeats, whether they are alive, what they run."""
    from shipcaptain.cli.render import print_workers
    from shipcaptain.codec import worker_dict

    obj.reads_only()
    found = obj.service.workers()
    if as_json:
        click.echo(json.dumps([worker_dict(w) for w in found], indent=2, default=str))
    else:
        print_workers(found, obj.settings.takeover_after)


def register(group: click.Group) -> None:
    group.add_command(release)
    group.add_command(worker)
    group.add_command(workers)
