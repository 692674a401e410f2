"""Approval and checklist gates on a real database: who may decide, quorum, separation of
duties, rejection, deadlines, and the engine's own check of every decision."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.processes import wait_for
from helpers.releases import Harness, harness, write_runbook
from shipcaptain.engine import dbos_private, durable
from shipcaptain.engine.ids import DECISION_TOPIC, step_workflow_id
from shipcaptain.errors import InvalidState, PermissionDenied
from shipcaptain.store import Store

ROLES = """roles:
  release_captain: {title: Release Captain, members: [casey]}
  oncall_sre: {title: On-Call SRE, members: [sam, riley]}
  feature_owner: {title: Feature Owner, members: [fola, dev], surfaces: [billing]}
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def gate_runbook(tmp_path: Path, gate: str) -> Path:
    after = '{id: after, action: shell, needs: [gate], with: {command: "echo after >> log"}}'
    return write_runbook(
        tmp_path,
        f"name: gated\n{ROLES}phases:\n  - id: one\n    steps:\n      - {gate}\n      - {after}\n",
    )


APPROVAL = (
    "{id: gate, action: approval, with: {prompt: ship it?, roles: [oncall_sre], timeout: 1h}}"
)


def test_the_right_role_approves_and_the_decision_is_recorded(h: Harness, tmp_path: Path) -> None:
    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    assert h.client.get(release.id).status == "waiting"
    assert (
        h.client.decide(
            release.id, "gate", user="sam", decision="approve", comment="dashboards green"
        )
        == "recorded"
    )
    assert h.wait(release.id).status == "succeeded"
    [decision] = h.client.store.list_decisions(release.id, "gate")
    assert (decision.user, decision.role, decision.decision, decision.comment) == (
        "sam",
        "oncall_sre",
        "approve",
        "dashboards green",
    )
    assert h.client.store.get_gate(release.id, "gate", 1).status == "approved"
    run = h.client.store.latest_step_runs(release.id)["gate"]
    assert run.outputs["approved_by"] == ["sam"]


