"""``shipcaptain rehearse``: the ValueCanvas runbook catches every fault the sandbox injects;
a weakened copy (no metrics step, no replica guard) misses the faults those nets are for,
and the scorecard names them with the check that would have caught each. A runbook that
would reach an endpoint outside the sandbox is refused before anything starts.

The real CLI runs as a subprocess; one sandbox world serves every fault of a rehearsal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from helpers.processes import STACKS_ON_ABORT
from shipcaptain.cli.main import cli
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.sandbox.rehearse import _faults as chosen_faults
from shipcaptain.sandbox.rehearse import check_endpoints
from shipcaptain.sandbox.rehearse_endpoints import outside_endpoints
from shipcaptain.sandbox.rehearse_faults import FAULTS

ASSET = Path(__file__).resolve().parents[2] / "src/shipcaptain/sandbox/assets/valuecanvas.yaml"
CLI = [sys.executable, "-m", "shipcaptain.cli.main"]
#: seconds: a rehearsal of a group of faults is one world and a release a fault
TIMEOUT = 480


def rehearse(tmp_path: Path, runbook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process group: on a timeout (its own, or pytest-timeout's that
    stops the test), Ctrl-C lets it stop the sandbox's servers before the group is killed
    (and a server left by a killed CLI is stopped by its watchdog). The caller's own webhook
    is never used by a rehearsal (nothing listens there: a message to it would fail and
    show)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env["SHIPCAPTAIN_DATA_DIR"] = str(tmp_path / "own-data")
    env["SHIPCAPTAIN_WEBHOOK_URL"] = "http://127.0.0.1:9/the-teams-own-webhook"
    env.update(STACKS_ON_ABORT)
    command = [*CLI, "rehearse", str(runbook), "--report-dir", str(tmp_path / "report"), *args]
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT - 40)
    except BaseException as stopped:  # too slow, or the test stopped (pytest-timeout, Ctrl-C)
        overran = isinstance(stopped, subprocess.TimeoutExpired)
        # too slow: every thread's stack of the CLI (SIGABRT with STACKS_ON_ABORT); stopped:
        # Ctrl-C lets it stop its servers. Then the group is killed (the servers' watchdogs
        # do the rest)
        if overran:
            proc.send_signal(signal.SIGABRT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if not overran:
            raise
        log = tmp_path / "report" / "rehearsal.log"
        logged = log.read_text(encoding="utf-8")[-6000:] if log.exists() else "(no log)"
        raise AssertionError(
            f"rehearse did not finish:\n{out[-3000:]}\n{err[-12000:]}\nits log:\n{logged}"
        ) from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def edited(tmp_path: Path, name: str, change: Any) -> Path:
    """A copy of the ValueCanvas runbook, changed by ``change(document)``."""
    yaml = YAML()
    document = yaml.load(ASSET.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / name
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return path


def step(document: Any, step_id: str) -> Any:
    return next(s for p in document["phases"] for s in p["steps"] if s["id"] == step_id)


def weaken(document: Any) -> None:
    """No metrics step, no replica guard (neither the guard nor the step's own check); and
    its kube context named as in another team's kubeconfig (mapped onto the sandbox too)."""
    for item in [*(s for p in document["phases"] for s in p["steps"]), *document["rollback"]]:
        if str(item["action"]).startswith("k8s"):
            item["with"]["context"] = "prod-eu-1"
    for phase in document["phases"]:
        phase["steps"] = [s for s in phase["steps"] if s["id"] != "metrics_analysis"]
    step(document, "completion_announced")["needs"] = ["rls_logs_checked"]
    contract = step(document, "contract_migrations")
    contract["guards"] = ["app_rollout_complete"]
    del contract["with"]["replicas"]
    del document["guards"]["read_replicas_healthy"]


def report_of(tmp_path: Path, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert (tmp_path / "report" / "report.md").is_file(), done.stdout[-3000:] + done.stderr
    report: dict[str, Any] = json.loads((tmp_path / "report" / "report.json").read_text())
    assert json.loads(done.stdout) == report
    return report


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["fault"]: row for row in report["faults"]}


def test_a_step_reaching_outside_the_sandbox_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    def reach_out(document: Any) -> None:
        step(document, "smoke_ui_health")["with"]["url"] = "https://status.valuecanvas.com/health"
        step(document, "policy_lint")["with"]["command"] = (
            "curl -fsS https://api.valuecanvas.com/policies && npm run lint:policies"
        )

    runbook = edited(tmp_path, "reaching.yaml", reach_out)
    done = rehearse(tmp_path, runbook, "--fault", "ci_red")
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert "would reach endpoints outside the sandbox" in err
    assert "reaching.yaml:" in err
    assert "with.url: step smoke_ui_health" in err
    assert "status.valuecanvas.com" in err
    assert "use {{ app_url }}" in err
    assert "with.command: step policy_lint would reach api.valuecanvas.com" in err
    assert not (tmp_path / "report").exists()  # nothing started, nothing written


def test_endpoints_in_parameters_and_the_environment_are_found() -> None:
    loaded = load_runbook_file(ASSET)
    # the runbook's own defaults (a real app and Prometheus) are mapped onto the sandbox
    assert check_endpoints(loaded, {}) == []
    # a value the sandbox does not map is not
    given = {"app_url": "https://app.valuecanvas.com"}  # mapped: the sandbox's wins
    assert check_endpoints(loaded, given) == []
    values = {k: p.default for k, p in loaded.runbook.parameters.items()}
    found = outside_endpoints(loaded, values, environ={})
    assert {(e.step, e.host) for e in found} == {
        ("step smoke_ui_health", "app.valuecanvas.com"),
        ("step metrics_analysis", "prometheus.monitoring"),
        ("rollback step rollback_health", "app.valuecanvas.com"),
    }
    # LOGS_DATABASE_URL is set by the sandbox; a variable it does not set is the caller's
    sandboxed = {**values, "app_url": "http://127.0.0.1:1", "prometheus_url": "http://127.0.0.1:2"}
    assert outside_endpoints(loaded, sandboxed, environ={"LOGS_DATABASE_URL": "x"}) == []


def test_hostnames_in_env_connection_strings_and_the_callers_variables_are_found(
    tmp_path: Path,
) -> None:
    runbook = tmp_path / "small.yaml"
    runbook.write_text(
        textwrap.dedent(
            """
            name: small
            phases:
              - id: check
                steps:
                  - id: report
                    action: shell
                    with:
                      command: ./report.sh "$ANALYTICS_URL" "$DATABASE_URL"
                      env:
                        API_HOST: api.valuecanvas.com:443
                        LOCAL: 127.0.0.1:8080
                  - id: rows
                    action: sql_check
                    with:
                      database_url_env: WAREHOUSE_DSN
                      query: select 1
            """
        )
    )
    loaded = load_runbook_file(runbook)
    environ = {
        "ANALYTICS_URL": "https://analytics.valuecanvas.com/ingest",
        "WAREHOUSE_DSN": "host=warehouse.internal dbname=dw",
        "DATABASE_URL": "postgresql://prod-db.valuecanvas.com/app",  # the sandbox sets it
    }
    found = {
        (e.step, e.host, e.location.split(": ")[-1]): e
        for e in outside_endpoints(loaded, {}, environ)
    }
    assert set(found) == {
        ("step report", "api.valuecanvas.com", "phases[0].steps[0].with.env.API_HOST"),
        ("step report", "analytics.valuecanvas.com", "phases[0].steps[0].with.command"),
        ("step rows", "warehouse.internal", "phases[0].steps[1].with.database_url_env"),
    }
    analytics = found[
        ("step report", "analytics.valuecanvas.com", "phases[0].steps[0].with.command")
    ]
    assert "the sandbox does not set ANALYTICS_URL" in analytics.how
    assert str(analytics).startswith(f"{runbook}:")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--fault", "meteor_strike"], "--fault meteor_strike: no such fault; faults: ci_red, "),
        ([], "name a fault (--fault NAME) or --all-faults"),
    ],
)
def test_unknown_faults_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    """In this process (the CLI's own error handling, no sandbox: nothing starts)."""
    monkeypatch.setenv("SHIPCAPTAIN_DATA_DIR", str(tmp_path / "own-data"))
    report = tmp_path / "report"
    done = CliRunner().invoke(cli, ["rehearse", str(ASSET), "--report-dir", str(report), *args])
    assert done.exit_code == 2, done.output
    assert said in done.output
    assert not report.exists()


