"""Gates: a step that waits, durably, for people to approve, reject or confirm.

The gate is recorded in the store (so the CLI and web can show it), then the step's
workflow waits for decision messages sent to it (``DBOS.recv``) until a quorum approves,
someone rejects, or the gate's own deadline passes. Every decision is checked by the one
permission function and recorded with who, when, the role and the comment.

A gate in parts (``evidence["parts"]``, e.g. the changelog sign-off: one part per feature
owner) waits until every part has an approval from one of its own people or roles instead
of a quorum; each decision keeps the parts that were the decider's as its evidence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dbos import DBOS

from shipcaptain import events
from shipcaptain.actions.base import (
    Decision,
    DurableContext,
    GateRequest,
    GateResult,
    TeamMember,
)
from shipcaptain.engine import durable, steps
from shipcaptain.engine.ids import DECISION_TOPIC
from shipcaptain.engine.runtime import runtime, utcnow
from shipcaptain.errors import PermissionDenied
from shipcaptain.permissions import (
    GateRule,
    Policy,
    authorize,
    evidence_for,
    gate_parts_of,
    policy_of,
    roles_of,
)
from shipcaptain.records import Person
from shipcaptain.store import DecisionRecord, GateRecord, GateStatus, ReleaseRecord
from shipcaptain.store.base import CommitUnknown

if TYPE_CHECKING:
    from shipcaptain.runbook.model import Runbook

log = logging.getLogger("shipcaptain.gates")


#: how often a gate's opening is written again when its commit was lost on its way (the
#: gate looked for first each time), and the first pause between two tries (then doubled)
OPEN_TRIES = 4
OPEN_PAUSE = 0.5


def _opened_deadline(release_id: str, step_key: str, run: int) -> float | None:
    """The deadline of the gate, when it is open already (a replay, or a commit that went
    through although its answer was lost)."""
    try:
        existing = runtime().store.get_gate(release_id, step_key, run)
    except LookupError:
        return None
    return None if existing.deadline_at is None else existing.deadline_at.timestamp()


def _opened_after_a_lost_commit(
    release_id: str, step_key: str, run: int, write: Callable[[], None], deadline: datetime
) -> float:
    """A gate's opening whose commit was lost on its way (written or not, unknown), made
    sure of: the gate looked for once the database answers (after ``OPEN_PAUSE``, then
    twice as long each time) and written again only if it is not there (writing it twice
    would log its opening twice), ``OPEN_TRIES`` writes in all; the deadline stored."""
    from tenacity import (  # only after a lost commit (~10 ms to import), as store.base does
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    log.warning("opening the gate %s of %s: commit unknown; looking", step_key, release_id)
    time.sleep(OPEN_PAUSE)
    for attempt in Retrying(
        retry=retry_if_exception_type(CommitUnknown),
        stop=stop_after_attempt(OPEN_TRIES - 1),
        wait=wait_exponential(multiplier=2 * OPEN_PAUSE),  # 2 x 0.5 s, 4 x 0.5 s, ...
        reraise=True,
    ):
        with attempt:
            found = _opened_deadline(release_id, step_key, run)
            if found is not None:
                return found
            write()
    return deadline.timestamp()


@DBOS.step(name="shipcaptain.open_gate")
def open_gate(release_id: str, run: int, step_key: str, request: dict[str, Any]) -> float:
    rt = runtime()
    opened_before = _opened_deadline(release_id, step_key, run)
    if opened_before is not None:
        return opened_before
    now = utcnow()
    deadline = now + timedelta(seconds=float(request["deadline_seconds"]))
    who = ", ".join([*(f"role {r}" for r in request["roles"]), *request["people"]]) or "anyone"
    needs = f"{request['quorum']} of {who}"
    if request["evidence"].get("parts"):
        needs = "each part: " + "; ".join(p["title"] for p in request["evidence"]["parts"])
    opened = (
        events.gate_opened(request["kind"]),
        "engine",
        f"waiting for {needs}: {request['prompt']}",
        {  # the gate as the evidence bundle shows it (made from the audit log alone)
            "deadline": deadline.isoformat(),
            "run": run,
            "kind": request["kind"],
            "prompt": request["prompt"],
            "roles": list(request["roles"]),
            "people": list(request["people"]),
            "quorum": int(request["quorum"]),
            "evidence": dict(request["evidence"]),
        },
    )
    waiting = {"summary": request["prompt"]}
    gate = GateRecord(
        release_id=release_id,
        step_id=step_key,
        run=run,
        kind=request["kind"],
        prompt=request["prompt"],
        roles=list(request["roles"]),
        people=list(request["people"]),
        quorum=int(request["quorum"]),
        deadline_at=deadline,
        evidence=dict(request["evidence"]),
        status="waiting",
        opened_at=now,
        closed_at=None,
    )
    try_waiting = steps.step_run_of(release_id, step_key, run, 1, "waiting", waiting)

    def write() -> None:  # the gate and its step's waiting try: one transaction
        rt.store.open_gate(gate, try_waiting, opened)

    try:
        write()
        written = deadline.timestamp()
    except CommitUnknown:
        written = _opened_after_a_lost_commit(release_id, step_key, run, write, deadline)
    from shipcaptain.engine.notify import gate_message

    try:  # the buttons in Slack: never an error of the release
        gate_message(release_id, run, step_key, request)
    except Exception:
        log.exception("posting the gate %s of %s to Slack failed", step_key, release_id)
    return written


@DBOS.step(name="shipcaptain.decide")
def decide(release_id: str, run: int, step_key: str, message: dict[str, Any]) -> dict[str, Any]:
    """Check one decision against the gate's rule and record it (or its refusal).

    As a DBOS step it runs again when its process died after recording the decision and
    before the step's checkpoint (a worker killed as someone approved): the decision the
    store holds for this person, the same as the message, is then this message's, and
    the verdict is given again from it. (It was refused as a second decision, and the gate
    waited for a decision that had come: a release taken over there hung.)"""
    rt = runtime()
    gate = rt.store.get_gate(release_id, step_key, run)
    release = rt.store.get_release(release_id)
    user = str(message.get("user", ""))
    decision = message.get("decision")
    comment = str(message.get("comment", ""))
    if gate.status != "waiting":
        return {"accepted": False, "reason": f"the gate is already {gate.status}"}
    if decision not in ("approve", "reject"):
        return {"accepted": False, "reason": f"unknown decision {decision!r}"}
    decided = rt.store.list_decisions(release_id, step_key)
    earlier = next((d for d in decided if d.user == user and d.run == run), None)
    if earlier is not None and (earlier.decision, earlier.comment) != (decision, comment):
        rt.event(
            release_id,
            step_key,
            events.GateRefused.kind,
            f"{user} already decided this gate",
            actor=user or "unknown",
        )
        return {"accepted": False, "reason": f"{user} already decided this gate"}
    rb = rt.runbook(release.runbook_text, release.runbook_digest)
    policy = policy_of(rt.store)  # and the person, from the same read of the team
    person = policy.person(user)
    if earlier is not None:  # the decision this message made before the crash
        return _verdict(
            gate, release, rb, person, policy, user, decision, earlier.role, comment, earlier.at
        )
    rule = GateRule.of(gate)
    try:
        role = authorize(
            person,
            "gate.decide",
            environment=release.environment,
            policy=policy,
            runbook=rb,
            release=release,
            gate=rule,
            initiator=gate.evidence.get("initiated_by") if gate.evidence else None,
            as_role=message.get("role"),
        )
    except PermissionDenied as exc:
        rt.event(release_id, step_key, events.GateRefused.kind, str(exc), actor=user or "unknown")
        return {"accepted": False, "reason": str(exc)}
    at = utcnow()
    verdict = _verdict(gate, release, rb, person, policy, user, decision, role, comment, at)
    covers = verdict["covers"]
    if gate.evidence.get("parts") and not covers:
        reason = f"{user} may not decide this gate: no part of it is theirs"
        rt.event(release_id, step_key, events.GateRefused.kind, reason, actor=user or "unknown")
        return {"accepted": False, "reason": reason}
    seen = evidence_for(gate.evidence, covers)
    verb = "approved" if decision == "approve" else "rejected"
    if gate.kind == "checklist" and decision == "approve":
        verb = "confirmed"
    rt.store.add_decision(
        DecisionRecord(
            release_id=release_id,
            step_id=step_key,
            run=run,
            user=user,
            role=role,
            decision=decision,
            comment=comment,
            at=at,
            evidence=seen,
        ),
        kind=events.decided(verb).kind,
        message=f"{user} {verb}"
        + (f" as {role}" if role else "")
        + (f": {message.get('comment')}" if message.get("comment") else ""),
    )
    return verdict


def _verdict(
    gate: GateRecord,
    release: ReleaseRecord,
    rb: Runbook,
    person: Person,
    policy: Policy,
    user: str,
    decision: str,
    role: str | None,
    comment: str,
    at: datetime,
) -> dict[str, Any]:
    """The verdict of an accepted decision: who decided what, as which role, when, and the
    gate's parts it covers (by the roles the person holds). One for a decision recorded
    now and for one recorded before a crash (``decide`` run again), so both say the same."""
    held = roles_of(person, rb, release.environment, policy)
    return {
        "covers": gate_parts_of(gate.evidence, user, held),
        "accepted": True,
        "decision": decision,
        "user": user,
        "role": role,
        "comment": comment,
        "at": at.isoformat(),
    }


@DBOS.step(name="shipcaptain.close_gate")
def close_gate(release_id: str, run: int, step_key: str, status: str) -> None:
    rt = runtime()
    decided = rt.store.list_decisions(release_id, step_key)
    who = ", ".join(d.user for d in decided if d.run == run) or "nobody"
    said = f"gate {status} ({who})"
    closed = (events.GateClosed, "engine", said, {"status": status, "run": run})
    # the step runs again (its action makes its outcome of the decisions), in the
    # gate's transaction: no reader sees a closed gate on a step still waiting
    going_on = steps.step_run_of(release_id, step_key, run, 1, "running", {"summary": said})
    rt.store.close_gate(
        release_id, step_key, run, cast(GateStatus, status), event=closed, step=going_on
    )


class EngineDurableContext(DurableContext):
    """The durable primitives a DurableAction may use, backed by DBOS."""

    def __init__(
        self, release_id: str, run: int, step_key: str, values: dict[str, Any], workdir: str
    ) -> None:
        self.release_id = release_id
        self.step_id = step_key
        self.run = run
        self.release_values = values
        self.workdir = Path(workdir)

    def sleep(self, seconds: float) -> None:
        durable.sleep(seconds)

    def progress(self, message: str) -> None:
        steps.note(self.release_id, self.step_id, events.StepProgress.kind, message)

    def record(self, name: str, measure: Callable[[], Any]) -> Any:
        return DBOS.run_step({"name": f"shipcaptain.record.{name}"}, measure)

    def announce(self, template: str) -> list[dict[str, Any]]:
        from shipcaptain.engine.notify import announce_step

        return announce_step(self.release_id, template, {})

    def members(self, role: str) -> list[TeamMember]:
        from shipcaptain.mentions import role_people

        rt = runtime()
        release = rt.store.get_release(self.release_id)
        rb = rt.runbook(release.runbook_text, release.runbook_digest)
        return [
            TeamMember(name=p.name, surfaces=list(p.surfaces))
            for p in role_people(rt.store, rb, release.environment, role)
        ]

    def await_gate(self, request: GateRequest) -> GateResult:
        payload = {
            "kind": request.kind,
            "prompt": request.prompt,
            "roles": request.roles,
            "people": request.people,
            "quorum": request.quorum,
            "deadline_seconds": request.deadline_seconds,
            "evidence": request.evidence,
        }
        deadline = open_gate(self.release_id, self.run, self.step_id, payload)
        decisions: list[Decision] = []
        approvers: set[str] = set()
        parts = len(request.evidence.get("parts") or [])
        covered: set[int] = set()
        while True:
            message = durable.receive(DECISION_TOPIC, deadline)
            if message is None:
                close_gate(self.release_id, self.run, self.step_id, "timed_out")
                return GateResult(approved=False, timed_out=True, decisions=decisions)
            verdict = decide(self.release_id, self.run, self.step_id, dict(message))
            if not verdict["accepted"] or verdict["user"] in approvers:
                continue  # refused, or the same person's decision sent twice (counted once)
            decisions.append(
                Decision(
                    decision=verdict["decision"],
                    user=verdict["user"],
                    role=verdict["role"],
                    comment=verdict["comment"],
                    at=verdict["at"],
                )
            )
            if verdict["decision"] == "reject":
                close_gate(self.release_id, self.run, self.step_id, "rejected")
                return GateResult(approved=False, timed_out=False, decisions=decisions)
            approvers.add(verdict["user"])
            covered.update(verdict.get("covers", ()))
            enough = len(covered) >= parts if parts else len(approvers) >= request.quorum
            if enough:
                close_gate(self.release_id, self.run, self.step_id, "approved")
                return GateResult(approved=True, timed_out=False, decisions=decisions)


class InlineDurableContext(EngineDurableContext):
    """The context of a durable action that only sleeps (``sleeps_only``) run inside its
    release's workflow: no checkpoint of DBOS's, its sleeps end at the recorded start of
    its try plus the time slept so far, so a replay after a crash (or a takeover) waits
    only the rest."""

    def __init__(
        self,
        release_id: str,
        run: int,
        step_key: str,
        values: dict[str, Any],
        workdir: str,
        started_at: float,
    ) -> None:
        super().__init__(release_id, run, step_key, values, workdir)
        self._wake_at = started_at

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._wake_at += seconds
        durable.sleep_until(self._wake_at)
