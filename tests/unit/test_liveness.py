"""Whether anybody runs a release (what every view of a release says), from the release
and the processes' heartbeats: the takeover window, live workers, queued releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipcaptain.liveness import engine_health
from shipcaptain.records import EventRecord, ReleaseRecord, WorkerRecord

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
WINDOW = 10.0


def release(status: str = "waiting", executor: str | None = "w1") -> ReleaseRecord:
    return ReleaseRecord(
        id="rel-1",
        runbook_name="api",
        runbook_digest="d",
        runbook_text="",
        environment="production",
        started_by="casey",
        status=status,  # type: ignore[arg-type]
        executor_id=executor,
    )


def worker(name: str, silent: float, kind: str = "worker") -> WorkerRecord:
    # on another host: only the heartbeat tells (no look at its pid)
    beat = NOW - timedelta(seconds=silent)
    return WorkerRecord(
        executor_id=name,
        pid=4242,
        hostname="elsewhere.invalid",
        kind=kind,
        started_at=beat - timedelta(hours=1),
        heartbeat_at=beat,
    )


def test_a_heartbeat_within_the_window_is_running() -> None:
    health = engine_health(release(), [worker("w1", WINDOW - 0.1)], now=NOW, takeover_after=WINDOW)
    assert (health.state, health.message, health.live_workers) == ("running", "", ["w1"])


def test_silent_for_the_window_with_no_worker_left_says_resume_or_start_one() -> None:
    health = engine_health(release(), [worker("w1", WINDOW)], now=NOW, takeover_after=WINDOW)
    assert health.state == "stopped"
    assert health.last_heartbeat_at == NOW - timedelta(seconds=WINDOW)
    assert health.message == (
        "nobody runs this release: its process w1 has sent no heartbeat since 11:59:50Z and "
        "has stopped; no worker is alive to take it over: start one with `shipcaptain "
        "worker`, or run it here with `shipcaptain release resume rel-1`"
    )


def test_silent_with_a_live_worker_says_who_takes_it_over() -> None:
    found = [worker("w1", 30), worker("w2", 1), worker("cli-x", 1, kind="engine")]
    health = engine_health(release(), found, now=NOW, takeover_after=WINDOW)
    assert health.state == "stopped"
    assert health.live_workers == ["w2"]  # a CLI's engine takes nothing over
    assert "a live worker (w2) takes it over within 10s of that heartbeat" in health.message


def test_a_process_never_seen_has_stopped() -> None:
    health = engine_health(release(executor="gone"), [], now=NOW, takeover_after=WINDOW)
    assert health.state == "stopped"
    assert "has sent no heartbeat ever" in health.message


@pytest.mark.parametrize(("workers", "says"), [([], "no worker is alive"), (["w2"], "")])
def test_a_queued_release_needs_a_live_worker(workers: list[str], says: str) -> None:
    found = [worker(w, 1) for w in workers]
    health = engine_health(release("pending", None), found, now=NOW, takeover_after=WINDOW)
    assert health.state == "queued"
    assert says in health.message
    assert bool(health.message) == (not workers)


def test_a_finished_release_needs_nobody() -> None:
    health = engine_health(
        release("succeeded"), [worker("w1", 999)], now=NOW, takeover_after=WINDOW
    )
    assert (health.state, health.message) == ("finished", "")


def taken_over_event(by: str = "w2", gone: str = "w1") -> EventRecord:
    return EventRecord(
        seq=7,
        at=NOW - timedelta(seconds=3),
        release_id="rel-1",
        step_id=None,
        kind="release.taken_over",
        actor="engine",
        message=f"{by} took over the release",
        data={"run": 1, "from": gone, "to": by},
        prev_hash="p",
        hash="h",
    )


def test_taken_over_and_waiting_for_a_slot_is_queued_not_running() -> None:
    """The claimer (alive, and the release's executor) has no room yet: queued."""
    found = [worker("w1", 30), worker("w2", 1)]
    health = engine_health(
        release(executor="w2"), found, now=NOW, takeover_after=WINDOW, taken_over=taken_over_event()
    )
    assert (health.state, health.executor_id) == ("queued", "w2")
    assert health.message == (
        "queued, waiting for a worker slot: w2 took it over from the stopped process w1 at "
        "11:59:57Z and put it back on the release queue; the first live worker (w2) with "
        "room takes it; each runs up to --concurrency releases at once"
    )


def test_taken_over_and_queued_with_no_worker_left_says_resume_or_start_one() -> None:
    found = [worker("w1", 60), worker("w2", 30)]
    health = engine_health(
        release(executor="w2"), found, now=NOW, takeover_after=WINDOW, taken_over=taken_over_event()
    )
    assert health.state == "queued"
    assert health.message.endswith(
        "no worker is alive to take it: start one with `shipcaptain worker`, or run it here "
        "with `shipcaptain release resume rel-1`"
    ), health.message


def test_a_finished_release_is_finished_whatever_its_takeover() -> None:
    health = engine_health(
        release("succeeded", executor="w2"),
        [worker("w2", 1)],
        now=NOW,
        takeover_after=WINDOW,
        taken_over=taken_over_event(),
    )
    assert (health.state, health.message) == ("finished", "")


def test_handed_to_the_workers_by_its_terminal_is_queued_for_them() -> None:
    """`release start` handed its release to the workers at a gate: queued, by nobody yet
    (the terminal's process is gone from the workers)."""
    handed = taken_over_event(by="the release queue", gone="cli-rel-1")
    handed = EventRecord(**{**handed.__dict__, "data": {**handed.data, "handed": True}})
    health = engine_health(
        release(executor="cli-rel-1"),
        [worker("w2", 1)],
        now=NOW,
        takeover_after=WINDOW,
        taken_over=handed,
    )
    assert (health.state, health.executor_id) == ("queued", None)
    assert health.message == (
        "queued, waiting for a worker slot: its process cli-rel-1 handed it to the workers at "
        "11:59:57Z while it waited for people; the first live worker (w2) with room takes it; "
        "each runs up to --concurrency releases at once"
    )
