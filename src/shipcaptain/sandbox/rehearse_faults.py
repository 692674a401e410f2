"""The faults a rehearsal injects, each at the moment it matters, and what would catch each.

A fault has three parts: what it breaks before the release starts (``arm``), what it
breaks while the release runs, at its moment (``during``: called every tick with the
release's step runs), and how the world is healed afterwards (``heal``), so the next
fault meets a healthy sandbox. ``catchers`` are the actions that catch the fault where it
first shows; another step catching it is "caught late"; none is "missed", and
``would_catch`` says which check would have caught it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import psycopg

from shipcaptain.migrations.classify import classify_sql, split_statements
from shipcaptain.migrations.discovery import discover
from shipcaptain.migrations.history import read_history
from shipcaptain.sandbox.doubles.kubernetes import Behaviour
from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES
from shipcaptain.sandbox.workspace import git

if TYPE_CHECKING:
    from shipcaptain.sandbox.rehearse import Attempt, Rehearsal
    from shipcaptain.store import StepRunRecord

#: what the sandbox app answers with while a bad build serves
BAD_ERROR_RATE = 0.2
BAD_LATENCY = 0.8  # seconds
#: seconds: how long users may see a bad build's errors or latency before it is caught
#: (``rehearse --damage-window`` sets another)
DAMAGE_WINDOW = 300.0


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    moment: str  # when it takes effect, for the report
    catchers: tuple[str, ...]
    would_catch: str
    arm: Callable[[Attempt], None] = lambda a: None
    during: Callable[[Attempt], None] = lambda a: None
    heal: Callable[[Attempt], None] = lambda a: None
    #: the new build's app behaviour while it serves (error rate, latency)
    app: dict[str, float] = field(default_factory=dict)
    #: injected while the release runs (by ``during``), not before it starts
    held: bool = False
    #: what the runbook did when it caught it, besides how the release ended
    did_when_caught: str | None = None
    #: the fault takes effect when a step of this action has succeeded (the rollout starts)
    effective_after: str | None = None
    #: the next fault waits for the fresh Prometheus this one started (it stopped the last)
    fresh_prometheus: bool = False
    #: the release runs in an engine process of its own, killed with kill -9 mid-step
    kill_worker: bool = False
    #: the rehearsal's state database is PostgreSQL behind a TCP proxy, cut mid-step
    cut_state_db: bool = False
    #: files the release's commit brings (path in the repository -> text), put back as they
    #: were after it; it may keep what it found in the attempt's ``saved`` (the second
    #: argument)
    files: Callable[[Rehearsal, dict[str, Any]], dict[str, str]] | None = None
    #: seconds: the damage window. Caught later than this after the fault took effect (the
    #: users saw it all that time) is "caught late", even by the check made for it
    window: float | None = None


# ---- arming ----


def _ci_red(a: Attempt) -> None:
    a.world.github.add_check_run(a.head, "test", conclusion="failure")
    a.note("CI red: check run `test` failed on the release commit")


def _ci_green_again(a: Attempt) -> None:
    a.world.github.add_check_run(a.head, "test", conclusion="success")


def _backups(a: Attempt) -> list[Any]:
    return sorted((a.world.sandbox.state / "backups").glob("*.dump"))


def _stale_backup(a: Attempt) -> None:
    old = time.time() - 3 * 24 * 3600
    for dump in _backups(a):
        a.saved[str(dump)] = dump.stat().st_mtime
        os.utime(dump, (old, old))
    a.note("the last backup is 3 days old")


def _fresh_backup(a: Attempt) -> None:
    for dump in _backups(a):
        if str(dump) in a.saved:
            os.utime(dump, (a.saved[str(dump)], a.saved[str(dump)]))


def _late_commit(a: Attempt) -> None:
    """A commit pushed to main after the freeze cutoff (CI green on it)."""
    app, env = a.world.sandbox.app, a.world.sandbox.env()
    while time.time() < a.cutoff_ts + 1.1:  # GitHub's record of pushes has seconds
        time.sleep(0.1)
    (app / "LATE.md").write_text("merged after the freeze\n")
    git("add", "LATE.md", cwd=app, env=env)
    git("commit", "-q", "-m", "feat(canvas): merged after the freeze (#431)", cwd=app, env=env)
    git("push", "-q", "origin", "main", cwd=app, env=env)
    a.head = git("rev-parse", "HEAD", cwd=app)
    for check in ("test", "lint", "build"):
        a.world.github.add_check_run(a.head, check)
    a.world.github.add_status(a.head, "ci/e2e")
    a.note(f"commit {a.head[:7]} pushed to main after the freeze cutoff {a.cutoff}")


def _image(behaviour: Behaviour, publish: bool) -> Callable[[Attempt], None]:
    def arm(a: Attempt) -> None:
        image = a.images[0]
        cluster = a.world.kube.double.cluster
        if not publish:
            cluster.registry.pop(image, None)
        cluster.behave(image, behaviour)
        a.note(f"image {image}: {behaviour.value}")

    return arm


#: seconds: the progress deadline a stuck rollout is given (Kubernetes' default is 600)
STUCK_DEADLINE = 3


def _stalled_images(a: Attempt) -> None:
    """The new image never gets ready, with no error to see (Behaviour.STALL)."""
    a.world.kube.double.cluster.behave(a.images[0], Behaviour.STALL)
    a.note(f"image {a.images[0]} never gets ready (no error, no restart)")


def _short_deadline(a: Attempt) -> None:
    """Once the release's manifests are applied: the Deployments that run the stalled image
    get a short ``spec.progressDeadlineSeconds``, so the Deployment controller of the
    Kubernetes double reports ``Progressing=False``/``ProgressDeadlineExceeded`` within
    seconds instead of Kubernetes' default ten minutes. (After the apply: the double's
    server-side apply owns the whole spec, so a value set before it would be replaced.)"""
    if a.injected_at is None or "deadlines" in a.saved:
        return
    cluster = a.world.kube.double.cluster
    repos = {a.images[0].rsplit(":", 1)[0]}
    saved: dict[str, tuple[str, int]] = {}
    with cluster.lock:
        for dep in cluster.list(RESOURCES["deployments"]):
            containers = dep["spec"]["template"]["spec"].get("containers", [])
            if not any(c.get("image", "").split("@")[0].rsplit(":", 1)[0] in repos
                       for c in containers):  # fmt: skip
                continue
            name = dep["metadata"]["name"]
            saved[name] = (
                dep["metadata"]["namespace"],
                dep["spec"].get("progressDeadlineSeconds", 600),
            )
            dep["spec"]["progressDeadlineSeconds"] = STUCK_DEADLINE
            cluster.put(RESOURCES["deployments"], dep)
    a.saved["deadlines"] = saved
    a.note(f"progressDeadlineSeconds {STUCK_DEADLINE} on {', '.join(sorted(saved))}")


def _deadline_back(a: Attempt) -> None:
    cluster = a.world.kube.double.cluster
    with cluster.lock:
        for name, (namespace, seconds) in a.saved.get("deadlines", {}).items():
            dep = cluster.get(RESOURCES["deployments"], namespace, name)
            if dep is not None:
                dep["spec"]["progressDeadlineSeconds"] = seconds
                cluster.put(RESOURCES["deployments"], dep)


# ---- at the moment ----


def _replica_paused(a: Attempt) -> bool:
    with psycopg.connect(a.world.database.replica_url, autocommit=True) as conn:
        row = conn.execute("select pg_is_wal_replay_paused()").fetchone()
    return bool(row and row[0])


def _lag_replica(a: Attempt) -> None:
    """After the expand migrations, before the contract phase: the replica stops replaying.
    Healed once the runbook has been seen to hold the contract phase for it."""
    runs = a.runs()
    if "paused_at" not in a.saved:
        expand = [r for r in runs.values() if r.step_id in a.expand_steps]
        if expand and all(r.status == "succeeded" for r in expand):
            with psycopg.connect(a.world.database.replica_url, autocommit=True) as conn:
                conn.execute("select pg_wal_replay_pause()")
            with psycopg.connect(a.world.database.primary_url, autocommit=True) as conn:
                conn.execute("create table if not exists rehearsal_writes (at timestamptz)")
                conn.execute("insert into rehearsal_writes values (now())")
            a.saved["paused_at"] = time.monotonic()
            a.mark_injected()
            a.note("read replica: WAL replay paused (pg_wal_replay_pause) before the contract")
        return
    if "resumed_at" in a.saved:
        return
    for step in a.contract_steps:
        run = runs.get(step)
        if run is not None and run.status == "succeeded":
            a.saved["missed"] = f"{step} applied the contract migrations while the replica lagged"
            _resume(a)
            return
        if a.waiting_for_replicas(step):
            held = (run.summary if run is not None else "") or "its guard failed a try"
            a.detected(step, datetime.now(UTC), f"held the contract migrations: {held}")
            _resume(a)
            return


def _resume(a: Attempt) -> None:
    with psycopg.connect(a.world.database.replica_url, autocommit=True) as conn:
        conn.execute("select pg_wal_replay_resume()")
    a.saved["resumed_at"] = time.monotonic()


def _slack_down(a: Attempt) -> None:
    if a.slack is not None:
        a.slack.fail("error", times=100_000)
    a.note("Slack answers every call and webhook with 500")


def _slack_back(a: Attempt) -> None:
    if a.slack is not None:
        with a.slack.lock:
            a.slack.fail_next.clear()


def _announce_asked(a: Attempt) -> None:
    """Caught when an announce step, no channel having taken its message, asks people."""
    announce = set(a.steps_of("announce"))
    for gate in a.world.client.store.list_gates(release_id=a.release_id):
        if gate.step_id in announce and a.injected_at and gate.opened_at >= a.injected_at:
            a.detected(gate.step_id, gate.opened_at, f"asked people: {gate.prompt}")


def _stop_prometheus(a: Attempt) -> None:
    """Once the new build serves (before the post-deploy analysis): Prometheus goes away.
    Caught when a metrics step fails or asks people what to do."""
    server = a.world.metrics.server
    if server is None:
        return
    if "stopped_at" not in a.saved:
        if a.serving == a.version:
            # the next fault's Prometheus starts now, on another port the release does not
            # know: its first scrape comes while this release runs on
            new = a.world.metrics.restart()
            a.saved["stopped_at"] = time.monotonic()
            a.mark_injected()
            a.note(f"Prometheus {server.url} stopped: nothing answers there")
            if new is not None:
                click.echo(f"  [rehearse] a fresh Prometheus {new.url} for the next fault")
        return
    metrics = set(a.steps_of("metrics"))
    for gate in a.world.client.store.list_gates(release_id=a.release_id):
        if gate.step_id in metrics and a.injected_at and gate.opened_at >= a.injected_at:
            a.detected(gate.step_id, gate.opened_at, f"asked people: {gate.prompt}")


def _worker_killed(a: Attempt) -> None:
    """Caught when the release resumed the killed step from its checkpoint, and no step
    that had finished ran again."""
    runs = a.world.client.store.list_step_runs(a.release_id)
    if a.injected_at is None:
        crash = [r for r in runs if r.step_id == a.crash_at and r.status in ("running", "waiting")]
        if crash:
            a.mark_injected()  # the moment the rehearsal kills the engine (same poll)
        return
    again = _ran_again(runs, a.injected_at)
    if again:
        a.saved["missed"] = f"finished steps ran again after the restart: {', '.join(again)}"
    for event in a.world.client.store.list_events(release_id=a.release_id):
        if event.kind == "release.taken_over" and event.at > a.injected_at and not again:
            a.detected(
                a.crash_at, event.at, f"{event.message}; {a.crash_at} went on from its checkpoint"
            )


def _ran_again(runs: list[StepRunRecord], since: datetime) -> list[str]:
    """The steps that had finished before ``since`` and ran again after it."""
    done_before = [
        r for r in runs if r.ended_at is not None and r.ended_at < since
        and r.status == "succeeded"
    ]  # fmt: skip
    return sorted(
        {
            r.step_id
            for r in runs
            for d in done_before
            if r.step_id == d.step_id and r.run == d.run and r.started_at
            and r.started_at > since and not r.already_done
        }
    )  # fmt: skip


#: seconds the state database is unreachable (the issue's "unreachable for 10 s")
STATE_DB_OUTAGE = 10.0


def _state_db_cut(a: Attempt) -> None:
    """While the step ``a.crash_at`` runs: the proxy in front of the state database drops
    every open connection and refuses new ones for ``STATE_DB_OUTAGE`` seconds (in a thread
    of its own: the release's engine, this follower and the people answering gates all
    meet the outage). Caught when the engine recorded the release's next event after it."""
    proxy = a.state_proxy
    if proxy is None:
        return
    if "outage" not in a.saved:
        run = a.runs().get(a.crash_at)
        if run is not None and run.status in ("running", "waiting"):
            a.mark_injected()
            outage = threading.Thread(target=_outage, args=(a,), name="state-db-outage")
            a.saved["outage"] = outage
            outage.start()
        return
    restored = a.saved.get("restored_at")
    if restored is None or a.detection is not None:
        return
    for event in a.world.client.store.list_events(release_id=a.release_id):
        if event.at > restored:
            a.detected(
                a.crash_at,
                event.at,
                f"the engine rode out {STATE_DB_OUTAGE:g} s without its state database "
                f"({a.saved['refused']} connections refused) and went on: {event.kind}",
            )
            return