def test_a_gate_closes_with_its_step_running_again(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moment a gate closes (the release running again), its step is running too (its
    action makes the outcome of the decisions), never still waiting: what any reader of the
    release between the close and the step's end sees."""
    seen: list[tuple[str, str, str]] = []
    close = Store.close_gate

    def closing(store: Store, release_id: str, step_id: str, *args: Any, **kw: Any) -> Any:
        gate = close(store, release_id, step_id, *args, **kw)
        step = store.latest_step_runs(release_id)[step_id]
        seen.append((gate.status, store.get_release(release_id).status, step.status))
        return gate

    monkeypatch.setattr(Store, "close_gate", closing)  # the class every store of the test is
    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    h.client.decide(release.id, "gate", user="sam", decision="approve")
    assert h.wait(release.id).status == "succeeded"
    assert seen == [("approved", "running", "running")]
    assert h.client.store.latest_step_runs(release.id)["gate"].status == "succeeded"


def test_someone_without_the_role_is_refused(h: Harness, tmp_path: Path) -> None:
    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    with pytest.raises(PermissionDenied, match="needs role oncall_sre; fola holds feature_owner"):
        h.client.decide(release.id, "gate", user="fola", decision="approve")
    assert h.client.store.list_decisions(release.id, "gate") == []
    h.client.cancel(release.id, user="casey", reason="test over")


def test_the_starter_cannot_approve_their_own_release(h: Harness, tmp_path: Path) -> None:
    runbook = gate_runbook(
        tmp_path,
        "{id: gate, action: approval, with: {prompt: ok?, roles: [oncall_sre], timeout: 1h}}",
    )
    release = h.start(runbook, user="sam")
    h.wait_for_gate(release.id, "gate")
    with pytest.raises(PermissionDenied, match="separation of duties"):
        h.client.decide(release.id, "gate", user="sam", decision="approve")
    assert h.client.decide(release.id, "gate", user="riley", decision="approve") == "recorded"
    assert h.wait(release.id).status == "succeeded"


def test_the_starter_may_confirm_a_checklist_item(h: Harness, tmp_path: Path) -> None:
    runbook = gate_runbook(
        tmp_path,
        "{id: gate, action: checklist, with: {item: freeze "
        "announced, confirm_by: release_captain}}",
    )
    release = h.start(runbook, user="casey")
    h.wait_for_gate(release.id, "gate")
    assert h.client.decide(release.id, "gate", user="casey", decision="approve") == "recorded"
    assert h.wait(release.id).status == "succeeded"
    assert h.client.store.latest_step_runs(release.id)["gate"].outputs["confirmed_by"] == ["casey"]


def test_a_rejection_fails_the_gate_and_the_release(h: Harness, tmp_path: Path) -> None:
    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    h.client.decide(release.id, "gate", user="sam", decision="reject", comment="error rate up")
    final = h.wait(release.id)
    assert final.status == "failed"
    assert h.statuses(release.id) == {"gate": "failed", "after": "skipped"}
    assert "error rate up" in h.client.store.latest_step_runs(release.id)["gate"].summary
    assert not (h.workdir / "log").exists()
    with pytest.raises(InvalidState, match="already rejected"):
        h.client.decide(release.id, "gate", user="riley", decision="approve")


def test_quorum_needs_distinct_people(h: Harness, tmp_path: Path) -> None:
    runbook = gate_runbook(
        tmp_path,
        "{id: gate, action: approval, with: {prompt: drop "
        "columns?, roles: [feature_owner], quorum: 2}}",
    )
    release = h.start(runbook)
    h.wait_for_gate(release.id, "gate")
    h.client.decide(release.id, "gate", user="fola", decision="approve")
    # the same person again does not count twice
    h.client._engine_client().send(
        step_workflow_id(release.id, 1, "gate"),
        {"decision": "approve", "user": "fola"},
        DECISION_TOPIC,
    )
    assert h.client.store.get_gate(release.id, "gate", 1).status == "waiting"
    h.client.decide(release.id, "gate", user="dev", decision="approve")
    assert h.wait(release.id).status == "succeeded"
    users = sorted(d.user for d in h.client.store.list_decisions(release.id, "gate"))
    assert users == ["dev", "fola"]


def test_a_forged_decision_is_refused_by_the_engine(h: Harness, tmp_path: Path) -> None:
    """A message that skips the client's check (sent straight to the engine) is checked
    again, refused and recorded as refused."""
    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    h.client._engine_client().send(
        step_workflow_id(release.id, 1, "gate"),
        {"decision": "approve", "user": "mallory"},
        DECISION_TOPIC,
    )
    h.client.decide(release.id, "gate", user="sam", decision="approve")
    assert h.wait(release.id).status == "succeeded"
    refused = [
        e for e in h.client.store.list_events(release_id=release.id) if e.kind == "gate.refused"
    ]
    assert len(refused) == 1
    assert refused[0].actor == "mallory"
    assert [d.user for d in h.client.store.list_decisions(release.id, "gate")] == ["sam"]


def test_nobody_deciding_before_the_deadline_fails_the_gate(h: Harness, tmp_path: Path) -> None:
    runbook = gate_runbook(
        tmp_path,
        "{id: gate, action: approval, with: {prompt: ok?, roles: [oncall_sre], timeout: 1s}}",
    )
    release = h.start(runbook)
    final = h.wait(release.id, timeout=30)
    assert final.status == "failed"
    assert h.client.store.get_gate(release.id, "gate", 1).status == "timed_out"
    assert "1s" in h.client.store.latest_step_runs(release.id)["gate"].summary


def test_a_stopping_engine_wakes_a_gates_wait_at_once(
    engine_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's wait (DBOS.recv) is woken by the stop, not left to wait out its slice:
    with a slice of 30 s, the gate's thread still leaves (on the old code it stayed
    in its wait until the slice's end, and a stopping CLI or worker with it). The release
    stays waiting, for the next process to resume."""
    monkeypatch.setattr(durable, "SLICE", 30.0)
    with harness(engine_database_url, tmp_path) as h:
        h.engine.runtime.message_slice = 30.0
        release = h.start(gate_runbook(tmp_path, APPROVAL))
        h.wait_for_gate(release.id, "gate")
        wait_for(dbos_private.receivers_waiting, what="the gate's wait in DBOS.recv")
        h.engine.runtime.stop()  # what a stopping engine does first
        # well before the slice's end (the test's own timeout is 120 s)
        assert h.engine.runtime.wait_idle(timeout=20), "the gate's wait did not leave"
        assert h.client.get(release.id).status == "waiting"


def test_a_stop_between_a_gates_look_and_its_wait_still_ends_the_wait(
    engine_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate looks whether the process is stopping, then waits in DBOS.recv (an hour,
    woken by a decision or a stop). A stop that came between the two woke nobody: the wait
    began after the wake-up, and its thread (not a daemon) then held the process for the
    hour, after the engine had shut down: a ``release resume`` that had printed its answer
    and never exited. The engine's shutdown wakes waits until its workflows have left."""
    import threading

    from dbos import DBOS

    real_recv, real_wake = DBOS.recv, dbos_private.wake_receivers
    held, woken = threading.Event(), threading.Event()
    gate_threads: list[threading.Thread] = []

    def recv(*args: Any, **kwargs: Any) -> Any:
        if not gate_threads:  # the gate's first wait: the stop comes before it begins
            gate_threads.append(threading.current_thread())
            held.set()
            woken.wait(30)
        return real_recv(*args, **kwargs)

    def wake() -> int:
        found = real_wake()
        woken.set()
        return found

    monkeypatch.setattr(DBOS, "recv", staticmethod(recv))
    monkeypatch.setattr(dbos_private, "wake_receivers", wake)
    with harness(engine_database_url, tmp_path) as h:
        release = h.start(gate_runbook(tmp_path, APPROVAL))
        assert held.wait(30), "the gate never waited"
        h.engine.shutdown()
        gate_threads[0].join(timeout=30)
        assert not gate_threads[0].is_alive(), "the gate's wait outlived the engine"
        assert h.client.get(release.id).status == "waiting"  # for the next process


def test_a_gates_wait_records_its_checkpoints_once_not_once_a_slice(
    h: Harness, tmp_path: Path
) -> None:
    """A gate's wait (DBOS.recv, then the clock) is woken by a decision or a stop, so it no
    longer ends every slice to look whether the process is stopping: each of those ends
    recorded three checkpoints (a CLI's engine and the tests' every second, a worker's
    every 5 s: 259,200 for a gate waiting a day in a terminal, replayed one by one by the
    worker that takes the release over). On the old code this gate recorded 6 more in
    the 2.5 s below."""
    from dbos import DBOS

    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    wait_for(dbos_private.receivers_waiting, what="the gate's wait in DBOS.recv")
    gate_workflow = step_workflow_id(release.id, 1, "gate")
    time.sleep(0.5)  # the wait's own first checkpoints (DBOS.recv's timer) are written
    recorded = DBOS.list_workflow_steps(gate_workflow)
    time.sleep(2.5)  # what the wait records meanwhile: nothing
    assert DBOS.list_workflow_steps(gate_workflow) == recorded
    assert h.client.decide(release.id, "gate", user="sam", decision="approve") == "recorded"
    assert h.wait(release.id).status == "succeeded"


def test_a_gates_wait_that_cannot_be_woken_looks_every_slice(
    engine_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the installed DBOS's waits cannot be woken (``dbos_private`` finds no
    ``notifications_map``), the wait looks whether the process is stopping every slice, as
    before: the stop is seen within one (the tests' engine: a CLI's 1 s)."""
    monkeypatch.setattr(dbos_private, "can_wake_receivers", lambda: False)
    monkeypatch.setattr(dbos_private, "wake_receivers", lambda: 0)
    with harness(engine_database_url, tmp_path) as h:
        release = h.start(gate_runbook(tmp_path, APPROVAL))
        h.wait_for_gate(release.id, "gate")
        wait_for(dbos_private.receivers_waiting, what="the gate's wait in DBOS.recv")
        h.engine.runtime.stop()
        assert h.engine.runtime.wait_idle(timeout=20), "the gate's wait did not leave"
        assert h.client.get(release.id).status == "waiting"


def test_a_decision_recorded_before_a_crash_counts_when_its_step_runs_again(
    h: Harness, tmp_path: Path
) -> None:
    """The gate's ``decide`` step recorded sam's approval and its process died before the
    step's checkpoint (a worker killed as sam approved): run again on the same message, it
    gives the same verdict from the recorded decision instead of refusing sam's "second"
    decision, and the gate closes approved. (The release taken over there waited forever.)"""
    from shipcaptain.engine import gates

    release = h.start(gate_runbook(tmp_path, APPROVAL))
    h.wait_for_gate(release.id, "gate")
    message = {"decision": "approve", "user": "sam", "role": None, "comment": "green"}
    first = gates.decide(release.id, 1, "gate", dict(message))  # the execution that died
    again = gates.decide(release.id, 1, "gate", dict(message))  # the step run again
    assert first["accepted"]
    assert again == first
    # the message itself, still waiting for the gate's workflow, is then taken the same way
    h.client._engine_client().send(step_workflow_id(release.id, 1, "gate"), message, DECISION_TOPIC)
    assert h.wait(release.id).status == "succeeded"
    assert [d.user for d in h.client.store.list_decisions(release.id, "gate")] == ["sam"]
    kinds = [e.kind for e in h.client.store.list_events(release_id=release.id)]
    assert "gate.refused" not in kinds
    assert kinds.count("gate.approved") == 1


@pytest.mark.parametrize(
    "engine_database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("went_through", [True, False], ids=["committed", "not-committed"])
def test_a_gate_whose_commit_was_lost_on_its_way_opens_once(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, went_through: bool
) -> None:
    """The connection breaks with the gate's commit on its way (a state database outage, as
    the rehearsal's ``state_db_unreachable`` fault once hit it): the engine looks for the
    gate and writes it again only when it is not there, so it opens once, with one event;
    the step did not fail."""
    import psycopg

    from shipcaptain.engine import gates

    monkeypatch.setattr(gates, "OPEN_PAUSE", 0.01)
    release = h.client.create_release(gate_runbook(tmp_path, APPROVAL), {}, user="casey")
    dialect = h.client.store._engine.dialect  # type: ignore[attr-defined]
    real_commit = dialect.do_commit
    lost: list[bool] = []

    def commit_lost_on_its_way(dbapi_connection: Any) -> None:
        if lost or dbapi_connection.autocommit:  # a read, or the commit after the loss
            real_commit(dbapi_connection)
            return
        lost.append(True)
        real_commit(dbapi_connection) if went_through else dbapi_connection.rollback()
        dbapi_connection.dbapi_connection.close()  # psycopg's, as the server's drop leaves it
        raise psycopg.OperationalError(
            "consuming input failed: server closed the connection unexpectedly"
        )

    monkeypatch.setattr(dialect, "do_commit", commit_lost_on_its_way)
    request = {
        "kind": "approval",
        "prompt": "ship it?",
        "roles": ["oncall_sre"],
        "people": [],
        "quorum": 1,
        "evidence": {},
        "deadline_seconds": 3600,
    }
    deadline = gates.open_gate(release.id, 1, "gate", request)
    assert lost == [True]  # the commit was lost once
    gate = h.client.store.get_gate(release.id, "gate", 1)
    assert gate.status == "waiting"
    assert gate.deadline_at is not None
    assert gate.deadline_at.timestamp() == pytest.approx(deadline)
    opened = [
        e for e in h.client.store.list_events(release_id=release.id) if e.kind.endswith(".opened")
    ]
    assert [e.step_id for e in opened] == ["gate"]
    assert h.statuses(release.id)["gate"] == "waiting"


def test_a_process_with_the_stopped_ones_id_takes_over_without_a_second_execution(
    engine_database_url: str, tmp_path: Path
) -> None:
    """`release resume` in a new terminal runs with the dead terminal's id (``cli-RELEASE``),
    so DBOS's launch hands that process's pending workflows back to its queue and this
    process runs them; the take-over must not resume them once more. It did: a second
    execution started beside the first, the one that lost waited for ever for the other's
    outcome, and the command, its release finished, never exited (seen in the GitHub kill -9
    test). The run is dequeued once: its ``dequeued_at`` does not move after the take-over."""
    from dbos import DBOS

    runbook = gate_runbook(tmp_path, APPROVAL)
    with harness(engine_database_url, tmp_path) as first:
        release = first.start(runbook)
        first.wait_for_gate(release.id, "gate")
    # the first engine is gone, its workflows pending; the same id again (the harness's)
    with harness(engine_database_url, tmp_path) as h:

        def running_again() -> list[Any]:
            found = DBOS.list_workflows(
                workflow_id_prefix=release.id, load_input=False, load_output=False
            )
            return [w for w in found if w.status == "PENDING" and w.dequeued_at]

        wait_for(lambda: len(running_again()) == 2, what="DBOS's recovery of both workflows")
        before = {w.workflow_id: w.dequeued_at for w in running_again()}
        taken = h.engine.take_over(release.id, 1)
        time.sleep(2.5)  # DBOS's queue looks every second: a resumed workflow is taken by then
        assert {w.workflow_id: w.dequeued_at for w in running_again()} == before
        assert taken == []
        assert h.client.decide(release.id, "gate", user="sam", decision="approve") == "recorded"
        assert h.wait(release.id, timeout=30).status == "succeeded"
    assert (tmp_path / "work" / "log").read_text() == "after\n"
