"""A ValueCanvas release as the dashboard shows it mid-rollout or after a failure, written
straight into the state database (the release page only reads what the engine stored):
the runbook of the sandbox, 26 steps in 6 phases, the finished steps with outputs as the
real actions record them (URLs of the CI run, the commit, the image, the dashboard), the
failed or running step with a long log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shipcaptain.client import Client
from shipcaptain.records import ReleaseRecord, utcnow
from shipcaptain.store import StepRunRecord

VALUECANVAS = Path(__file__).parents[2] / "src/shipcaptain/sandbox/assets/valuecanvas.yaml"
#: what a finished step of each action put in its outputs (the shape the actions declare)
OUTPUTS = {
    "ci_green": {
        "run_url": "https://github.com/ValueCanvas/ValueCanvas/actions/runs/9120331",
        "conclusion": "success",
        "commit": "https://github.com/ValueCanvas/ValueCanvas/commit/4be1c09a77f3",
    },
    "git_tag": {"tag": "v1.4.0", "sha": "4be1c09a77f3d2e1"},
    "github_workflow": {
        "run_url": "https://github.com/ValueCanvas/ValueCanvas/actions/runs/9120412",
        "image": "ghcr.io/valuecanvas/api@sha256:5f1d2c0e9a",
    },
    "migrate": {
        "applied": [
            {"file": "0042_add_canvas_owner.sql", "kind": "expand", "took_ms": 812},
            {"file": "0043_index_owner.sql", "kind": "expand", "took_ms": 2140},
        ]
    },
    "k8s_rollout": {"deployment": "api", "replicas": 6, "revision": 41},
    "metrics": {  # as the metrics action keeps them: 3 rounds of 3 queries
        "measurements": [
            {"round": r, "at": 1764800000.0 + 60 * r, "name": name, **measured}
            for r in (1, 2, 3)
            for name, measured in (
                ("error_rate", {"value": 0.002 * r, "verdict": "passed"}),
                (
                    "p95_latency",
                    {"value": None, "verdict": "inconclusive", "reason": "no data (empty result)"}
                    if r == 2
                    else {"value": 0.3, "verdict": "passed"},
                ),
                ("queue_depth", {"value": 40 + r, "verdict": "passed"}),
            )
        ],
        "failed": {"error_rate": 0, "p95_latency": 0, "queue_depth": 0},
        "inconclusive": {"error_rate": 0, "p95_latency": 1, "queue_depth": 0},
        "decisions": [],
        "grafana_url": "https://grafana.valuecanvas.com/d/prod-overview?from=1&to=2",
    },
}


def valuecanvas_release(
    client: Client, *, stop_at: str = "rollout_web", status: str = "failed", user: str = "casey"
) -> ReleaseRecord:
    """A ValueCanvas release whose steps before ``stop_at`` succeeded and ``stop_at`` is
    ``status`` (failed, or running mid-rollout); the release is failed or running."""
    record = client.create_release(
        VALUECANVAS, {"version": "1.4.0", "environment": "production"}, user=user
    )
    view = client.show(record.id, events=False)
    store = client.store
    began = utcnow() - timedelta(minutes=40)
    at = began
    for n, step in enumerate(view.steps):
        if step.phase == "rollback":
            continue
        if step.id == stop_at:
            lines = [f"{at:%H:%M:%S} web: {i % 6} of 6 pods updated" for i in range(1, 180)]
            lines.insert(120, f"{at:%H:%M:%S} pod web-7d9c-x2: ImagePullBackOff")
            store.upsert_step_run(
                StepRunRecord(
                    release_id=record.id,
                    step_id=step.id,
                    run=1,
                    attempt=1,
                    status=status,  # type: ignore[arg-type]
                    started_at=at,
                    ended_at=at + timedelta(minutes=5) if status == "failed" else None,
                    summary="rollout of web did not complete: ImagePullBackOff"
                    if status == "failed"
                    else "3 of 6 pods updated",
                    detail="\n".join(lines),
                )
            )
            break
        store.upsert_step_run(
            StepRunRecord(
                release_id=record.id,
                step_id=step.id,
                run=1,
                attempt=1,
                status="succeeded",
                started_at=at,
                ended_at=at + timedelta(seconds=20 + n),
                summary=f"{step.action}: done",
                detail=f"{step.id} step log\nline two of {step.id}",
                outputs=OUTPUTS.get(step.action, {"ok": True}),
            )
        )
        at += timedelta(seconds=30 + n)
    ended = at + timedelta(minutes=5) if status == "failed" else None
    store.update_release(
        record.id,
        status="failed" if status == "failed" else "running",
        started_at=began,
        ended_at=ended,
        reason=f"step {stop_at} failed" if status == "failed" else None,
    )
    return store.get_release(record.id)


def finished_releases(
    client: Client, runbook: Path, count: int, *, user: str = "casey", **params: str
) -> list[ReleaseRecord]:
    """``count`` releases of ``runbook`` that succeeded (as the engine leaves them), oldest
    first, versions 1.0.0, 1.0.1, ..."""
    out = []
    for n in range(count):
        record = client.create_release(runbook, {**params, "version": f"1.0.{n}"}, user=user)
        now = utcnow()
        out.append(
            client.store.update_release(record.id, status="succeeded", started_at=now, ended_at=now)
        )
    return out
