"""Steps that run inside their release's workflow (no DBOS workflow of their own), on a
real database (SQLite and PostgreSQL): which steps do, how one is fenced off when the
release is no longer this process's, and a run of an older engine refused clearly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from dbos import DBOS

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.engine import durable, steps, workflows
from shipcaptain.engine.ids import QUEUE_NAME, dbos_url, release_workflow_id
from shipcaptain.errors import InvalidState
from shipcaptain.store import ReleaseRecord, StepRunRecord

#: one step that leaves a trace in the work directory when it runs
ONE_STEP = """
name: one
phases:
  - id: one
    steps:
      - {id: a, action: shell, with: {command: "touch ran"}}
"""


@pytest.fixture
def running(engine_database_url: str, tmp_path: Path) -> Iterator[tuple[Harness, ReleaseRecord]]:
    """An engine, and a release of :data:`ONE_STEP` that no engine started."""
    with harness(engine_database_url, tmp_path) as h:
        runbook = write_runbook(tmp_path, ONE_STEP)
        yield h, h.client.create_release(runbook, {}, user="casey", workdir=h.workdir)


def test_plain_steps_run_inside_the_release_workflow_and_a_durable_one_has_its_own(
    running: tuple[Harness, ReleaseRecord], tmp_path: Path
) -> None:
    h = running[0]
    runbook = write_runbook(
        tmp_path,
        """
        name: mixed
        phases:
          - id: one
            steps:
              - {id: a, action: shell, with: {command: "echo a >> log"}}
              - {id: pause, action: wait, needs: [a], with: {duration: 0.2s}}
              - {id: b, action: shell, needs: [pause], with: {command: "echo b >> log"}}
              - id: flaky
                action: shell
                needs: [b]
                retry: {attempts: 2, backoff: 0.1s}
                with: {command: "echo flaky >> log"}
              - id: maybe
                action: shell
                needs: [flaky]
                when: "release.id == 'no-such-release'"
                with: {command: "echo maybe >> log"}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    assert (h.workdir / "log").read_text().split() == ["a", "b", "flaky"]
    own = {
        wf.workflow_id
        for wf in DBOS.list_workflows(
            workflow_id_prefix=release.id + "/", load_input=False, load_output=False
        )
    }
    # a step with retries (durable waits between tries) and one with a `when` (its try is
    # checkpointed apart from its result) keep theirs; a wait runs inside (next test)
    assert own == {f"{release.id}/flaky", f"{release.id}/maybe"}
    assert h.statuses(release.id) == {
        "a": "succeeded",
        "pause": "succeeded",
        "b": "succeeded",
        "flaky": "succeeded",
        "maybe": "skipped",
    }


def test_an_inline_step_is_fenced_off_once_the_release_is_not_this_process_s(
    running: tuple[Harness, ReleaseRecord],
) -> None:
    """As DBOS fences off a workflow resumed elsewhere: a step of a release taken over by
    another process, or cancelled, runs nothing and records nothing."""
    h, release = running
    store = h.client.store
    me = h.engine.executor_id

    store.update_release(release.id, status="running", executor_id="another-worker")
    left = workflows._step_workflow_body(release.id, 1, "a", [], owner=me)
    assert left.get("left") is True
    assert store.step_result(release.id, 1, "a") is None
    assert store.list_step_runs(release.id) == []
    assert not (h.workdir / "ran").exists()

    store.update_release(release.id, status="cancelled", executor_id=me)
    assert workflows._step_workflow_body(release.id, 1, "a", [], owner=me).get("left") is True
    assert store.step_result(release.id, 1, "a") is None
    assert not (h.workdir / "ran").exists()

    store.update_release(release.id, status="running")
    done = workflows._step_workflow_body(release.id, 1, "a", [], owner=me)
    assert done["status"] == "succeeded"
    assert store.step_result(release.id, 1, "a")["status"] == "succeeded"
    assert (h.workdir / "ran").exists()


