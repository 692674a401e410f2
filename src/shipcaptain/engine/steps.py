"""Checkpointed steps: every read of the outside world and every side effect of a release
happens in one of these. DBOS records each one's result under (workflow, step number);
on replay the recorded result is returned and the function does not run again.

They return JSON-able dicts (the serializer is JSON, never pickle) and never raise for
an expected failure: a failed action is a result, not an exception.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from dbos import DBOS
from pydantic import ValidationError

from shipcaptain import events
from shipcaptain.actions.base import Action, DurableAction, Outcome, StepContext
from shipcaptain.engine import durable, threads
from shipcaptain.engine.livelog import LiveLog
from shipcaptain.engine.runtime import runtime, utcnow
from shipcaptain.errors import ShipError
from shipcaptain.runbook.conditions import condition_holds
from shipcaptain.runbook.model import Runbook, Step
from shipcaptain.runbook.templating import (
    ReleaseInfo,
    build_context,
    has_template,
    release_facts,
    render_params,
)
from shipcaptain.store import (
    RELEASE_STATUSES,
    ReleaseRecord,
    ReleaseStatus,
    StepRunRecord,
    StepStatus,
)
from shipcaptain.store.status_events import StatusEvent

log = logging.getLogger("shipcaptain.engine")

FAILED = frozenset({"failed", "timed_out"})
ACTIVE_RELEASE = frozenset({"pending", "running", "waiting"})
#: every release status the engine's own marks may change (a cancel is people's last word)
NOT_CANCELLED = frozenset(RELEASE_STATUSES) - {"cancelled"}


def result_of(
    step_id: str,
    status: str,
    summary: str,
    policy: str,
    *,
    outputs: dict[str, Any] | None = None,
    already_done: bool = False,
    attempts: int = 0,
) -> dict[str, Any]:
    """A step's final result, as published to the steps that need it."""
    return {
        "step_id": step_id,
        "status": status,
        "summary": summary,
        "policy": policy,
        "outputs": outputs or {},
        "already_done": already_done,
        "attempts": attempts,
    }


def release_runbook(release_id: str, digest: str) -> Runbook:
    """The parsed runbook of a release. A release's runbook never changes, so reading it
    outside a checkpoint is deterministic; checkpoints carry only its digest."""
    rt = runtime()
    cached = rt.cached_runbook(digest)
    if cached is not None:
        return cached
    return rt.runbook(rt.store.get_release(release_id).runbook_text, digest)


def template_context(
    rb: Runbook, release_id: str, info: dict[str, Any], known: Mapping[str, Any]
) -> dict[str, Any]:
    """What a step's templates see: the release, its values and the finished steps."""
    release_info = ReleaseInfo(
        id=release_id,
        started_by=info["started_by"],
        environment=info["environment"],
        reason=info.get("reason") or "",
        started_at=info.get("started_at") or "",
    )
    outputs = {sid: dict(r.get("outputs", {})) for sid, r in known.items()}
    context = dict(build_context(rb, info["values"], release_info, outputs))
    context["release"].update(release_facts(rb, info["started_by"], known))
    return context


def step_params(
    rb: Runbook, step: Step, release_id: str, info: dict[str, Any], known: Mapping[str, Any]
) -> dict[str, Any]:
    """The step's ``with`` parameters with its templates filled in (raises ShipError)."""
    shell = runtime().registry.get(step.action).shell_params
    # nothing to fill in (render_params renders no string then): no context to build
    context = template_context(rb, release_id, info, known) if _templated(step.with_) else {}
    return dict(render_params(dict(step.with_), context, shell_fields=shell))


def _templated(value: Any) -> bool:
    """Whether a nested structure of mappings and lists holds a template anywhere (what
    ``render_params`` would render; without one it returns its input unchanged)."""
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, Mapping):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_templated(v) for v in value)
    return False


def step_applies(
    rb: Runbook, step: Step, release_id: str, info: dict[str, Any], known: dict[str, Any]
) -> bool:
    """Whether the step's ``when`` holds (True without one); raises ShipError when it
    cannot be evaluated. Pure: what it reads was checkpointed."""
    if step.when is None:
        return True
    return condition_holds(step.when, template_context(rb, release_id, info, known))