def _outage(a: Attempt) -> None:
    proxy = a.state_proxy
    assert proxy is not None
    refused = proxy.refused
    a.note(
        f"state database unreachable for {STATE_DB_OUTAGE:g} s while {a.crash_at} runs "
        "(every connection dropped, new ones refused)"
    )
    proxy.outage(STATE_DB_OUTAGE)
    a.saved["refused"] = proxy.refused - refused
    a.saved["restored_at"] = datetime.now(UTC)
    a.note(f"state database reachable again ({a.saved['refused']} connections refused)")


def _state_db_checked(a: Attempt) -> None:
    """After the release: the outage over; no step that had finished ran again, no step
    failed on the outage, and the audit chain verifies. Otherwise missed, with why."""
    outage = a.saved.get("outage")
    if isinstance(outage, threading.Thread):
        outage.join()
    if a.state_proxy is not None:
        a.state_proxy.restore()
    if a.injected_at is None:
        return
    problems: list[str] = []
    runs = a.world.client.store.list_step_runs(a.release_id)
    if again := _ran_again(runs, a.injected_at):
        problems.append(f"finished steps ran again after the outage: {', '.join(again)}")
    failed = sorted(
        {
            r.step_id
            for r in runs
            if r.status in ("failed", "timed_out") and "state database" in r.summary
        }
    )
    if failed:
        problems.append(f"steps failed on the outage: {', '.join(failed)}")
    check = a.world.client.verify_audit()
    if not check.ok:
        problems.append(f"the audit chain breaks at event {check.broken_seq}: {check.reason}")
    if problems:
        a.saved["missed"] = "; ".join(problems)
    else:
        a.note(
            f"after the outage: no step ran twice; the audit chain verifies "
            f"({check.events_checked} events)"
        )


