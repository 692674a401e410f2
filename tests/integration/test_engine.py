"""The durable engine on a real database (SQLite and PostgreSQL): DAG order and
parallelism, failure policies, retries, timeouts, durable waits, cancel and resume."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.engine import steps


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_short_branch_is_not_held_back_by_a_slow_sibling(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: parallel
        phases:
          - id: build
            steps:
              - {id: slow, action: shell, with: {command: "sleep 3; echo slow >> log"}}
              - {id: a, action: shell, with: {command: "echo a >> log"}}
              - {id: b, action: shell, needs: [a], with: {command: "echo b >> log"}}
          - id: after
            steps:
              - {id: last, action: shell, with: {command: "echo last >> log"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    runs = h.client.store.latest_step_runs(release.id)
    assert runs["b"].ended_at is not None
    assert runs["slow"].ended_at is not None
    assert runs["b"].ended_at < runs["slow"].ended_at  # b did not wait for slow
    assert runs["last"].started_at >= runs["slow"].ended_at  # the phase barrier holds
    assert lines(h.workdir / "log") == ["a", "b", "slow", "last"]


def test_a_halting_failure_skips_what_needs_it(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: halting
        phases:
          - id: one
            steps:
              - {id: broken, action: shell, with: {command: "echo boom >&2; exit 3"}}
              - {id: needs_broken, action: shell, needs: [broken], with: {command: "touch ran"}}
    """,
    )
    release = h.start(runbook)
    final = h.wait(release.id)
    assert final.status == "failed"
    assert "broken" in (final.reason or "")
    statuses = h.statuses(release.id)
    assert statuses == {"broken": "failed", "needs_broken": "skipped"}
    assert h.client.store.latest_step_runs(release.id)["broken"].summary.startswith("exit 3")
    assert not (h.workdir / "ran").exists()