def _release_state(release_id: str) -> dict[str, Any]:
    return _state_of(runtime().store.get_release(release_id))


def _state_of(rec: ReleaseRecord) -> dict[str, Any]:
    return {
        "digest": rec.runbook_digest,
        "values": dict(rec.params),
        "started_by": rec.started_by,
        "environment": rec.environment,
        "workdir": rec.workdir,
        "status": rec.status,
        "reason": rec.reason,
        "started_at": (rec.started_at or rec.created_at).isoformat(),
    }


@DBOS.step(name="shipcaptain.load_release")
def load_release(release_id: str) -> dict[str, Any]:
    return _release_state(release_id)


def undelivered_summary(release_id: str) -> str:
    """What the release's final summary says about comms that went nowhere ('' if none)."""
    failed = [n for n in runtime().store.list_notifications(release_id) if n.status != "sent"]
    if not failed:
        return ""
    kinds = ", ".join(dict.fromkeys(f"{n.kind} to {n.channel}" for n in failed))
    return f"; {len(failed)} notification{'s' if len(failed) != 1 else ''} not delivered ({kinds})"


def _start_refusal(release: ReleaseRecord, run: int) -> str | None:
    """The start check again, where it counts: a worker beginning a release (however it
    was queued) asks :func:`~shipcaptain.permissions.authorize_start` whether its starter
    may start it, with this runbook text (its digest taken from the text the worker will
    run, not from the record), in its environment; at every run, so a resumed release is
    still one its starter may start. The refusal, or None; a refusal is recorded (the
    caller ends the release failed)."""
    from shipcaptain.errors import PermissionDenied
    from shipcaptain.permissions import (
        authorize_start,
        policy_of,
    )
    from shipcaptain.runbook.loader import runbook_digest

    rt = runtime()
    digest = runbook_digest(release.runbook_text)
    rb = rt.runbook(release.runbook_text, release.runbook_digest)
    policy = policy_of(rt.store)
    try:
        authorize_start(
            policy.person(release.started_by),
            environment=release.environment,
            runbook=rb,
            digest=digest,
            policy=policy,
        )
    except PermissionDenied as exc:
        refusal = f"refused by the worker: {exc}"
        rt.event(release.id, None, events.ReleaseRefused.kind, refusal, run=run, digest=digest)
        return refusal
    return None


_BEGUN_HERE: set[tuple[str, int]] = set()
"""The runs whose ``begin_release`` ran in this process just now (not a recorded result
given back on a replay): their release workflow has nothing of the prologue left to do."""
_BEGUN_LOCK = threading.Lock()


@DBOS.step(name="shipcaptain.begin_release")
def begin_release(release_id: str, run: int) -> dict[str, Any]:
    """A run's prologue in one checkpoint: the release (``info``), the worker's start
    check (``refusal``: a refused run is marked failed here), and, when the run takes no
    environment lock, what the workflow did between the check and the run's start (who
    runs it, ``release.picked_up``) and the run's start itself (``marked``: the release
    running, its executor in the same transaction). An exclusive run waits for its lock
    first: the workflow marks it (``mark_release``) once it holds the lock."""
    rt = runtime()
    release = rt.store.get_release(release_id)
    info = _state_of(release)
    refusal = _start_refusal(release, run)
    if refusal is not None:
        _mark(release_id, run, "failed", refusal)
        return {"info": info, "refusal": refusal, "marked": True}
    rb = rt.runbook(release.runbook_text, release.runbook_digest)
    if release.environment in rb.exclusive_environments:
        return {"info": info, "refusal": None, "marked": False}
    picked_up(release_id, run)
    _mark(release_id, run, "running", f"run {run} started", executor_id=rt.executor_id)
    with _BEGUN_LOCK:
        _BEGUN_HERE.add((release_id, run))
    return {"info": info, "refusal": None, "marked": True}


def begun_here(release_id: str, run: int) -> bool:
    """Whether ``begin_release`` of this run ran (and marked it) in this process just now;
    False on a replay, which gets its recorded result: the workflow then sets who runs
    the release itself, as it is not checkpointed (after a takeover it is the new process)."""
    with _BEGUN_LOCK:
        if (release_id, run) in _BEGUN_HERE:
            _BEGUN_HERE.discard((release_id, run))
            return True
    return False


