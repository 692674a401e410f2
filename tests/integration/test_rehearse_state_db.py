"""The verdict of the rehearsal's ``state_db_unreachable`` fault on a release's records: it
is caught only when no finished step ran again after the outage, no step failed on it and
the audit chain verifies; otherwise the row says missed, and why. (The whole fault, with
the proxy cut for 10 s under a running release, is tests/acceptance/test_rehearse.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from helpers.databases import tamper_with_events
from shipcaptain.sandbox.rehearse_faults import FAULTS
from shipcaptain.store import ReleaseRecord, StepRunRecord, Store

CUT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _release(store: Store) -> str:
    record = ReleaseRecord(
        runbook_name="valuecanvas",
        runbook_digest="sha256:abc",
        runbook_text="name: valuecanvas\n",
        environment="production",
        started_by="ann",
        params={"version": "1.4.2"},
    )
    return store.create_release(record).id


def _run(store: Store, release_id: str, step_id: str, attempt: int, **kw: Any) -> None:
    store.upsert_step_run(
        StepRunRecord(release_id=release_id, step_id=step_id, run=1, attempt=attempt, **kw)
    )


def _attempt(store: Store, release_id: str) -> Any:
    """What of a rehearsal's Attempt the fault's check uses: the world's client (its store,
    the audit check), the release, the moment of the cut and the notes."""
    notes: list[str] = []
    client = SimpleNamespace(store=store, verify_audit=store.verify_events)
    return SimpleNamespace(
        world=SimpleNamespace(client=client),
        release_id=release_id,
        state_proxy=None,
        injected_at=CUT,
        saved={},
        notes=notes,
        note=notes.append,
    )


def _before(store: Store, release_id: str) -> None:
    """``expand`` finished before the cut; ``metrics`` was running when it came."""
    minute = timedelta(minutes=1)
    _run(store, release_id, "expand", 1, status="succeeded",
         started_at=CUT - 2 * minute, ended_at=CUT - minute)  # fmt: skip
    _run(store, release_id, "metrics", 1, status="running", started_at=CUT - minute)


def test_a_release_that_rode_the_outage_out_is_caught(store: Store) -> None:
    release_id = _release(store)
    _before(store, release_id)
    _run(store, release_id, "metrics", 1, status="succeeded",
         started_at=CUT - timedelta(minutes=1), ended_at=CUT + timedelta(seconds=30))  # fmt: skip
    for n in range(3):
        store.append_event(release_id, None, "test", "ann", f"event {n}")
    a = _attempt(store, release_id)
    FAULTS["state_db_unreachable"].heal(a)
    assert "missed" not in a.saved
    assert a.notes == ["after the outage: no step ran twice; the audit chain verifies (3 events)"]


def test_a_finished_step_run_again_or_a_step_failed_on_the_outage_is_missed(
    store: Store,
) -> None:
    release_id = _release(store)
    _before(store, release_id)
    after = CUT + timedelta(seconds=12)
    _run(store, release_id, "expand", 2, status="succeeded", started_at=after, ended_at=after)
    _run(store, release_id, "metrics", 1, status="failed", started_at=CUT, ended_at=after,
         summary="state database postgresql://x failed while recording a step run")  # fmt: skip
    a = _attempt(store, release_id)
    FAULTS["state_db_unreachable"].heal(a)
    assert a.saved["missed"] == (
        "finished steps ran again after the outage: expand; steps failed on the outage: metrics"
    )


def test_a_broken_audit_chain_after_the_outage_is_missed(store: Store, store_url: str) -> None:
    release_id = _release(store)
    _before(store, release_id)
    for n in range(3):
        store.append_event(release_id, None, "test", "ann", f"event {n}")
    tamper_with_events(store_url, "UPDATE sc_events SET message = 'nothing to see' WHERE seq = 2")
    a = _attempt(store, release_id)
    FAULTS["state_db_unreachable"].heal(a)
    assert a.saved["missed"].startswith("the audit chain breaks at event 2: "), a.saved