def _halted(row: dict[str, Any]) -> None:
    """A fault found before anything changed: the release halted, nothing to roll back."""
    assert row["runbook_did"] == ["halted"]
    assert row["rollback"] is None


def _halted_by(step_id: str) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        assert row["caught_by"] == step_id
        _halted(row)

    return check


def _rolled_back(row: dict[str, Any]) -> None:
    """The bad build is gone: the images, the health and the build served are the old ones."""
    rollback = row["rollback"]
    assert rollback["restored"], rollback
    assert rollback["build_after"] == rollback["build_before"] != ""
    assert any(m["kind"] == "comms.rollback" for m in row["messages"])


def _rollout_fault(row: dict[str, Any]) -> None:
    """A fault of the rollout, caught by its step for the image that was broken."""
    assert row["caught_by"] == "rollout_api"
    assert row["runbook_did"] == ["rolled back"]
    _rolled_back(row)


def _stuck_rollout(row: dict[str, Any]) -> None:
    assert "ProgressDeadlineExceeded: no progress for 3s" in row["how"]
    _rollout_fault(row)


def _replica_lag(row: dict[str, Any]) -> None:
    assert row["caught_by"] == "contract_migrations"
    assert row["release_status"] == "succeeded"  # held, then went on
    assert row["runbook_did"][0].startswith("held the contract phase")