def picked_up(release_id: str, run: int) -> None:
    """A run a worker took over went back on the release queue; when a worker with room
    starts it, the release says so (``release.picked_up``): until then every view of it
    says it is queued. Not checkpointed: it runs in whichever process starts the run."""
    rt = runtime()
    if rt.store.awaiting_pickup(release_id) is None:
        return
    rt.store.update_release(
        release_id,
        event=(
            events.ReleasePickedUp,
            "engine",
            f"{rt.executor_id} runs the release: it had room for it on the release queue",
            {"run": run, "by": rt.executor_id},
        ),
    )


@DBOS.step(name="shipcaptain.mark_release")
def mark_release(release_id: str, run: int, status: str, message: str) -> None:
    _mark(release_id, run, status, message)


def _mark(
    release_id: str, run: int, status: str, message: str, *, executor_id: str | None = None
) -> None:
    """Change the release's status, with its event in the same transaction.
    ``executor_id``: who runs it now, set too (also when the release was cancelled)."""
    rt = runtime()
    now = utcnow()
    if status in ("succeeded", "failed", "rolled_back", "cancelled"):
        message += undelivered_summary(release_id)
    # the event in the same transaction: whoever sees the release finished also sees why
    # (the live view stops at the finished status)
    event = (events.release_became(status), "engine", message, {"run": run})
    # people cancel a release before its workflow: a run that gets here in between leaves
    # the release cancelled (no change, no event)
    keep = NOT_CANCELLED
    if status == "running":
        rec = rt.store.update_release(
            release_id,
            status="running",
            run=run,
            started_at=now,
            executor_id=executor_id,
            event=event,
            only_from=keep,
        )
        if executor_id is not None and rec.executor_id != executor_id:
            rt.store.update_release(release_id, executor_id=executor_id)
    elif status in ("succeeded", "failed", "rolled_back", "cancelled"):
        rt.store.update_release(
            release_id,
            status=cast(ReleaseStatus, status),
            ended_at=now,
            reason=message,
            event=event,
            only_from=keep,
        )
    else:
        rt.store.update_release(
            release_id,
            status=cast(ReleaseStatus, status),
            reason=message,
            event=event,
            only_from=keep,
        )


def step_run_of(
    release_id: str,
    step_key: str,
    run: int,
    attempt: int,
    status: str,
    outcome: dict[str, Any] | None = None,
) -> StepRunRecord:
    now = utcnow()
    outcome = outcome or {}
    return StepRunRecord(
        release_id=release_id,
        step_id=step_key,
        run=run,
        attempt=attempt,
        status=cast(StepStatus, status),
        started_at=now,  # the store keeps the first write's start
        ended_at=None if status in ("running", "waiting") else now,
        summary=str(outcome.get("summary", "")),
        detail=str(outcome.get("detail", "")),
        outputs=dict(outcome.get("outputs", {})),
        already_done=bool(outcome.get("already_done", False)),
    )


def _write_step_run(
    release_id: str,
    step_key: str,
    run: int,
    attempt: int,
    status: str,
    outcome: dict[str, Any] | None = None,
    event: StatusEvent | None = None,
) -> None:
    row = step_run_of(release_id, step_key, run, attempt, status, outcome)
    runtime().store.upsert_step_run(row, event=event)


def _prestart(release_id: str, run: int, step_key: str, every_step: bool = True) -> dict[str, Any]:
    """Before a step starts: the release, whether it has been halted or cancelled, whether
    an earlier run already finished this step, and what the finished steps output (for
    templates); one read of the store. ``every_step`` False: the finished steps' outputs
    are not read (``steps`` is None; see :func:`known_steps`)."""
    start = runtime().store.step_start(release_id, step_key, every_step=every_step)
    release, prior = start.release, start.succeeded
    return {
        "info": _state_of(release),
        "owner": release.executor_id,
        "halted": release.status not in ACTIVE_RELEASE,
        "halt_reason": release.reason or release.status,
        "prior": None
        if prior is None
        else {"run": prior.run, "summary": prior.summary, "outputs": dict(prior.outputs)},
        "steps": None if start.latest is None else _known(start.latest),
    }


