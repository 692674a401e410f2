"""Gates and decisions in the store.

A mixin of :class:`~shipcaptain.store.base.Store` (see :mod:`shipcaptain.store.releases`).
"""

from __future__ import annotations

from shipcaptain import events
from shipcaptain.errors import InvalidState, NotFound
from shipcaptain.records import (
    CLOSED_GATE_STATUSES,
    DecisionRecord,
    GateRecord,
    GateStatus,
    ReleaseRecord,
    StepRunRecord,
    utcnow,
)
from shipcaptain.store import rows
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection
from shipcaptain.store.status_events import StatusEvent


class GateStore(StoreCore):
    """The gate and decision methods of the store."""

    def open_gate(
        self,
        gate: GateRecord,
        step: StepRunRecord | None = None,
        event: StatusEvent | None = None,
    ) -> GateRecord:
        """Open a gate keyed by (release, step, run); opening it again returns the stored one.

        A running release becomes ``waiting`` in the same transaction, and so does the
        gate's step when ``step`` (its try, ``waiting``, with ``event``) is given, so nobody
        ever sees an open gate on a release or a step that still says ``running``.
        """
        with self._transaction("opening a gate", write=True) as conn:
            self._get_release(conn, gate.release_id)
            self._run(conn, "insert_gate", **rows.gate_params(gate))
            if self._run(conn, "release_waits_for_gate", id=gate.release_id).rowcount:
                waits: StatusEvent = (
                    events.ReleaseWaiting, "engine", f"waiting at {gate.step_id}", {}
                )  # fmt: skip
                self._status_event(conn, gate.release_id, None, waits, "running", "waiting")
            if step is not None:
                self._put_step_run(conn, step, event)
            return self._get_gate(conn, gate.release_id, gate.step_id, gate.run)

    def _get_gate(
        self, conn: Connection, release_id: str, step_id: str, run: int | None
    ) -> GateRecord:
        if run is None:
            row = self._one(conn, "get_newest_gate", release_id=release_id, step_id=step_id)
        else:
            row = self._one(conn, "get_gate", release_id=release_id, step_id=step_id, run=run)
        if row is None:
            which = "" if run is None else f" in run {run}"
            raise NotFound(f"no gate at step {step_id!r} of release {release_id!r}{which}")
        return rows.gate_from_row(row)

    def get_gate(self, release_id: str, step_id: str, run: int | None = None) -> GateRecord:
        """The gate of a step in run ``run`` (None: the newest run); :class:`NotFound` if none."""
        with self._transaction("reading a gate") as conn:
            return self._get_gate(conn, release_id, step_id, run)

    def list_gates(
        self, status: GateStatus | None = None, release_id: str | None = None
    ) -> list[GateRecord]:
        """Gates, oldest first, optionally of one status and/or release."""
        with self._transaction("listing gates") as conn:
            found = self._all(conn, "list_gates", status=status, release_id=release_id)
        return [rows.gate_from_row(row) for row in found]

    def waiting_gates_undecided_by(
        self,
        user: str,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[tuple[ReleaseRecord, GateRecord]]:
        """The gates still waiting of the releases still waiting (optionally of one
        environment, runbook and/or starter) at which ``user`` has not decided in that run,
        each with its release: the newest release first, then its gates as they opened.
        Every such gate, however many releases wait."""
        given = {
            "user_name": user,
            "environment": environment,
            "runbook": runbook,
            "started_by": started_by,
        }
        with self._transaction("listing waiting gates") as conn:
            found = self._all(conn, "waiting_gates_undecided_by", **given)
            of = self._all(conn, "releases_waiting_for_gates_undecided_by", **given)
        releases = {row["id"]: rows.release_from_row(row) for row in of}
        return [(releases[row["release_id"]], rows.gate_from_row(row)) for row in found]

    def close_gate(
        self,
        release_id: str,
        step_id: str,
        run: int,
        status: GateStatus,
        *,
        event: StatusEvent | None = None,
        step: StepRunRecord | None = None,
    ) -> GateRecord:
        """Close a waiting gate as approved, rejected, timed_out or cancelled.

        Closing it again with the same status returns it unchanged (a replay); a gate
        already closed another way raises :class:`InvalidState` (who came first won).
        A waiting release with no other open gate is ``running`` again in the same
        transaction. ``event`` is appended there too, with the gate's status before and
        after, when this call closed it, and so is ``step`` (the gate's step's try, again
        ``running`` while its action makes its outcome of the decisions): nobody sees a
        closed gate on a step still ``waiting``.
        """
        if status not in CLOSED_GATE_STATUSES:
            raise ValueError(f"a gate closes as one of {', '.join(CLOSED_GATE_STATUSES)}")
        with self._transaction("closing a gate", write=True) as conn:
            before = self._get_gate(conn, release_id, step_id, run).status
            self._run(
                conn,
                "close_gate",
                release_id=release_id,
                step_id=step_id,
                run=run,
                status=status,
                closed_at=rows.time_param(utcnow()),
            )
            runs = self._run(conn, "release_runs_after_gates", id=release_id).rowcount
            gate = self._get_gate(conn, release_id, step_id, run)
            closed_now = before == "waiting" and gate.status == status
            if event is not None and closed_now:
                self._status_event(conn, release_id, step_id, event, before, gate.status)
            if step is not None and closed_now:
                self._put_step_run(conn, step, None)
            if runs:
                again: StatusEvent = (
                    events.ReleaseRunning,
                    "engine",
                    "no gate open: running again",
                    {},
                )
                self._status_event(conn, release_id, None, again, "waiting", "running")
        if gate.status != status:
            raise InvalidState(
                f"the gate at step {step_id!r} of release {release_id!r} is already {gate.status}"
            )
        return gate

    def add_decision(
        self, decision: DecisionRecord, *, kind: str = "", message: str = ""
    ) -> DecisionRecord:
        """Record a person's decision at a gate; a second one by the same person is ignored.

        Returns the stored decision (the first one). The gate must exist. With ``kind``,
        the decision is also an audit event in the same transaction (only when this call
        recorded it), holding everything the decisions table holds: the evidence bundle
        is made from the events, never from that table.
        """
        with self._transaction("recording a decision", write=True) as conn:
            self._get_gate(conn, decision.release_id, decision.step_id, decision.run)
            params = rows.decision_params(decision)
            added = self._run(conn, "insert_decision", **params).rowcount
            if kind and added:
                data = {
                    "run": decision.run,
                    "decision": decision.decision,
                    "role": decision.role,
                    "comment": decision.comment,
                    "at": rows.time_param(decision.at),
                    "evidence": decision.evidence,
                    "before": "waiting",
                }
                self._append_event(
                    conn,
                    decision.release_id,
                    decision.step_id,
                    kind,
                    decision.user,
                    message,
                    data,
                )
            row = self._one(
                conn,
                "get_decision",
                release_id=decision.release_id,
                step_id=decision.step_id,
                run=decision.run,
                user_name=decision.user,
            )
        assert row is not None
        return rows.decision_from_row(row)

    def list_decisions(self, release_id: str, step_id: str | None = None) -> list[DecisionRecord]:
        """Decisions taken in a release, optionally at one step, in the order taken."""
        with self._transaction("listing decisions") as conn:
            found = self._all(conn, "list_decisions", release_id=release_id, step_id=step_id)
        return [rows.decision_from_row(row) for row in found]