def test_an_action_s_own_error_fails_the_step_with_its_message_and_no_traceback(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An action that raises shipcaptain's ActionError explains itself: the step fails with
    that message, and the log shows no traceback (that is for --debug)."""
    runbook = write_runbook(
        tmp_path,
        """
        name: tokenless
        phases:
          - id: one
            steps:
              - {id: ci, action: ci_green, with: {repo: acme/app, token_env: SC_NO_SUCH_TOKEN}}
    """,
    )
    with caplog.at_level(logging.INFO):
        release = h.start(runbook)
        assert h.wait(release.id).status == "failed"
    summary = h.client.store.latest_step_runs(release.id)["ci"].summary
    assert summary == (
        "no GitHub token: set the environment variable SC_NO_SUCH_TOKEN "
        "(or name another one with token_env)"
    )
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]


def test_continue_policy_lets_the_release_go_on(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: tolerant
        phases:
          - id: one
            steps:
              - {id: lint, action: shell, on_failure: continue, with: {command: "exit 1"}}
              - {id: after_lint, action: shell, needs: [lint], with: {command: "touch ran"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    assert h.statuses(release.id) == {"lint": "failed", "after_lint": "succeeded"}
    assert (h.workdir / "ran").exists()


def test_retries_with_backoff_until_success(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: flaky
        phases:
          - id: one
            steps:
              - id: flaky
                action: shell
                retry: {attempts: 4, backoff: 0.2, factor: 2}
                with: {command: "echo try >> tries; test $(wc -l < tries) -ge 3"}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    attempts = [r for r in h.client.store.list_step_runs(release.id) if r.step_id == "flaky"]
    assert [r.attempt for r in sorted(attempts, key=lambda r: r.attempt)] == [1, 2, 3]
    assert [r.status for r in sorted(attempts, key=lambda r: r.attempt)] == [
        "failed",
        "failed",
        "succeeded",
    ]
    assert len(lines(h.workdir / "tries")) == 3
    gap = attempts[2].started_at - attempts[1].ended_at  # type: ignore[operator]
    assert gap.total_seconds() >= 0.4  # second retry waited backoff * factor


def test_a_step_that_overruns_its_timeout_times_out(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: slow
        phases:
          - id: one
            steps:
              - {id: hang, action: shell, timeout: 1s, with: {command: "sleep 30"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id, timeout=30).status == "failed"
    rec = h.client.store.latest_step_runs(release.id)["hang"]
    assert rec.status == "timed_out"
    assert "timed out" in rec.summary


def test_rollback_policy_undoes_and_runs_the_rollback_plan(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: rolls-back
        phases:
          - id: one
            steps:
              - id: deploy
                action: shell
                with: {command: "echo deployed >> log"}
                undo: {action: shell, with: {command: "echo undone >> log"}}
              - id: smoke
                action: shell
                needs: [deploy]
                on_failure: rollback
                with: {command: "exit 1"}
        rollback:
          - {id: announce, action: shell, with: {command: "echo announced >> log"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "rolled_back"
    assert lines(h.workdir / "log") == ["deployed", "undone", "announced"]
    statuses = h.statuses(release.id)
    assert statuses["rollback/undo-deploy"] == "succeeded"
    assert statuses["rollback/announce"] == "succeeded"


def test_durable_wait_step(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: waits
        phases:
          - id: one
            steps:
              - {id: pause, action: wait, with: {duration: 1s, reason: let caches warm}}
              - {id: after, action: shell, needs: [pause], with: {command: "true"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    store = h.client.store
    runs = store.latest_step_runs(release.id)
    waited = runs["pause"].ended_at - runs["pause"].started_at  # type: ignore[operator]
    assert waited.total_seconds() >= 1.0
    # run inside the release's workflow, its try's end was written with its result
    assert (runs["pause"].status, runs["pause"].summary) == ("succeeded", "waited 1s")
    assert store.step_result(release.id, 1, "pause")["status"] == "succeeded"  # type: ignore[index]

    def kinds() -> list[str]:
        return [e.kind for e in store.list_events(release.id) if e.step_id == "pause"]

    assert kinds().count("step.started") == 1
    assert kinds().count("step.succeeded") == 1
    # the try's start again (a replay after a crash): the first start's time, no new event
    from shipcaptain.engine import steps

    again = steps.begin_durable_try(release.id, 1, "pause", 1)
    assert again == runs["pause"].started_at
    assert kinds().count("step.started") == 1


def test_cancel_marks_the_release_before_it_cancels_its_workflow(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step inside the release workflow is fenced off by the release's recorded status:
    cancelling the workflow first left a moment in which a step could still start. And a
    run that reaches its end in that moment leaves the release cancelled."""
    runbook = write_runbook(
        tmp_path,
        """
        name: cancelled
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - {id: first, action: shell, with: {command: "true"}}
              - id: go
                action: approval
                needs: [first]
                with: {prompt: go on?, roles: [oncall_sre], timeout: 1h}
    """,
    )
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go")
    dbos = h.client._engine_client()
    cancel_workflow = dbos.cancel_workflow
    seen: list[str] = []

    def cancelling(workflow_id: str, **kw: object) -> None:
        seen.append(h.client.store.get_release(release.id).status)
        cancel_workflow(workflow_id, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(dbos, "cancel_workflow", cancelling)
    assert h.client.cancel(release.id, user="casey", reason="not today").status == "cancelled"
    assert seen == ["cancelled"]

    # the run's own end, had it got there in between: the release stays cancelled
    steps.mark_release(release.id, 1, "succeeded", "all 2 steps done")
    assert h.client.get(release.id).status == "cancelled"
    kinds = [e.kind for e in h.client.store.list_events(release.id)]
    assert "release.succeeded" not in kinds


def test_cancel_then_resume_skips_finished_steps(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: resumable
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - {id: first, action: shell, with: {command: "echo first >> log"}}
              - id: go
                action: approval
                needs: [first]
                with: {prompt: go on?, roles: [oncall_sre], timeout: 1h}
              - {id: last, action: shell, needs: [go], with: {command: "echo last >> log"}}
    """,
    )
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go")
    cancelled = h.client.cancel(release.id, user="casey", reason="wrong version")
    assert cancelled.status == "cancelled"
    assert h.statuses(release.id)["go"] == "cancelled"
    assert h.client.store.get_gate(release.id, "go", 1).status == "cancelled"

    action = h.client.prepare_resume(release.id, user="casey")
    assert (action.kind, action.run) == ("new_run", 2)
    resumed = h.client.get(release.id)
    assert (resumed.status, resumed.run, resumed.ended_at) == ("pending", 2, None)
    h.engine.start(release.id, 2)
    h.wait_for_gate(release.id, "go")
    assert h.client.decide(release.id, "go", user="sam", decision="approve") == "recorded"
    final = h.wait(release.id)
    assert final.status == "succeeded"
    assert lines(h.workdir / "log") == ["first", "last"]  # first ran once, in run 1
    first = h.client.store.latest_step_runs(release.id)["first"]
    assert (first.run, first.already_done) == (2, True)
    assert "done in run 1" in first.summary


def test_a_try_recorded_as_done_before_its_checkpoint_is_not_run_again(
    h: Harness, tmp_path: Path
) -> None:
    """A crash can land after a try's result reached the store and before the engine's
    checkpoint of it; the try that runs again takes the recorded result."""
    from datetime import UTC, datetime

    from shipcaptain.engine import steps
    from shipcaptain.store import StepRunRecord

    effects = tmp_path / "effects"
    runbook = write_runbook(
        tmp_path,
        f"""\
        name: once
        phases:
          - id: only
            steps:
              - {{id: a, action: shell, with: {{command: "echo a >> {effects}"}}}}
        """,
    )
    release = h.client.create_release(runbook, {}, user="casey", workdir=h.workdir)
    now = datetime.now(UTC)
    h.client.store.upsert_step_run(
        StepRunRecord(
            release_id=release.id,
            step_id="a",
            run=1,
            attempt=1,
            status="succeeded",
            started_at=now,
            ended_at=now,
            summary="exit 0",
            detail="a",
            outputs={"sha": "abc"},
            already_done=False,
        )
    )
    again = steps._attempt(
        release.id, 1, "a", "shell", {"command": f"echo a >> {effects}"}, 1, 10.0,
        str(h.workdir), {}, {},
    )  # fmt: skip
    assert again["status"] == "succeeded"
    assert again["outputs"] == {"sha": "abc"}
    assert again["summary"] == "exit 0"
    assert not effects.exists()


def test_an_engine_shutdown_does_not_join_the_threads_that_sleep_and_end_on_their_own(
    engine_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DBOS's SQLite notification listener sleeps its whole polling interval between two
    looks, and its notifier (which flushes coalesced notifications, PostgreSQL only) its
    coalescing interval, a second here (DBOS's default, 0.01 s, woke it 100 times a
    second): the engine's shutdown takes them off the threads DBOS.destroy joins, and they
    end by themselves once DBOS is destroyed. PostgreSQL's listener (ended by closing its
    connection) is joined as before."""
    from dbos import DBOS, _dbos

    from shipcaptain.engine import dbos_private

    destroy = DBOS.destroy
    joined: list[tuple[bool, bool]] = []

    def destroy_seen(**kwargs: Any) -> None:
        dbos = _dbos._dbos_global_instance
        threads = dbos._background_threads
        left = notifier is None or notifier not in threads
        joined.append((listener in threads if listener is not None else True, not left))
        destroy(**kwargs)

    with harness(engine_database_url, tmp_path) as running:
        runbook = write_runbook(
            tmp_path,
            """
            name: listened
            phases:
              - id: one
                steps:
                  - {id: a, action: shell, with: {command: "true"}}
            """,
        )
        assert running.wait(running.start(runbook).id).status == "succeeded"
        found = dbos_private._polling_listener()
        listener = found[1] if found is not None else None
        assert (listener is not None) == engine_database_url.startswith("sqlite")
        sys_db = _dbos._dbos_global_instance._sys_db_field
        assert sys_db._notification_coalesce_sec == dbos_private.NOTIFY_COALESCE
        notifiers = [
            t
            for t in _dbos._dbos_global_instance._background_threads
            if getattr(t, "_target", None) == sys_db.run_notifier
        ]
        # a SQLite system database has nothing to notify: its notifier thread ended at once
        assert len(notifiers) == (1 if engine_database_url.startswith("postgresql") else 0)
        notifier = notifiers[0] if notifiers else None
        monkeypatch.setattr(DBOS, "destroy", destroy_seen)
    assert joined == [(engine_database_url.startswith("postgresql"), False)]
    for thread in (listener, notifier):
        if thread is not None:
            thread.join(timeout=30)
            assert not thread.is_alive()