HALFWAY_COLUMN = "owner_team"
#: what the fault puts after the first statement of a team's own contract migration
FAILING_STATEMENT = (
    "DO $$ BEGIN RAISE EXCEPTION 'rehearsal: contract_migration_fails (a statement the "
    "rehearsal put after the first one of this file)'; END $$;"
)


def _halfway_migration(r: Rehearsal, saved: dict[str, Any]) -> dict[str, str]:
    """A contract migration whose first statement works and whose second fails: the team's
    own first pending contract migration with a failing statement put after its first
    one (with ``--migrations``: in the sandbox's copy only), else a ValueCanvas one."""
    if r.migrations is not None:
        return _team_halfway(r, saved)
    version = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    path = f"migrations/{version}-drop-owner-team.sql"
    saved["originals"] = {path: None}
    saved["target"] = path
    return {
        path: (
            "-- contract: the new release no longer reads owner_team\n"
            f"alter table canvases drop column {HALFWAY_COLUMN};\n"
            "alter table canvases drop column owner_team_v0;\n"
        )
    }


def _team_halfway(r: Rehearsal, saved: dict[str, Any]) -> dict[str, str]:
    """The first contract migration of the team's directory not applied yet on the
    sandbox primary, failing after its first statement; nothing when there is none."""
    app = r.world.sandbox.app
    with psycopg.connect(r.world.database.primary_url, autocommit=True) as conn:
        applied = read_history(conn)
    for migration in discover(app / str(r.migrations)).files:
        if migration.version in applied:
            continue
        if classify_sql(migration.sql, str(migration.path)).phase != "contract":
            continue
        sql = migration.sql
        first = split_statements(sql, str(migration.path))[0]
        end = first.start + len(first.text)
        rest = sql[end:]
        cut = end + (len(rest) - len(rest.lstrip()) + 1 if rest.lstrip().startswith(";") else 0)
        head = sql[:cut] if cut > end else sql[:end] + ";"
        path = str(migration.path.relative_to(app))
        saved["originals"] = {path: sql}
        saved["target"] = path
        saved["first_statement"] = first.text
        saved["first_line"] = first.line
        return {path: f"{head}\n{FAILING_STATEMENT}\n{sql[cut:].lstrip(chr(10))}"}
    saved["no_target"] = (
        f"no contract migration of {r.migrations} is left to apply on the sandbox primary "
        "(an earlier release of this rehearsal applied them)"
    )
    return {}


