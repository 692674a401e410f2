"""Rolling a release back, as a durable workflow.

Two ways in: a step whose failure policy is ``rollback`` fails (the release workflow calls
``run_rollback`` itself, at once, without an approval), or the release captain asks for it
(``shipcaptain release rollback``: a new run of the release whose workflow is
``rollback_workflow``; an on-call SRE other than the captain approves it first).

Either way: the rollback template is announced, the undo of every forward step that
changed something and ran runs in reverse dependency order, then the runbook's
``rollback:`` steps, then the ``rollback_validation`` steps run again. Each of those is a
child workflow with a predictable id, so after a crash the finished ones are not repeated.
A failure stops the rollback (nothing is retried in a loop), keeps what ran and pages the
on-call SRE. The time to restore is recorded against the runbook's P1 ``mitigate`` SLA.

The point of no return: once a contract migration applied something (a column or table
the previous version reads is gone), rolling the app back would break it. Unless that step
has an ``undo`` (its restore procedure), the rollback is refused; the team then records a
forward fix, or a restore procedure they carry out, and the rollback goes ahead.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from dbos import DBOS, SetWorkflowID

from shipcaptain import events
from shipcaptain.actions.base import GateRequest
from shipcaptain.engine import notify, steps
from shipcaptain.engine.gates import EngineDurableContext
from shipcaptain.engine.ids import release_workflow_id, step_workflow_id
from shipcaptain.engine.runtime import runtime, utcnow
from shipcaptain.errors import ShipError
from shipcaptain.permissions import rollback_roles
from shipcaptain.plan import points_of_no_return, rollback_plan
from shipcaptain.runbook.durations import format_duration
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import render_params
from shipcaptain.store import ReleaseStatus

log = logging.getLogger("shipcaptain.engine")

APPROVAL_KEY = "rollback/approval"
APPROVAL_DEADLINE = 3600.0  # seconds an SRE has to approve a requested rollback


def sla_limit(rb: Runbook) -> float | None:
    sla = rb.slas.get("P1")
    return float(sla.mitigate) if sla is not None else None


# ---- checkpointed steps ---------------------------------------------------------------


@DBOS.step(name="shipcaptain.rollback.begin")
def begin(release_id: str, run: int, request: dict[str, Any]) -> dict[str, Any]:
    """Mark the release rolling back and say so; returns the results of the forward steps
    (what the rollback plan is made of) and when the rollback began."""
    rt = runtime()
    release = rt.store.get_release(release_id)
    if request.get("automatic"):
        message = (
            f"automatic rollback: {request['reason']} (failure policy rollback; no approval needed)"
        )
    else:
        message = f"{request['initiator']} initiated a rollback: {request['reason']}" + (
            f"; restore procedure: {request['restore_procedure']}"
            if request.get("restore_procedure")
            else ""
        )
    rt.store.update_release(
        release_id,
        status="rolling_back",
        reason=message,
        run=run,
        event=(events.RollbackStarted, request["initiator"], message, dict(request)),
    )
    latest = rt.store.latest_step_runs(release_id)
    results = {
        sid: {"status": rec.status, "summary": rec.summary, "outputs": dict(rec.outputs)}
        for sid, rec in latest.items()
    }
    return {
        "results": results,
        "began": request.get("requested_at") or utcnow().isoformat(),
        "previous_status": release.status,
        "values": dict(release.params),
        "workdir": release.workdir,
    }


@DBOS.step(name="shipcaptain.rollback.announce")
def announce(release_id: str, reason: str, initiator: str, automatic: bool) -> None:
    rt = runtime()
    release = rt.store.get_release(release_id)
    rb = rt.runbook(release.runbook_text, release.runbook_digest)
    version = release.params.get("version", "")
    text = f"Initiating rollback of v{version} due to {reason}."
    template = rb.comms.templates.get("rollback")
    if template is not None:
        context = notify.comms_facts(rb, release_id)  # with release.url
        context["release"]["reason"] = reason
        try:
            text = str(render_params({"t": template}, context)["t"]).strip()
        except ShipError as exc:
            log.warning("rollback template of %s: %s", release_id, exc)
    notify.announce(
        release_id,
        "rollback",
        {
            "text": text,
            "version": version,
            "reason": reason,
            "initiator": initiator,
            "automatic": automatic,
            "channel": rb.comms.channel,
        },
    )


@DBOS.step(name="shipcaptain.rollback.page")
def page_sre(release_id: str, summary: str) -> str:
    return notify.page(release_id, "P1", summary)


@DBOS.step(name="shipcaptain.rollback.finish")
def finish(
    release_id: str, run: int, status: str, message: str, began: str, sla: float | None
) -> dict[str, Any]:
    """The end of the rollback: how long restore took against the P1 SLA, then the status."""
    rt = runtime()
    took = (utcnow() - datetime.fromisoformat(began)).total_seconds()
    if status == "rolled_back":
        verdict = ""
        if sla is not None:
            verdict = (
                f" (P1 mitigate SLA {format_duration(sla)}: "
                + ("within" if took <= sla else f"missed by {format_duration(round(took - sla))}")
                + ")"
            )
        rt.event(
            release_id,
            None,
            events.RollbackRestored.kind,
            f"restored in {took:.1f}s{verdict}",
            restore_seconds=round(took, 3),
            sla_seconds=sla,
            within_sla=None if sla is None else took <= sla,
        )
    return {"status": status, "message": message, "restore_seconds": took}


@DBOS.step(name="shipcaptain.rollback.give_back")
def give_back(release_id: str, status: str, message: str) -> None:
    """A requested rollback that was not approved: the release is as it was."""
    rt = runtime()
    rt.store.update_release(
        release_id,
        status=cast(ReleaseStatus, status),
        reason=message,
        event=(events.RollbackNotApproved, "engine", message, {}),
    )


@DBOS.step(name="shipcaptain.rollback.approval_closed")
def approval_closed(release_id: str, run: int, approved: bool, timed_out: bool) -> None:
    """End the approval step of a requested rollback the way the gate ended (it was left
    ``waiting`` on every view otherwise)."""
    rt = runtime()
    gate = rt.store.get_gate(release_id, APPROVAL_KEY, run)
    decided = [d for d in rt.store.list_decisions(release_id, APPROVAL_KEY) if d.run == run]
    who = ", ".join(d.user for d in decided) or "nobody"
    status, summary = (
        ("succeeded", f"rollback approved by {who}")
        if approved
        else ("timed_out", "nobody approved the rollback in time")
        if timed_out
        else ("failed", f"rollback rejected by {who}")
    )
    steps._write_step_run(
        release_id,
        APPROVAL_KEY,
        run,
        1,
        status,
        {"summary": summary},
        (events.step_ended(status), "engine", summary, {"run": run, "gate": gate.status}),
    )


# ---- the flow -------------------------------------------------------------------------


def _child(
    release_id: str, run: int, key: str, action: str, params: dict[str, Any], timeout: float
) -> dict[str, Any]:
    from shipcaptain.engine.workflows import rollback_step_workflow

    with SetWorkflowID(step_workflow_id(release_id, run, key, rollback=True)):
        handle = DBOS.start_workflow(
            rollback_step_workflow, release_id, run, key, action, params, timeout
        )
    result: dict[str, Any] = handle.get_result()
    return result


def run_rollback(
    rb: Runbook,
    release_id: str,
    run: int,
    request: dict[str, Any],
    environment_lock: str | None = None,
) -> tuple[str, str]:
    """Roll the release back (see the module's description); returns (status, message).
    With ``environment_lock`` (a rollback people asked for, in an exclusive environment),
    the rollback waits, once approved, for the service's lock in that environment: it does
    not change production while another release of the service is changing it."""
    why = str(request["reason"])
    started = begin(release_id, run, request)
    if not request.get("automatic"):
        with SetWorkflowID(step_workflow_id(release_id, run, "approval", rollback=True)):
            handle = DBOS.start_workflow(
                rollback_approval_workflow,
                release_id,
                run,
                rollback_roles(rb, "rollback.approve"),
                {"initiated_by": request["initiator"], "reason": why},
                started["values"],
                started["workdir"],
            )
        gate: dict[str, Any] = handle.get_result()
        approval_closed(release_id, run, gate["approved"], gate["timed_out"])
        if not gate["approved"]:
            message = "rollback " + ("timed out" if gate["timed_out"] else "rejected") + f": {why}"
            previous = str(request.get("previous_status") or started["previous_status"])
            give_back(release_id, previous, message)
            return previous, message
    if environment_lock is not None:
        steps.hold_env_lock(release_id, rb.name, environment_lock, rollback=True)
    results = started["results"]
    blocked = points_of_no_return(rb, results)
    if blocked and not request.get("restore_procedure"):
        message = (
            f"rollback refused: {', '.join(blocked)} passed the point of no return (a contract "
            "migration ran); choose a forward fix or a restore procedure"
        )
        page_sre(release_id, message)
        return _end(release_id, run, "failed", message, started["began"], None)
    announced = str(request.get("announce_reason") or why)
    announce(release_id, announced, request["initiator"], bool(request.get("automatic")))
    done: list[str] = []
    for key, action, params, timeout in rollback_plan(rb, results):
        outcome = _child(release_id, run, key, action, params, timeout)
        if outcome["status"] != "succeeded":
            message = (
                f"{why}; rollback step {key} failed: {outcome['summary']}; it stopped there "
                f"(done: {', '.join(done) or 'nothing'})"
            )
            page_sre(release_id, message)
            return _end(release_id, run, "failed", message, started["began"], None)
        done.append(key)
    for sid in rb.rollback_validation:
        step = rb.steps[sid]
        key = f"validate-{sid}"
        outcome = _child(
            release_id, run, key, step.action, dict(step.with_), rb.effective_timeout(step)
        )
        if outcome["status"] != "succeeded":
            message = f"{why}; rolled back, but validation {sid} failed: {outcome['summary']}"
            page_sre(release_id, message)
            return _end(release_id, run, "failed", message, started["began"], None)
    return _end(
        release_id, run, "rolled_back", f"{why}; rolled back", started["began"], sla_limit(rb)
    )


def _end(
    release_id: str, run: int, status: str, message: str, began: str, sla: float | None
) -> tuple[str, str]:
    finish(release_id, run, status, message, began, sla)
    if status == "rolled_back":
        notify.mitigated_by_rollback(release_id, f"rolled back (release {release_id})")
    steps.mark_release(release_id, run, status, message)
    return status, message


def _rollback_workflow_body(release_id: str, run: int, request: dict[str, Any]) -> dict[str, Any]:
    rt = runtime()
    if rt.adopt is not None:  # not checkpointed: only a run taken over has steps to adopt
        rt.adopt(release_workflow_id(release_id, run))
    info = steps.load_release(release_id)
    rb = steps.release_runbook(release_id, info["digest"])
    rt.store.update_release(release_id, executor_id=rt.executor_id)
    steps.picked_up(release_id, run)
    exclusive = info["environment"] in rb.exclusive_environments
    lock = info["environment"] if exclusive and not request.get("automatic") else None
    status, message = run_rollback(rb, release_id, run, request, lock)
    if lock is not None:
        steps.drop_env_lock(release_id, rb.name, lock)
    steps.anchor_audit(release_id, run)  # the release's end, signed outside the database
    return {"release_id": release_id, "run": run, "status": status, "message": message}


@DBOS.workflow(name="shipcaptain.rollback_approval")
def rollback_approval_workflow(
    release_id: str,
    run: int,
    roles: list[str],
    evidence: dict[str, Any],
    values: dict[str, Any],
    workdir: str,
) -> dict[str, Any]:
    """The approval gate of a requested rollback (its own workflow: decisions are sent to
    ``<run>/rollback/approval``)."""
    with runtime().working():
        gate = EngineDurableContext(release_id, run, APPROVAL_KEY, values, workdir).await_gate(
            GateRequest(
                kind="rollback",
                prompt=f"Roll back? {evidence['initiated_by']} asks: {evidence['reason']}",
                roles=roles,
                deadline_seconds=APPROVAL_DEADLINE,
                evidence=evidence,
            )
        )
        return {"approved": gate.approved, "timed_out": gate.timed_out}


@DBOS.workflow(name="shipcaptain.rollback")
def rollback_workflow(release_id: str, run: int, request: dict[str, Any]) -> dict[str, Any]:
    with runtime().working():
        return _rollback_workflow_body(release_id, run, request)
