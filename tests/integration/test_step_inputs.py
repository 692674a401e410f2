"""An action's ``inputs``: the finished steps' outputs, read when the action first looks
at them (``LazyInputs``), as a step's start read them before (every step's newest try),
less the step's own tries in its run (they began after that read)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipcaptain.actions.registry import registry
from shipcaptain.engine.runtime import Runtime, set_runtime
from shipcaptain.engine.steps import LazyInputs, known_steps
from shipcaptain.records import ReleaseRecord, StepRunRecord
from shipcaptain.store import Store


@pytest.fixture
def engine_store(store: Store, tmp_path: Path) -> Iterator[Store]:
    set_runtime(Runtime(store=store, registry=registry, executor_id="w", workdir=tmp_path))
    try:
        yield store
    finally:
        set_runtime(None)


def _try(
    release_id: str, step_id: str, run: int, attempt: int, status: str, **kw: object
) -> StepRunRecord:
    return StepRunRecord(
        release_id=release_id,
        step_id=step_id,
        run=run,
        attempt=attempt,
        status=status,
        **kw,  # type: ignore[arg-type]
    )


def test_inputs_are_read_when_first_looked_at(engine_store: Store) -> None:
    rel = engine_store.create_release(
        ReleaseRecord(
            runbook_name="rb",
            runbook_digest="sha256:abc",
            runbook_text="name: rb\n",
            environment="production",
            started_by="ann",
        )
    )
    engine_store.upsert_step_run(
        _try(rel.id, "build", 1, 1, "succeeded", summary="built", outputs={"tag": "v1"})
    )
    engine_store.upsert_step_run(_try(rel.id, "deploy", 1, 1, "failed", summary="no"))
    inputs = LazyInputs(rel.id, "deploy", 2)
    # written after the step's start, before the action looks: seen (read when looked at)
    engine_store.upsert_step_run(
        _try(rel.id, "lint", 2, 1, "succeeded", summary="clean", outputs={"n": 0})
    )
    # the step's own try in its run: not an input (the start's read came before it)
    engine_store.upsert_step_run(_try(rel.id, "deploy", 2, 1, "running"))
    expected = {
        "build": {"status": "succeeded", "summary": "built", "outputs": {"tag": "v1"}},
        "deploy": {"status": "failed", "summary": "no", "outputs": {}},
        "lint": {"status": "succeeded", "summary": "clean", "outputs": {"n": 0}},
    }
    assert dict(inputs) == expected
    assert inputs["build"]["outputs"] == {"tag": "v1"}
    assert len(inputs) == 3
    # read once: a try written after the first look is not seen
    engine_store.upsert_step_run(_try(rel.id, "smoke", 2, 1, "succeeded"))
    assert "smoke" not in inputs
    # what a step's start reads when it needs every step (its own run's tries included)
    assert known_steps(rel.id)["deploy"]["status"] == "running"
    assert set(known_steps(rel.id)) == {"build", "deploy", "lint", "smoke"}