def _columns(a: Attempt) -> set[str]:
    with psycopg.connect(a.world.database.primary_url, autocommit=True) as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns where table_name = 'canvases'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def _halfway_armed(a: Attempt) -> None:
    if "no_target" in a.saved:
        a.note(f"not injected: {a.saved['no_target']}")
    elif "first_statement" in a.saved:
        a.note(
            f"the team's contract migration {a.saved['target']} fails after its first "
            f"statement (line {a.saved['first_line']}): a failing statement put after it, in "
            "the sandbox's copy only"
        )
    else:
        a.note("the release brings a contract migration that fails at its second statement")


def _contract_started(a: Attempt) -> None:
    """The fault takes effect when a contract migration step starts (with a failing
    migration to apply)."""
    if "target" not in a.saved:
        return
    for step in a.contract_steps:
        run = a.runs().get(step)
        if a.injected_at is None and run is not None and run.started_at is not None:
            a.injected_at = run.started_at


def _first_statement_applies(a: Attempt) -> bool | None:
    """Whether the first statement of the team's failed migration applies again now (in
    a transaction rolled back at once): if it does, it was not left applied. None when
    it cannot be told (a statement that cannot run in a transaction)."""
    with psycopg.connect(a.world.database.primary_url) as conn:
        try:
            conn.execute("set local lock_timeout = '5s'")
            conn.execute(a.saved["first_statement"])
            return True
        except psycopg.errors.ActiveSqlTransaction:
            return None
        except psycopg.Error as exc:
            a.saved["first_error"] = str(exc).splitlines()[0]
            return False
        finally:
            conn.rollback()