def test_a_wait_inside_the_release_workflow_waits_only_the_rest_after_a_crash(
    running: tuple[Harness, ReleaseRecord], tmp_path: Path
) -> None:
    """A ``wait`` runs inside its release's workflow, with no checkpoint of its clock: its
    sleep ends at its try's recorded start plus its duration, so the release workflow's
    replay after a crash (or in the process that took it over) waits only the rest. A
    durable action that does more than sleep (a gate) keeps a workflow of its own."""
    h = running[0]
    runbook = write_runbook(
        tmp_path,
        """
        name: soak
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - {id: soak, action: wait, with: {duration: 1h}}
              - id: go
                action: approval
                needs: [soak]
                with: {prompt: go on?, roles: [oncall_sre], timeout: 1h}
    """,
    )
    release = h.client.create_release(runbook, {}, user="casey", workdir=h.workdir)
    rb = h.engine.runtime.runbook(release.runbook_text, release.runbook_digest)
    assert workflows.inline(rb, "soak")
    assert not workflows.inline(rb, "go")
    store = h.client.store
    me = h.engine.executor_id
    # what a run that crashed in its wait left: the try began an hour and a second ago
    began = datetime.now(UTC) - timedelta(hours=1, seconds=1)
    store.update_release(release.id, status="running", executor_id=me)
    store.upsert_step_run(
        StepRunRecord(
            release_id=release.id,
            step_id="soak",
            run=1,
            attempt=1,
            status="running",
            started_at=began,
        )
    )
    result = workflows._step_workflow_body(release.id, 1, "soak", [], owner=me)
    assert result["status"] == "succeeded"
    soak = store.latest_step_runs(release.id)["soak"]
    assert soak.status == "succeeded"
    assert soak.started_at is not None
    assert abs((soak.started_at - began).total_seconds()) < 0.01  # the first start kept


def test_a_release_without_comms_templates_checkpoints_no_announcement(
    running: tuple[Harness, ReleaseRecord],
) -> None:
    """The release's own start and complete messages are sent only from a template of its
    runbook: without one the release workflow makes no checkpoint for them."""
    h, release = running
    h.engine.start(release.id, 1)
    assert h.wait(release.id).status == "succeeded"
    DBOS.retrieve_workflow(release.id).get_result()  # its last checkpoints recorded too
    names = [s["function_name"] for s in DBOS.list_workflow_steps(release.id)]
    assert "shipcaptain.mark_release" in names
    assert "shipcaptain.announce" not in names


def test_a_result_found_in_the_store_leaves_no_wake_up_entry(
    running: tuple[Harness, ReleaseRecord],
) -> None:
    """A wait registers a wake-up per step before it looks in the store; the entries of
    results it found there (recorded earlier, or by another process) are removed too, not
    only those a recording in this process woke: a worker kept them for its lifetime."""
    h, release = running
    h.engine.start(release.id, 1)
    assert h.wait(release.id).status == "succeeded"
    rt = h.engine.runtime
    for needs in (["a"], ["a", "a"]):  # one result (one read), several (the run's read)
        found = durable.wait_step_results(release.id, 1, needs)
        assert found["a"]["status"] == "succeeded"
        assert not [key for key in rt._result_signals if key[0] == release.id]


def test_taking_over_a_run_of_an_older_engine_is_refused_clearly(
    running: tuple[Harness, ReleaseRecord], caplog: pytest.LogCaptureFixture
) -> None:
    """A release that the previous engine version (whose release workflow started every
    step as a child workflow) left running: this version cannot replay its run, so taking
    it over is refused with what to do instead, and a worker restarted under the same id
    (DBOS leaves the run alone there) says so."""
    h, release = running
    # queued as the previous version queued it: no worker of this version takes it
    h.client._engine_client().enqueue(
        {
            "workflow_name": "shipcaptain.release",
            "queue_name": QUEUE_NAME,
            "workflow_id": release_workflow_id(release.id, 1),
            "app_version": "shipcaptain-engine-4",
        },
        release.id,
        1,
    )
    h.client.store.update_release(release.id, status="running", executor_id="gone-worker")

    with pytest.raises(InvalidState) as refused:
        h.client.prepare_resume(release.id, user="casey")
    message = str(refused.value)
    assert "started by the engine version shipcaptain-engine-4" in message
    assert f"shipcaptain release cancel {release.id}" in message
    # nothing recorded as taken over, and the release is left as it was
    assert [e.kind for e in h.client.store.list_events(release.id)].count("release.taken_over") == 0
    assert h.client.get(release.id).status == "running"

    # the run left pending on this process by its previous version
    url = dbos_url(h.settings.state_url)
    table = "workflow_status" if url.startswith("sqlite") else "dbos.workflow_status"
    db = sqlalchemy.create_engine(url)
    try:
        with db.begin() as conn:
            conn.execute(
                sqlalchemy.text(
                    f"UPDATE {table} SET status = 'PENDING', executor_id = :me "
                    "WHERE workflow_uuid = :id"
                ),
                {"me": h.engine.executor_id, "id": release.id},
            )
    finally:
        db.dispose()
    with caplog.at_level(logging.WARNING, logger="shipcaptain.engine"):
        h.engine._say_older_runs()
    assert f"release {release.id} is not run here: run 1 of release" in caplog.text
    assert "started by the engine version shipcaptain-engine-4" in caplog.text