def _contract_migration_fails(row: dict[str, Any]) -> None:
    assert row["caught_by"] == "contract_migrations"
    assert row["runbook_did"] == ["halted"]
    assert "nothing half-applied: canvases.owner_team is still there" in row["notes"]


def _slack_down(row: dict[str, Any]) -> None:
    assert row["caught_by"] == "completion_announced"
    assert row["runbook_did"][0] == "asked the captain to post the message by hand"
    assert row["messages"]
    assert {m["status"] for m in row["messages"]} == {"failed"}


def _prometheus_unreachable(row: dict[str, Any]) -> None:
    assert row["caught_by"] == "metrics_analysis"
    assert row["runbook_did"] == ["asked the on-call SRE (metrics inconclusive)", "completed"]


def _bad_metrics(row: dict[str, Any]) -> None:
    """error_rate and latency: the analysis rolled back and paged a P1 through PagerDuty."""
    assert row["caught_by"] == "metrics_analysis"
    assert row["runbook_did"] == ["rolled back", "paged"]
    assert row["incidents"]
    assert row["incidents"][0]["severity"] == "P1"
    assert row["incidents"][0]["acknowledge_by"] < row["incidents"][0]["mitigate_by"]
    # the P1 paged the on-call SRE through the PagerDuty double
    assert {"channel": "pagerduty", "kind": "page", "status": "sent"}.items() <= next(
        p for p in row["pages"] if p["channel"] == "pagerduty"
    ).items()
    _rolled_back(row)


def _worker_kill(row: dict[str, Any]) -> None:
    """kill -9 of the engine in the metrics step: another process took the release over."""
    assert row["caught_by"] == "metrics_analysis"  # the step the engine was killed in
    assert row["release_status"] == "succeeded"
    assert "took over the release" in row["how"]


def _state_db_unreachable(row: dict[str, Any]) -> None:
    """The rehearsal's state is on a throwaway PostgreSQL server behind a proxy, cut for
    10 s while the metrics step runs: the engine, the follower and the people answering
    gates wait it out; the release succeeds, no step runs twice, the audit chain verifies."""
    assert row["release_status"] == "succeeded"
    assert row["caught_by"] == "metrics_analysis"  # the step the outage hit
    assert row["runbook_did"] == ["rode out the outage", "completed"]
    refused = re.search(r"rode out 10 s without its state database \((\d+) connections", row["how"])
    assert refused is not None, row["how"]
    assert int(refused[1]) > 0  # the release's processes did try, and could not connect
    assert row["time_to_detect_s"] is not None
    assert row["time_to_detect_s"] >= 10
    assert any("no step ran twice; the audit chain verifies" in n for n in row["notes"]), row