def _known(latest: Mapping[str, StepRunRecord]) -> dict[str, Any]:
    """What templates and an action's ``inputs`` see of the finished steps."""
    return {
        sid: {"status": rec.status, "summary": rec.summary, "outputs": dict(rec.outputs)}
        for sid, rec in latest.items()
    }


def known_steps(release_id: str, leave_out: tuple[str, int] | None = None) -> dict[str, Any]:
    """Every step's newest try as ``_prestart`` reads it with ``every_step`` (one read);
    ``leave_out``: a step and run whose tries began after that read (see ``LazyInputs``)."""
    return _known(runtime().store.newest_tries(release_id, leave_out))


class LazyInputs(Mapping[str, Mapping[str, Any]]):
    """An action's ``inputs`` (the finished steps' outputs), read from the store when the
    action first looks at them: no action of the catalogue but ``preflight`` (which hands
    them to its script's shell) does, so a step's start need not read every try of the
    release for them (a read that grows with the release). What it reads is what the
    step's start would have read, a moment later: its own tries in this run, which began
    after that moment, are left out."""

    def __init__(self, release_id: str, step_key: str, run: int) -> None:
        self._release_id = release_id
        self._leave_out = (step_key, run)
        self._read: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _steps(self) -> dict[str, Any]:
        with self._lock:
            if self._read is None:
                self._read = known_steps(self._release_id, self._leave_out)
            return self._read

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self._steps()[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps())

    def __len__(self) -> int:
        return len(self._steps())


@DBOS.step(name="shipcaptain.prepare_step")
def prepare_step(release_id: str, run: int, step_key: str) -> dict[str, Any]:
    """The release (runbook, values) and the step's starting state, in one checkpoint."""
    return _prestart(release_id, run, step_key)


def _record(
    release_id: str,
    run: int,
    step_key: str,
    result: dict[str, Any],
    last_try: StepRunRecord | None = None,
) -> None:
    """Record a step's result. ``last_try``: the end of its last try, written in the same
    transaction (``start_step``); a step that ended without a try (skipped, done in an
    earlier run) gets a row of its own."""
    rt = runtime()
    status = result["status"]
    if last_try is None and result.get("attempts", 0) == 0:
        last_try = step_run_of(release_id, step_key, run, 0, status, result)
    result = rt.store.record_step_result(
        release_id,
        run,
        step_key,
        result,
        step_run=last_try,
        event=(
            events.step_ended(status),
            "engine",
            str(result.get("summary", "")),
            {
                "run": run,
                "already_done": result.get("already_done", False),
                "attempts": result.get("attempts", 0),
                "outputs": result.get("outputs") or {},
            },
        ),
    )
    status = result["status"]
    if status in FAILED and result.get("policy") != "continue":
        rt.store.update_release(
            release_id,
            status="failing",
            reason=f"step {step_key} failed: {result.get('summary', '')}",
            only_from=ACTIVE_RELEASE,
            event=(
                events.ReleaseFailing,
                "engine",
                f"no new step starts: {step_key} failed",
                {"run": run, "step": step_key},
            ),
        )
    # last: its waiters see all of the above (and get the result as stored)
    rt.result_recorded(release_id, run, step_key, result)


#: The step's final result as a checkpoint of its own (the general path; ``start_step``
#: records it inside its checkpoint): a row for skipped or already-done steps, an event,
#: and the release marked as failing when a failure halts it.
record_result = DBOS.step(name="shipcaptain.record_result")(_record)


@DBOS.step(name="shipcaptain.note")
def note(release_id: str, step_key: str, kind: str, message: str) -> None:
    """A note on the step's timeline (``step.progress``). As a DBOS step it runs again when
    its process died after writing it and before its checkpoint: keyed by its place in its
    workflow, it is then not written a second time (a metrics analysis killed just after
    a round's note showed that round twice)."""
    rt = runtime()
    workflow_id, place = DBOS.workflow_id, DBOS.step_id
    if workflow_id is None or place is None:  # called outside a workflow: nothing replays it
        rt.event(release_id, step_key, kind, message)
        return
    once = f"{workflow_id}#{place}"
    rt.store.append_event_once(release_id, step_key, kind, "engine", message, once=once)