def _halfway_healed(a: Attempt) -> None:
    """Was anything left half-applied? Then the migration is put back as it was."""
    target = a.saved.get("target")
    if target is None:
        return
    if "first_statement" in a.saved:
        applies = _first_statement_applies(a)
        if applies:
            a.note(
                f"nothing half-applied: the first statement of {target} still applies "
                "(tried in a transaction rolled back at once)"
            )
        elif applies is None:
            a.note(f"the first statement of {target} cannot run in a transaction: not told")
        else:
            a.saved["missed"] = (
                f"half-applied: the first statement of {target} no longer applies "
                f"({a.saved.get('first_error', '')}): the failed migration left it applied"
            )
    elif HALFWAY_COLUMN in _columns(a):
        a.note(f"nothing half-applied: canvases.{HALFWAY_COLUMN} is still there")
    else:
        a.saved["missed"] = (
            f"half-applied: canvases.{HALFWAY_COLUMN} was dropped by a migration that failed"
        )
    app, env = a.world.sandbox.app, a.world.sandbox.env()
    for path, text in a.saved.get("originals", {}).items():
        if text is None:
            git("rm", "-q", path, cwd=app, env=env)
        else:
            (app / path).write_text(text, encoding="utf-8")
            git("add", path, cwd=app, env=env)
    git("commit", "-q", "-m", "revert: the failed contract migration", cwd=app, env=env)
    git("push", "-q", "origin", "main", cwd=app, env=env)