#: what the ValueCanvas runbook does about each fault of the sandbox
CAUGHT_AS_IT_SHOULD: dict[str, Callable[[dict[str, Any]], None]] = {
    "ci_red": _halted_by("ci_green"),
    "stale_backup": _halted_by("backup_recent"),
    "late_commit": _halted_by("freeze_announced"),
    "bad_image": _rollout_fault,
    "crash_loop": _rollout_fault,
    "stuck_rollout": _stuck_rollout,
    "replica_lag": _replica_lag,
    "contract_migration_fails": _contract_migration_fails,
    "prometheus_unreachable": _prometheus_unreachable,
    "worker_kill": _worker_kill,
    "state_db_unreachable": _state_db_unreachable,
    "slack_down": _slack_down,
    "error_rate": _bad_metrics,
    "latency": _bad_metrics,
}

#: Every fault of the sandbox, in groups: one rehearsal (one world, each fault one release in
#: it) a group, so the suite's processes take them side by side; one rehearsal of all
#: fourteen took about 210 s in one process. Each group still has several faults in one world
#: (the world put back between faults); together they are every fault (checked below).
FAULT_GROUPS = [
    pytest.param(
        ("ci_red", "stale_backup", "late_commit", "bad_image", "crash_loop", "stuck_rollout"),
        id="gates-and-rollouts",
    ),
    pytest.param(
        ("replica_lag", "contract_migration_fails", "slack_down"), id="contract-and-comms"
    ),
    pytest.param(("prometheus_unreachable", "error_rate", "latency"), id="metrics"),
    pytest.param(("worker_kill", "state_db_unreachable"), id="engine", marks=pytest.mark.postgres),
]


def test_the_fault_groups_are_every_fault_once_and_all_faults_chooses_them_all() -> None:
    grouped = [name for group in FAULT_GROUPS for name in group.values[0]]  # type: ignore[union-attr]
    assert sorted(grouped) == sorted(FAULTS) == sorted(CAUGHT_AS_IT_SHOULD)
    assert len(grouped) == len(set(grouped))
    assert [f.name for f in chosen_faults((), True)] == list(FAULTS)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("faults", FAULT_GROUPS)
def test_the_valuecanvas_runbook_catches_every_fault(
    tmp_path: Path, faults: tuple[str, ...]
) -> None:
    done = rehearse(tmp_path, ASSET, *(f"--fault={name}" for name in faults), "--json")
    report = report_of(tmp_path, done)
    assert done.returncode == 0, done.stderr[-3000:]
    by = rows(report)
    assert set(by) == set(faults)
    assert {r["verdict"] for r in by.values()} == {"caught"}, report
    assert report["missed"] == []
    for name, row in by.items():
        CAUGHT_AS_IT_SHOULD[name](row)
        assert all(m["channel"] != "webhook" for m in row["messages"])
        assert row["time_to_detect_s"] is not None
        assert row["time_to_detect_s"] >= 0
        assert any(Path(p).is_file() for p in row["evidence"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"{len(faults)} of {len(faults)} faults caught, 0 missed" in markdown
    assert report["not_done"] == {}
    if "state_db_unreachable" in faults:
        log = (tmp_path / "report" / "rehearsal.log").read_text()
        assert "state database postgresql://postgres@127.0.0.1:" in log
        assert "Faults this rehearsal does not inject yet" not in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_weakened_runbook_misses_the_faults_its_missing_checks_are_for(
    tmp_path: Path,
) -> None:
    runbook = edited(tmp_path, "weakened.yaml", weaken)
    done = rehearse(
        tmp_path, runbook, "--fault", "ci_red", "--fault", "replica_lag", "--fault", "error_rate"
    )
    assert done.returncode == 10, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    by = rows(report)
    assert report["missed"] == ["replica_lag", "error_rate"]
    assert by["ci_red"]["verdict"] == "caught"
    assert by["replica_lag"]["verdict"] == "missed"
    assert "read_replicas_healthy" in by["replica_lag"]["would_catch"]
    assert by["error_rate"]["verdict"] == "missed"
    assert by["error_rate"]["release_status"] == "succeeded"  # the bad build stayed
    log = (tmp_path / "report" / "rehearsal.log").read_text()
    assert "kube context prod-eu-1: the sandbox's Kubernetes API double" in log
    assert "[apply_manifests] applied 11 objects" in log
    assert "`metrics` step" in by["error_rate"]["would_catch"]
    markdown = done.stdout
    assert "1 of 3 faults caught, 2 missed" in markdown
    assert "## Missed faults: the check that would have caught each" in markdown
    assert "- **error_rate** (missed): a `metrics` step after the rollout" in markdown