@DBOS.step(name="shipcaptain.step_state")
def step_state(
    release_id: str,
    run: int,
    step_key: str,
    attempt: int,
    status: str,
    outcome: dict[str, Any] | None = None,
) -> None:
    if status == "running" and not outcome:
        begin_durable_try(release_id, run, step_key, attempt)
        return
    _write_step_run(release_id, step_key, run, attempt, status, outcome)


def begin_durable_try(release_id: str, run: int, step_key: str, attempt: int) -> datetime:
    """A durable action's try begins (``running``, with its event on its first start only);
    when the try first started (a replay writes it again and keeps that time). One
    statement reads the try as stored and writes it, as a unit of work's try begins
    (``store.begin_try``; synced: a wait's clock runs from this start)."""
    data = {"run": run, "attempt": attempt}
    started = (events.StepStarted, "engine", f"try {attempt} started", data)
    row = step_run_of(release_id, step_key, run, attempt, "running")
    prev = runtime().store.begin_try(row, event=started, synced=True)
    first = row if prev is None or prev.started_at is None else prev
    assert first.started_at is not None
    return first.started_at


def _run_with_deadline(action: Action[Any], params: Any, ctx: StepContext) -> tuple[Outcome, bool]:
    """Run ``action`` in a thread; if it overruns its timeout (plus a grace for its own
    clean-up), give up on it and report a timeout."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = action.run(params, ctx)
        except Exception as exc:  # an action's error is the step's failure, not the engine's
            box["error"] = exc

    work = threads.start(f"action-{ctx.step_id}", target)
    work.join(ctx.timeout + 10.0)
    if work.is_alive():
        return Outcome.failure(f"timed out after {ctx.timeout:g}s (the action did not stop)"), True
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, ShipError):  # a failure the action explains: its message says it all
            log.debug("action %s of step %s: %s", action.name, ctx.step_id, exc, exc_info=exc)
            return Outcome.failure(str(exc)), False
        log.warning("action %s of step %s raised", action.name, ctx.step_id, exc_info=exc)
        return Outcome.failure(f"{type(exc).__name__}: {exc}"), False
    outcome: Outcome = box["outcome"]
    return outcome, outcome.status == "failed" and "timed out" in outcome.summary


def _attempt(
    release_id: str,
    run: int,
    step_key: str,
    action_name: str,
    params: dict[str, Any],
    attempt: int,
    timeout: float,
    workdir: str,
    values: dict[str, Any],
    inputs: Mapping[str, Any],
    write_end: bool = True,
    started_by: str | None = None,
) -> dict[str, Any]:
    """One try of a unit-of-work action. If this process died during an earlier execution
    of the same try, the action's own "already done" check runs first; if the try had
    already succeeded and been recorded (the crash came before its checkpoint), its
    recorded result is taken and the action does not run again.

    Without ``write_end`` the caller writes the end of the try (``start_step`` writes it
    with the step's result, in one transaction). ``started_by``: who started the release,
    as the caller read it (read from the store when not given)."""
    rt = runtime()
    started = (
        events.StepStarted,
        "engine",
        f"try {attempt} of {action_name} started",
        {"run": run, "attempt": attempt},
    )
    action = rt.registry.get(action_name)
    prev = rt.store.begin_try(
        step_run_of(release_id, step_key, run, attempt, "running"),
        event=started,
        synced=action.finds_earlier_tries,
    )
    if prev is not None and prev.status == "succeeded":
        recorded = Outcome.success(
            prev.summary,
            detail=prev.detail,
            outputs=dict(prev.outputs),
            already_done=prev.already_done,
        )
        return {**recorded.model_dump(mode="json"), "status": "succeeded"}
    recovered = prev is not None and prev.status == "running"
    if recovered:
        rt.event(
            release_id,
            step_key,
            events.StepRecovered.kind,
            f"try {attempt} was interrupted by a crash; it runs again unless {action_name} "
            "can tell that its work is already done",
        )

    def write_live(summary: str, detail: str) -> None:
        outcome = {"summary": summary, "detail": detail}
        _write_step_run(release_id, step_key, run, attempt, "running", outcome)

    def redact(line: str) -> str:  # the known secrets, again: not every action masks them
        return ctx.redact(line)

    live = LiveLog(write_live, redact)

    def first_started() -> float | None:
        earlier = [
            t.started_at.timestamp()
            for t in rt.store.list_step_runs(release_id)
            if t.step_id == step_key
            and t.started_at is not None
            and ((t.run, t.attempt) != (run, attempt) or recovered)
        ]
        return min(earlier) if earlier else None

    ctx = StepContext(
        release_id=release_id,
        step_id=step_key,
        attempt=attempt,
        timeout=timeout,
        workdir=Path(workdir),
        release_values=values,
        inputs=inputs,
        secrets=list(rt.secrets),
        progress=live.add,
        first_started=first_started,
        started_by=started_by
        if started_by is not None
        else rt.store.get_release(release_id).started_by,
    )
    timed_out = False
    try:
        parsed = action.parse_params(params)
    except ValidationError as exc:
        outcome = Outcome.failure(
            f"bad parameters for {action_name}: {exc.errors()[0]['msg']}", retryable=False
        )
    else:
        assert isinstance(action, Action)
        try:
            done = action.already_done(parsed, ctx)
        except Exception:  # a broken check means "cannot tell", never a lost step
            log.warning("already_done of %s raised; running the step", action_name, exc_info=True)
            done = None
        if done is not None:
            outcome = done.model_copy(update={"already_done": True})
        else:
            outcome, timed_out = _run_with_deadline(action, parsed, ctx)
    live.close()
    status = "succeeded" if outcome.ok else ("timed_out" if timed_out else "failed")
    result = {**outcome.model_dump(mode="json"), "status": status}
    if write_end:
        _write_step_run(release_id, step_key, run, attempt, status, result)
    return result


#: One try of a unit-of-work action as a checkpoint of its own (retries, guard checks).
run_attempt = DBOS.step(name="shipcaptain.attempt")(_attempt)


@DBOS.step(name="shipcaptain.start_step")
def start_step(
    release_id: str, run: int, step_key: str, try_first: bool, owner: str | None = None
) -> dict[str, Any]:
    """Prepare a step and, on the common path, run its first try and record its result,
    all in one checkpoint (each checkpoint is a transaction of the engine's own).

    The common path: the step may start (not blocked, the release not halted, not done in
    an earlier run), has no guards and its action is a unit of work. Anything else returns
    only the preparation (``first`` is None) and the workflow takes the general path.
    ``final`` is the step's recorded result when the first try ended the step.

    ``owner``: a step that runs inside its release's workflow (no workflow of its own, see
    ``workflows.inline``) is fenced off here, as DBOS fences off a workflow: when the
    release is no longer run by this process (taken over) or was cancelled, ``left`` is
    True and the step does nothing and records nothing.
    """
    # the finished steps' outputs are read only where they are used: for the general path
    # (its templates and ``when``, read below) and for templates
    pre = _prestart(release_id, run, step_key, every_step=False)
    if owner is not None and (pre["owner"] != owner or pre["info"]["status"] == "cancelled"):
        return {"pre": None, "first": None, "final": None, "left": True}
    none: dict[str, Any] = {"pre": pre, "first": None, "final": None}
    if not try_first or pre["halted"] or pre["prior"] is not None:
        pre["steps"] = known_steps(release_id)
        return none
    rt = runtime()
    info = pre["info"]
    rb = release_runbook(release_id, info["digest"])
    step = rb.steps[step_key]
    action = rt.registry.get(step.action)
    if (
        step.guards
        or step.when is not None  # the workflow decides whether it runs at all
        or step_key in rb.contract_migrations  # the point-of-no-return warning comes first
        or isinstance(action, DurableAction)
    ):
        if owner is not None and isinstance(action, DurableAction) and not _templated(step.with_):
            # a durable action run inside its release's workflow (one that only sleeps: no
            # guards, no ``when``) reads no other step's outputs unless it asks for them:
            # not a checkpoint (``owner``), so the lazy read may be handed on
            pre["steps"] = LazyInputs(release_id, step_key, run)
        else:
            pre["steps"] = known_steps(release_id)
        return none
    inputs: Mapping[str, Any] = LazyInputs(release_id, step_key, run)
    if _templated(step.with_):
        inputs = pre["steps"] = known_steps(release_id)
    try:
        params = step_params(rb, step, release_id, info, inputs)
    except ShipError:
        if pre["steps"] is None:
            pre["steps"] = known_steps(release_id)
        return none  # the general path reports it
    retry = rb.effective_retry(step)
    first = _attempt(
        release_id,
        run,
        step_key,
        step.action,
        params,
        1,
        rb.effective_timeout(step),
        info["workdir"],
        info["values"],
        inputs,
        write_end=False,
        started_by=info["started_by"],
    )
    end = step_run_of(release_id, step_key, run, 1, first["status"], first)
    final = None
    if first["status"] == "succeeded" or not first.get("retryable", True) or retry.attempts <= 1:
        final = result_of(
            step_key,
            first["status"],
            first["summary"],
            rb.effective_on_failure(step).value,
            outputs=first.get("outputs"),
            already_done=first.get("already_done", False),
            attempts=1,
        )
        _record(release_id, run, step_key, final, last_try=end)
        return {"pre": None, "first": None, "final": final}  # a small checkpoint
    rt.store.upsert_step_run(end)  # another try follows
    if pre["steps"] is None:  # the general path's next tries and their templates
        pre["steps"] = dict(inputs)  # not templated: inputs are the LazyInputs, read once
    return {"pre": pre, "first": first, "final": None}


LOCK_POLL = 2.0  # seconds between two looks at an environment lock's queue


#: how far back a rollback people asked for dates its request for an environment lock: it
#: goes ahead of every release still waiting (they date theirs from when they were started or
#: resumed), behind the holder and behind rollbacks that asked before it
ROLLBACK_PRECEDENCE = timedelta(days=365 * 100)


@DBOS.step(name="shipcaptain.take_env_lock")
def take_env_lock(
    release_id: str, service: str, environment: str, rollback: bool = False
) -> list[str]:
    """Ask for the service's lock in the environment; the releases still ahead (empty once
    this release holds it). Turns follow the order releases were started in (a resumed
    run queues from when it asks); a ``rollback`` goes ahead of the releases still waiting.
    A release that has to wait says for whom."""
    rt = runtime()
    release = rt.store.get_release(release_id)
    since = release.created_at if release.run <= 1 else None
    if rollback:
        since = utcnow() - ROLLBACK_PRECEDENCE
    ahead = rt.store.take_env_lock(service, environment, release_id, since)
    if ahead:
        reason = f"waiting for the {environment} lock of {service}: {', '.join(ahead)} first"
        if release.reason != reason:
            queued = (events.ReleaseQueued, "engine", reason, {"ahead": ahead})
            rt.store.update_release(release_id, reason=reason, event=queued)
    elif release.reason and release.reason.startswith("waiting for the"):
        holds = f"holds the {environment} lock of {service}"
        rt.store.update_release(
            release_id, reason="", event=(events.ReleaseLockTaken, "engine", holds, {})
        )
    return ahead


def hold_env_lock(
    release_id: str, service: str, environment: str, *, rollback: bool = False
) -> None:
    """In a workflow: wait, with durable sleeps, until the release holds the service's lock
    in the environment (``rollback``: ahead of the releases still waiting)."""
    while take_env_lock(release_id, service, environment, rollback):
        durable.sleep(LOCK_POLL)


@DBOS.step(name="shipcaptain.drop_env_lock")
def drop_env_lock(release_id: str, service: str, environment: str) -> None:
    runtime().store.drop_env_lock(service, environment, release_id)


@DBOS.step(name="shipcaptain.anchor_audit")
def anchor_audit(release_id: str, run: int) -> dict[str, Any]:
    """At a release's end: sign the audit log's head and anchor it outside the database.

    Idempotent on replay (an anchor of this release and run already in the anchor file is
    kept, none is added). Never fails the release (see ``anchor_release_end``)."""
    from shipcaptain.audit.anchors import anchor_release_end

    rt = runtime()
    if rt.settings is None:  # an engine without settings (some tests): nothing to anchor with
        return {"anchored": None}
    return {"anchored": anchor_release_end(rt.store, rt.settings, release_id, run)}