def test_the_release_workflow_s_prologue_is_one_checkpoint(
    running: tuple[Harness, ReleaseRecord],
) -> None:
    """Loading the release, the worker's start check and the run's start are one step of
    DBOS's (``begin_release``), which also sets who runs the release: the release's only
    ``mark_release`` is its end."""
    h, release = running
    h.engine.start(release.id, 1)
    assert h.wait(release.id).status == "succeeded"
    DBOS.retrieve_workflow(release.id).get_result()
    names = [s["function_name"] for s in DBOS.list_workflow_steps(release.id)]
    assert names[0] == "shipcaptain.begin_release"
    assert names.count("shipcaptain.begin_release") == 1
    assert names.count("shipcaptain.mark_release") == 1  # the end
    assert "shipcaptain.load_release" not in names
    assert "shipcaptain.check_start" not in names
    done = h.client.store.get_release(release.id)
    assert done.executor_id == "test-engine"
    kinds = [e.kind for e in h.client.store.list_events(release_id=release.id)]
    assert kinds.count("release.running") == 1


def test_a_recorded_begin_leaves_setting_the_runner_to_the_workflow(
    running: tuple[Harness, ReleaseRecord],
) -> None:
    """``begun_here`` is True only right after ``begin_release`` ran in this process (a
    replay gets the recorded result, and the workflow then sets who runs the release), and
    only once; the step sets the runner with the running status, in one write."""
    h, release = running
    h.client.store.update_release(release.id, executor_id="a-gone-process")
    begun = steps.begin_release(release.id, 1)  # outside a workflow: runs as a function
    assert begun["refusal"] is None
    assert begun["marked"] is True
    assert begun["info"]["digest"] == release.runbook_digest
    marked = h.client.store.get_release(release.id)
    assert (marked.status, marked.executor_id) == ("running", "test-engine")
    assert steps.begun_here(release.id, 1) is True
    assert steps.begun_here(release.id, 1) is False  # a replay of the workflow


def test_an_exclusive_run_is_marked_after_its_lock(
    engine_database_url: str, tmp_path: Path
) -> None:
    """A run in an exclusive environment waits for its lock before it starts: the step
    loads and checks it only, and the workflow marks it running once it holds the lock."""
    with harness(engine_database_url, tmp_path) as h:
        runbook = write_runbook(
            tmp_path,
            """
            name: exclusive
            environment: production
            phases:
              - id: one
                steps:
                  - {id: a, action: shell, with: {command: "true"}}
            """,
        )
        release = h.client.create_release(runbook, {}, user="casey", workdir=h.workdir)
        begun = steps.begin_release(release.id, 1)
        assert begun["refusal"] is None
        assert begun["marked"] is False
        assert h.client.store.get_release(release.id).status == "pending"
        assert steps.begun_here(release.id, 1) is False
        h.engine.start(release.id, 1)
        assert h.wait(release.id).status == "succeeded"
        DBOS.retrieve_workflow(release.id).get_result()
        names = [s["function_name"] for s in DBOS.list_workflow_steps(release.id)]
        assert names.count("shipcaptain.mark_release") == 2  # the start, after the lock
