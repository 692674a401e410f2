"""The release as durable workflows.

Deterministic replay with a parallel DAG (see docs/explanation/durable-engine.md): the
release workflow starts every step, always in the same topological order; each step first
waits for the results of the steps it needs, then runs. Steps therefore start as soon as
their own dependencies are done, and replay follows the same call order.

A step that needs DBOS's primitives (a gate's messages, durable sleeps between retries or
guard checks, checkpointed guard tries, the point-of-no-return note, a ``when``'s try) is
a child workflow with a predictable id (``<release>/<step>``). Every other step (one try
of a unit-of-work action: most of a runbook) runs in a thread of the release workflow's
own process without a workflow of its own (:func:`inline`): what makes it durable is
shipcaptain's own records, the try's start (written before the action runs) and the
step's result (written once), which a replay of the release workflow reads instead of a
checkpoint.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dbos import DBOS, SetWorkflowID

from shipcaptain import events
from shipcaptain.actions.base import DurableAction, Outcome
from shipcaptain.comms import announced_by_steps
from shipcaptain.engine import durable, notify, steps, threads
from shipcaptain.engine.gates import EngineDurableContext, InlineDurableContext
from shipcaptain.engine.ids import release_workflow_id, step_workflow_id
from shipcaptain.engine.runtime import runtime
from shipcaptain.errors import ShipError
from shipcaptain.runbook.conditions import skip_reason
from shipcaptain.runbook.model import Runbook, Step
from shipcaptain.runbook.templating import render_params
from shipcaptain.store import StepRunRecord

log = logging.getLogger("shipcaptain.engine")

#: seconds between two looks, while a step runs inside its release workflow, for a stopping engine
JOIN_LOOK = 0.5


def _finish(
    release_id: str,
    run: int,
    step_key: str,
    result: dict[str, Any],
    *,
    recorded: bool = False,
    last_try: StepRunRecord | None = None,
) -> dict[str, Any]:
    """End a step: its result recorded (the steps that need it read it from the store),
    and what it has to announce (its ``announce`` output) posted to the release's channels.
    ``last_try``: the end of its last try, written with the result (a step run inside its
    release's workflow only: a step workflow's checkpoints carry JSON)."""
    if not recorded:
        if last_try is None:
            steps.record_result(release_id, run, step_key, result)
        else:
            steps.record_result(release_id, run, step_key, result, last_try=last_try)
    announcement = _announcement(result)
    if announcement is not None:
        notify.announce_step(release_id, step_key, {"text": announcement})
    return result


def _announcement(result: dict[str, Any]) -> str | None:
    """What a finished step has to post to the release's channels (its ``announce``
    output), or None."""
    announcement = result.get("outputs", {}).get("announce")
    if result["status"] == "succeeded" and announcement and not result.get("already_done"):
        return str(announcement)
    return None


def _execute(
    rb: Runbook,
    step: Step,
    step_key: str,
    release_id: str,
    run: int,
    info: dict[str, Any],
    known: dict[str, Any],
    policy: str,
    first: dict[str, Any] | None = None,
    inline: bool = False,
) -> tuple[dict[str, Any], StepRunRecord | None]:
    """Guards, then the action with retries; returns the step's result, and the end of its
    try when that is left to be written with the result (``inline``: the step runs inside
    its release's workflow, where a durable action only sleeps and no checkpoint of DBOS's
    parts its try's end from its result: one transaction writes both). ``first`` is the
    result of the first try when ``steps.start_step`` already ran it."""
    rt = runtime()
    context = steps.template_context(rb, release_id, info, known) if step.guards else {}
    for gname in step.guards:
        guard = rb.guards[gname]
        for dep in guard.after_steps:
            if known.get(dep, {}).get("status") != "succeeded":
                return steps.result_of(
                    step.id, "failed", f"guard {gname}: step {dep} has not succeeded", policy
                ), None
        if guard.check is not None:
            tries = 1 + (int(guard.within // guard.every) if guard.every > 0 else 0)
            try:
                check_params = render_params(
                    dict(guard.check.with_),
                    context,
                    shell_fields=rt.registry.get(guard.check.action).shell_params,
                )
            except ShipError as exc:  # a template over the sandbox's limits, a value ...
                return steps.result_of(
                    step.id, "failed", f"guard {gname}: cannot fill in its check: {exc}", policy
                ), None
            for attempt in range(1, tries + 1):
                check = steps.run_attempt(
                    release_id,
                    run,
                    f"{step_key}:guard:{gname}",
                    guard.check.action,
                    check_params,
                    attempt,
                    guard.check.timeout or 60.0,
                    info["workdir"],
                    info["values"],
                    known,
                    started_by=info["started_by"],
                )
                if check["status"] == "succeeded":
                    break
                if attempt < tries:
                    durable.sleep(guard.every)
            else:
                return steps.result_of(
                    step.id, "failed", f"guard {gname} not met: {check['summary']}", policy
                ), None
    try:
        params = steps.step_params(rb, step, release_id, info, known)
    except ShipError as exc:
        return steps.result_of(step.id, "failed", f"cannot fill in parameters: {exc}", policy), None
    action = rt.registry.get(step.action)
    if isinstance(action, DurableAction):
        outcome = _run_durable(action, params, release_id, run, step_key, info, inline)
        status = "succeeded" if outcome.ok else "failed"
        ended = outcome.model_dump(mode="json")
        done = steps.result_of(
            step.id, status, outcome.summary, policy, outputs=outcome.outputs, attempts=1
        )
        if inline:  # written with the result
            return done, steps.step_run_of(release_id, step_key, run, 1, status, ended)
        steps.step_state(release_id, run, step_key, 1, status, ended)
        return done, None
    retry = rb.effective_retry(step)
    timeout = rb.effective_timeout(step)
    result: dict[str, Any] = {}
    for attempt in range(1, retry.attempts + 1):
        if attempt == 1 and first is not None:
            result = first
            if result["status"] == "succeeded" or not result.get("retryable", True):
                break
            continue
        if attempt > 1:
            delay = retry.delay_before(attempt)
            steps.note(
                release_id,
                step_key,
                events.StepRetry.kind,
                f"try {attempt} of {retry.attempts} in {delay:g}s: {result.get('summary')}",
            )
            durable.sleep(delay)
        result = steps.run_attempt(
            release_id,
            run,
            step_key,
            step.action,
            params,
            attempt,
            timeout,
            info["workdir"],
            info["values"],
            known,
            started_by=info["started_by"],
        )
        if result["status"] == "succeeded" or not result.get("retryable", True):
            break
    final = steps.result_of(
        step.id,
        result["status"],
        result["summary"],
        policy,
        outputs=result.get("outputs"),
        already_done=result.get("already_done", False),
        attempts=attempt,
    )
    return final, None


def _run_durable(
    action: DurableAction[Any],
    params: dict[str, Any],
    release_id: str,
    run: int,
    step_key: str,
    info: dict[str, Any],
    inline: bool,
) -> Outcome:
    """A durable action's one try, from its start recorded to its outcome."""
    values, workdir = dict(info["values"]), info["workdir"]
    ctx: EngineDurableContext
    if inline:  # timed from its try's recorded start: no checkpoint of its clock
        start = steps.begin_durable_try(release_id, run, step_key, 1).timestamp()
        ctx = InlineDurableContext(release_id, run, step_key, values, workdir, start)
    else:
        steps.step_state(release_id, run, step_key, 1, "running")
        ctx = EngineDurableContext(release_id, run, step_key, values, workdir)
    try:
        parsed = action.parse_params(params)
    except ValueError as exc:
        return Outcome.failure(f"bad parameters: {exc}")
    return action.run_durable(parsed, ctx)


def _step_workflow_body(
    release_id: str,
    run: int,
    step_id: str,
    needs: list[str],
    owner: str | None = None,
    first_poll: float = durable.RESULT_POLL_FIRST,
    recorded: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One step: a child workflow's body, or (``owner``: the process running the release)
    a step run inside its release's workflow, where the DBOS steps below run as plain
    functions (a thread without a DBOS context) and the store's records make it durable.
    ``first_poll`` and ``recorded``: see ``durable.wait_step_results``."""
    deps = durable.wait_step_results(
        release_id, run, needs, first_poll=first_poll, recorded=recorded
    )
    blockers = [
        d for d, r in deps.items() if r["status"] != "succeeded" and r["policy"] != "continue"
    ]
    started = steps.start_step(release_id, run, step_id, not blockers, owner)
    if started.get("left"):
        return started  # fenced off: nothing recorded, whoever runs the release runs it
    if started["final"] is not None:
        return _finish(release_id, run, step_id, started["final"], recorded=True)
    pre = started["pre"]
    info = pre["info"]
    rb = steps.release_runbook(release_id, info["digest"])
    step = rb.steps[step_id]
    policy = rb.effective_on_failure(step).value
    if blockers:
        return _finish(
            release_id,
            run,
            step_id,
            steps.result_of(
                step_id, "skipped", f"not run: {', '.join(blockers)} did not succeed", policy
            ),
        )
    if pre["halted"]:
        return _finish(
            release_id,
            run,
            step_id,
            steps.result_of(
                step_id, "skipped", f"not run: release stopped ({pre['halt_reason']})", policy
            ),
        )
    if pre["prior"] is not None:
        prior = pre["prior"]
        return _finish(
            release_id,
            run,
            step_id,
            steps.result_of(
                step_id,
                "succeeded",
                prior["summary"]
                if prior["summary"].startswith("done in run")
                else f"done in run {prior['run']}: {prior['summary']}",
                policy,
                outputs=prior["outputs"],
                already_done=True,
            ),
        )
    try:
        applies = steps.step_applies(rb, step, release_id, info, pre["steps"])
    except ShipError as exc:
        return _finish(
            release_id,
            run,
            step_id,
            steps.result_of(step_id, "failed", f"cannot evaluate its 'when': {exc}", policy),
        )
    if not applies:
        # not applicable: recorded with the reason, and no obstacle for the steps after it
        return _finish(
            release_id,
            run,
            step_id,
            steps.result_of(step_id, "skipped", skip_reason(str(step.when)), "continue"),
        )
    if step_id in rb.contract_migrations:
        steps.note(
            release_id,
            step_id,
            events.PointOfNoReturn.kind,
            f"{step_id} is the point of no return: its contract migrations drop schema the "
            "previous version needs"
            + (
                "; a rollback after it runs its undo (the restore procedure) first"
                if step.undo is not None
                else "; after it, the app is rolled back only with a forward fix or a restore "
                "procedure chosen by the team"
            ),
        )
    last_try = None
    try:
        result, last_try = _execute(
            rb,
            step,
            step_id,
            release_id,
            run,
            info,
            pre["steps"],
            policy,
            started["first"],
            inline=owner is not None,
        )
    except Exception as exc:  # a bug must end the step, not hang the release (cancel is a
        # BaseException in DBOS and passes through)
        log.exception("internal error in step %s of %s", step_id, release_id)
        result = steps.result_of(
            step_id, "failed", f"internal error: {type(exc).__name__}: {exc}", policy
        )
    return _finish(release_id, run, step_id, result, last_try=last_try)


def _rollback_step_workflow_body(
    release_id: str, run: int, key: str, action: str, params: dict[str, Any], timeout: float
) -> dict[str, Any]:
    pre = steps.prepare_step(release_id, run, f"rollback/{key}")
    info = pre["info"]
    rb = steps.release_runbook(release_id, info["digest"])
    step = Step.model_validate({"id": key, "action": action, "with": params, "timeout": timeout})
    result, _ = _execute(rb, step, f"rollback/{key}", release_id, run, info, pre["steps"], "halt")
    steps.record_result(release_id, run, f"rollback/{key}", {**result, "policy": "continue"})
    return result


def _release_workflow_body(release_id: str, run: int) -> dict[str, Any]:
    rt = runtime()
    if rt.adopt is not None:  # not checkpointed: only a run taken over has steps to adopt
        rt.adopt(release_workflow_id(release_id, run))
    # load, check and (without an environment lock to wait for) mark: one checkpoint
    try:
        begun = steps.begin_release(release_id, run)
    except BaseException:  # its record failed (cancelled, another process's): forget it ran
        steps.begun_here(release_id, run)
        raise
    info, refusal = begun["info"], begun["refusal"]
    if refusal is not None:  # marked failed in the step
        return {"release_id": release_id, "run": run, "status": "failed", "message": refusal}
    rb = steps.release_runbook(release_id, info["digest"])
    if not steps.begun_here(release_id, run):
        # who runs it now (not checkpointed on purpose: after a takeover it is the new
        # process); a run the step marked just now in this process set it there
        rt.store.update_release(release_id, executor_id=rt.executor_id)
        steps.picked_up(release_id, run)
    exclusive = info["environment"] in rb.exclusive_environments
    if exclusive:
        steps.hold_env_lock(release_id, rb.name, info["environment"])
    if not begun["marked"]:  # decided by the recorded result: a replay makes the same calls
        steps.mark_release(release_id, run, "running", f"run {run} started")
    result = _run_release(rb, release_id, run)
    if exclusive:
        steps.drop_env_lock(release_id, rb.name, info["environment"])
    steps.anchor_audit(release_id, run)  # the release's end, signed outside the database
    return result


def _run_release(rb: Runbook, release_id: str, run: int) -> dict[str, Any]:
    deps = rb.dependencies
    order = rb.topological_order()
    # the deploy begins once pre-flight passed (its steps first, then the start message,
    # then the rest); a failed pre-flight is not announced as a start. Sent once per
    # release: not again on a resume.
    preflight = notify.start_after_steps(rb)
    first = _with_needs(deps, preflight)
    threads = InlineSteps(release_id, run)
    try:
        for sid in order:
            if sid in first:
                _start_step(rb, release_id, run, sid, threads)
        checked = durable.wait_step_results(release_id, run, preflight)
        if _templated_message(rb, "start") and all(
            r["status"] == "succeeded" or r["policy"] == "continue" for r in checked.values()
        ):
            notify.announce_step(release_id, "start", {})
        for sid in order:
            if sid not in first:
                _start_step(rb, release_id, run, sid, threads)
        # the steps' results, from the store (written once, so a replay reads the same),
        # not from each step workflow's own result: one more checkpoint per step
        results = durable.wait_step_results(release_id, run, order)
    finally:
        # the workflow stays active while a step runs here (a stopping engine waits for it)
        threads.join()
    failed = [
        sid
        for sid, r in results.items()
        if r["status"] in steps.FAILED and r["policy"] != "continue"
    ]
    status = "succeeded"
    tolerated = [s for s, r in results.items() if r["status"] in steps.FAILED]
    message = f"all {len(results)} steps done" + (
        f" ({len(tolerated)} failure tolerated: {', '.join(tolerated)})" if tolerated else ""
    )
    if failed:
        _open_incident(rb, release_id, failed)
    if failed and any(results[sid]["policy"] == "rollback" for sid in failed):
        # the rollback marks the release itself (rolled_back, or failed) and mitigates the
        # incident it opened
        status, message = _roll_back(rb, release_id, run, results, f"failed at {', '.join(failed)}")
    else:
        if failed:
            status, message = "failed", f"failed at {', '.join(failed)}"
            reasons = "; ".join(f"{sid}: {results[sid].get('summary') or ''}" for sid in failed)
            if _templated_message(rb, "failed"):
                notify.announce_step(release_id, "failed", {"reason": reasons})
        # before the status: who sees it finished sees the message; not when an announce
        # step of the runbook sent it at its place (before the owners' final sign-off)
        if (
            status == "succeeded"
            and _templated_message(rb, "complete")
            and "complete" not in announced_by_steps(rb)
        ):
            notify.announce_step(release_id, "complete", {})
        steps.mark_release(release_id, run, status, message)
    return {
        "release_id": release_id,
        "run": run,
        "status": status,
        "message": message,
        "steps": {sid: r["status"] for sid, r in results.items()},
    }


def _templated_message(rb: Runbook, template: str) -> bool:
    """Whether the runbook has a comms template for one of the release's own messages
    (start, failed, complete): without one there is nothing to send, and the release
    workflow makes no checkpoint for it. Decided by the runbook alone: replays the same."""
    return template in rb.comms.templates


def _start_step(rb: Runbook, release_id: str, run: int, step_id: str, threads: InlineSteps) -> None:
    needs = [d for d in rb.dependencies[step_id] if d in rb.steps]
    if inline(rb, step_id):
        threads.start(step_id, needs, local=all(inline(rb, d) for d in needs))
        return
    with SetWorkflowID(step_workflow_id(release_id, run, step_id)):
        DBOS.start_workflow(step_workflow, release_id, run, step_id, needs)


def inline(rb: Runbook, step_id: str) -> bool:
    """Whether the step runs inside its release's workflow, without a workflow of its own:
    one try of a unit-of-work action, or of a durable action that only sleeps (a
    ``wait``: its sleep ends at its try's recorded start plus its duration, so a replay
    waits only the rest), with none of what needs DBOS's primitives (a durable action's
    messages and checkpoints, guards, retries and their durable waits, the
    point-of-no-return note) and no ``when`` (its try would take the general path, where
    the try's end and the step's result are written apart: the checkpoint of the try
    keeps a replay from taking the try for one of an earlier run). Decided by the runbook
    alone, so every execution of the release workflow starts the same child workflows in
    the same order.

    Such a step costs no checkpoint of DBOS's: its try's start is recorded before the
    action runs and its result once (the first write wins), as in a step workflow; a
    replay of the release workflow runs again only the steps with no result recorded
    (a try that was running at a crash runs again, as in a step workflow's replay) and
    is fenced off, as DBOS fences off a workflow, once another process runs the release
    or it was cancelled (``steps.start_step``)."""
    step = rb.steps[step_id]
    action = runtime().registry.get(step.action)
    return not (
        step.guards
        or step.when is not None  # its try's end and its result would be two writes
        or step_id in rb.contract_migrations
        or rb.effective_retry(step).attempts > 1
        # a durable action that only sleeps (a wait) runs here, timed from its try's start
        or (isinstance(action, DurableAction) and not action.sleeps_only)
    )


class InlineSteps:
    """The steps of a run that run inside the release workflow (:func:`inline`), each in a
    thread of its own that waits for the steps it needs, as a step workflow does."""

    def __init__(self, release_id: str, run: int) -> None:
        self.release_id = release_id
        self.run = run
        self._threads: list[threads.Work] = []
        self._recorded: dict[str, dict[str, Any]] | None = None

    def start(self, step_id: str, needs: list[str], *, local: bool) -> None:
        """``local``: every step it needs runs inside the release workflow too, so in this
        process, whose record wakes its wait at once: it looks in the store for them only
        at the longest poll (a safety net), not from half a second on."""
        if self._recorded is None:
            # a replay: the steps already done are not run again (results are written once)
            self._recorded = runtime().store.step_results(self.release_id, self.run)
        recorded = self._recorded.get(step_id)
        if recorded is None:
            # its signal before its thread: a step that waits for it and runs here too
            # misses no result, so it need not look in the store first (``_step``)
            runtime().result_signal(self.release_id, self.run, step_id)
        # a fresh context (``threads.start``): no DBOS workflow context, so the DBOS steps
        # the step calls run as plain functions and record nothing in the release
        # workflow's checkpoints
        work = threads.start(f"step-{step_id}", self._step, step_id, needs, recorded, local)
        self._threads.append(work)

    def _step(
        self, step_id: str, needs: list[str], recorded: dict[str, Any] | None, local: bool
    ) -> None:
        rt = runtime()
        first_poll = durable.RESULT_POLL_MAX if local else durable.RESULT_POLL_FIRST
        # the needed steps all run here (``local``): those done before this execution of
        # the release workflow are in its one read, the others' signals were made before
        # they started (``start``): no read of the store before the wait
        known = None
        if local and self._recorded is not None:
            known = {d: self._recorded[d] for d in needs if d in self._recorded}
        try:
            with rt.working():
                if recorded is None:
                    _step_workflow_body(
                        self.release_id,
                        self.run,
                        step_id,
                        needs,
                        owner=rt.executor_id,
                        first_poll=first_poll,
                        recorded=known,
                    )
                elif (text := _announcement(recorded)) is not None:
                    # recorded before a crash: its announcement only if none was sent
                    kind = events.CommsSent.of(step_id)
                    sent = rt.store.list_notifications(self.release_id)
                    if not any(n.kind == kind for n in sent):
                        notify.announce_step(self.release_id, step_id, {"text": text})
        except durable.EngineStopping:
            pass  # nothing recorded: the release workflow's next execution runs it
        except Exception:  # no result recorded: the release waits, as for a failed workflow
            if rt.stopping.is_set():  # the engine went away under it (``join``)
                log.warning(
                    "step %s of %s (run %d) ended after its engine stopped: not recorded; "
                    "it runs again when the release resumes",
                    step_id,
                    self.release_id,
                    self.run,
                )
                return
            log.exception("step %s of %s (run %d) failed", step_id, self.release_id, self.run)

    def join(self) -> None:
        """Wait for the steps running here. Once the engine stops, for at most
        ``durable.SLICE`` seconds more (a step that ends by then is recorded); then the
        release workflow leaves (``EngineStopping``: it stays PENDING), so the process can
        end. A step still running is left to the process's end: its command dies with the
        process (the shell action's parent-death signal), nothing of its try is recorded,
        and it runs again when the release resumes, as after a crash. (It waited for the
        step however long it ran: a `release start` stopped with Ctrl-C did not end until
        the step did, and the step's result then found no engine to record it.)"""
        rt = runtime()
        stop_seen: float | None = None
        for thread in self._threads:
            while thread.is_alive():
                if not rt.stopping.is_set():
                    thread.join(JOIN_LOOK)
                    continue
                if stop_seen is None:
                    stop_seen = time.monotonic()
                left = stop_seen + durable.SLICE - time.monotonic()
                if left <= 0:
                    log.warning(
                        "release %s (run %d): step %s still running as the engine stops; "
                        "it is left unrecorded and runs again when the release resumes",
                        self.release_id,
                        self.run,
                        thread.name.removeprefix("step-"),
                    )
                    raise durable.EngineStopping()
                thread.join(min(left, 0.1))


def _with_needs(deps: dict[str, list[str]], step_ids: list[str]) -> set[str]:
    """``step_ids`` and every step they need, directly or not."""
    found: set[str] = set()
    todo = list(step_ids)
    while todo:
        sid = todo.pop()
        if sid not in found:
            found.add(sid)
            todo += deps.get(sid, [])
    return found


def _open_incident(rb: Runbook, release_id: str, failed: list[str]) -> str | None:
    """A failed post-deploy check in a customer-facing environment opens an incident."""
    rules = rb.incidents
    checks = [sid for sid in failed if rb.phase_of.get(sid) in rules.post_deploy_phases]
    environment = runtime().store.get_release(release_id).environment
    if not checks or environment not in rules.customer_facing:
        return None
    return notify.page_step(
        release_id,
        rules.severity,
        f"post-deploy check {', '.join(checks)} failed in {environment}",
    )


def _roll_back(
    rb: Runbook, release_id: str, run: int, results: dict[str, dict[str, Any]], why: str
) -> tuple[str, str]:
    """The failure policy ``rollback``: the rollback starts at once, without an approval.
    Its announcement names the failing checks."""
    from shipcaptain.engine.rollback import run_rollback

    trigger = [
        sid
        for sid, r in results.items()
        if r["status"] in steps.FAILED and r["policy"] == "rollback"
    ]
    failing = [
        f"{sid} failing ({str(results[sid].get('summary') or '').split(':')[0].strip()})"
        for sid in trigger
    ]
    request = {
        "reason": why,
        "announce_reason": "; ".join(failing) or why,
        "initiator": "engine",
        "automatic": True,
        "trigger": trigger,
    }
    return run_rollback(rb, release_id, run, request)


# The DBOS workflows: each body runs counted, so a stopping engine can wait for them to leave.


@DBOS.workflow(name="shipcaptain.step")
def step_workflow(release_id: str, run: int, step_id: str, needs: list[str]) -> dict[str, Any]:
    with runtime().working():
        return _step_workflow_body(release_id, run, step_id, needs)


@DBOS.workflow(name="shipcaptain.rollback_step")
def rollback_step_workflow(
    release_id: str, run: int, key: str, action: str, params: dict[str, Any], timeout: float
) -> dict[str, Any]:
    with runtime().working():
        return _rollback_step_workflow_body(release_id, run, key, action, params, timeout)


@DBOS.workflow(name="shipcaptain.release")
def release_workflow(release_id: str, run: int) -> dict[str, Any]:
    with runtime().working():
        return _release_workflow_body(release_id, run)