def _heal_replica(a: Attempt) -> None:
    if "paused_at" in a.saved and "resumed_at" not in a.saved and _replica_paused(a):
        _resume(a)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in [
        Fault(
            "ci_red",
            "CI red on the release commit",
            "before the release (pre-flight)",
            ("ci_green",),
            "a `ci_green` step in pre-flight with the required checks (test, lint, build)",
            arm=_ci_red,
            heal=_ci_green_again,
        ),
        Fault(
            "stale_backup",
            "Stale backup (3 days old)",
            "before the release (pre-flight)",
            ("backup_recent",),
            "a `backup_recent` step in pre-flight with `max_age: 24h`",
            arm=_stale_backup,
            heal=_fresh_backup,
        ),
        Fault(
            "late_commit",
            "Commit pushed to main after the freeze cutoff",
            "before the release (pre-flight)",
            ("freeze",),
            "a `freeze` step with the freeze cutoff and GitHub's record of pushes, and the "
            "same check as a guard right before tagging",
            arm=_late_commit,
        ),
        Fault(
            "bad_image",
            "Bad image (pull error)",
            "at the rollout",
            ("k8s_rollout",),
            "a `k8s_rollout` step after `k8s_apply`, with `on_failure: rollback`",
            arm=_image(Behaviour.BAD_IMAGE, publish=False),
            effective_after="k8s_apply",
        ),
        Fault(
            "crash_loop",
            "Crash loop of the new pods",
            "at the rollout",
            ("k8s_rollout",),
            "a `k8s_rollout` step after `k8s_apply`, with `on_failure: rollback`",
            arm=_image(Behaviour.CRASH_LOOP, publish=True),
            effective_after="k8s_apply",
        ),
        Fault(
            "stuck_rollout",
            "Stuck rollout (new pods never ready: progress deadline exceeded)",
            "at the rollout",
            ("k8s_rollout",),
            "a `k8s_rollout` step after `k8s_apply` (it fails on `ProgressDeadlineExceeded`), "
            "with `on_failure: rollback`",
            arm=_stalled_images,
            during=_short_deadline,
            heal=_deadline_back,
            effective_after="k8s_apply",
        ),
        Fault(
            "replica_lag",
            "Read replica lagging before the contract phase",
            "after the expand migrations, before the contract migrations",
            ("migrate", "sql_check"),
            "guard `read_replicas_healthy` (a `sql_check` on pg_stat_replication) on the "
            "contract migrations, or `replicas:` on the contract `migrate` step",
            during=_lag_replica,
            heal=_heal_replica,
            held=True,
            did_when_caught="held the contract phase until the replica caught up",
        ),
        Fault(
            "contract_migration_fails",
            "A contract migration that fails halfway",
            "at the contract migrations",
            ("migrate",),
            "a contract `migrate` step (each file in one transaction) with `on_failure: halt`",
            arm=_halfway_armed,
            during=_contract_started,
            heal=_halfway_healed,
            held=True,
            files=_halfway_migration,
        ),
        Fault(
            "prometheus_unreachable",
            "Prometheus unreachable during the post-deploy analysis",
            "once the new build serves",
            ("metrics",),
            "a `metrics` step after the rollout (no data is inconclusive: with "
            "`inconclusive_limit` and `decide_roles` it asks the on-call SRE)",
            during=_stop_prometheus,
            held=True,
            did_when_caught="asked the on-call SRE (metrics inconclusive)",
            fresh_prometheus=True,
        ),
        Fault(
            "worker_kill",
            "The engine process killed with kill -9 mid-step",
            "while a step runs (the first metrics, rollout or migration step)",
            (),
            "nothing in the runbook: the engine must resume from its checkpoint (run "
            "releases on workers, `shipcaptain worker`, so another one takes over)",
            during=_worker_killed,
            held=True,
            kill_worker=True,
            did_when_caught="resumed from its checkpoint",
        ),
        Fault(
            "state_db_unreachable",
            f"The state database unreachable for {STATE_DB_OUTAGE:g} s mid-step",
            "while a step runs (the first metrics, rollout or migration step)",
            (),
            "nothing in the runbook: the engine, its followers and the people answering gates "
            "must wait the outage out (the state store tries a lost connection again, DBOS "
            "its system database), run nothing twice and keep the audit chain whole",
            during=_state_db_cut,
            heal=_state_db_checked,
            held=True,
            cut_state_db=True,
            did_when_caught="rode out the outage",
        ),
        Fault(
            "slack_down",
            "Slack down for the whole release",
            "before the release",
            ("announce",),
            "an `announce` step for the completion message with `confirm_by` (when no "
            "channel takes it, the captain posts it by hand and confirms)",
            arm=_slack_down,
            during=_announce_asked,
            heal=_slack_back,
            did_when_caught="asked the captain to post the message by hand",
        ),
        Fault(
            "error_rate",
            "Error rate over threshold after the rollout",
            "once the new build serves",
            ("metrics",),
            "a `metrics` step after the rollout with an error-rate query (share of 5xx "
            "`below: 0.01`) and `on_failure: rollback`, soon after it (no long wait before)",
            app={"error_rate": BAD_ERROR_RATE},
            window=DAMAGE_WINDOW,
        ),
        Fault(
            "latency",
            "Latency over threshold after the rollout",
            "once the new build serves",
            ("metrics",),
            "a `metrics` step after the rollout with a p95 latency query "
            "(`histogram_quantile(0.95, ...)` `below: 0.5`) and `on_failure: rollback`, soon "
            "after it (no long wait before)",
            app={"delay": BAD_LATENCY},
            window=DAMAGE_WINDOW,
        ),
    ]
}

#: faults of the issue this rehearsal cannot inject yet (said, never faked): none now
NOT_YET: dict[str, str] = {}
