"""How fast the ``metrics`` action notices a bad release, with a 1 s interval.

A real Prometheus (Debian's package) scrapes the sandbox app every second; a release runs
a ``metrics`` step (error ratio below 1 %, measured every second) on the real engine with
a SQLite state database. Once the step measures healthy numbers, the app's error rate is
raised to 20 %. Three moments are taken:

* ``raised``: the app starts answering errors;
* ``crossed``: the first time Prometheus itself (polled every 50 ms by this script) reports
  the error ratio above the threshold;
* ``failed``: the step run's end time, as stored, once it reported failure.

Printed: crossed -> failed (the figure asked for: at most one interval plus a query and the
engine's bookkeeping), and raised -> failed (adds the scrape interval and the rate window).

Run (from the repository root, in the project's virtualenv; needs ``prometheus`` on PATH)::

    python benchmarks/metrics_detection.py
    python benchmarks/metrics_detection.py --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from shipcaptain.client import Client
from shipcaptain.engine.engine import Engine
from shipcaptain.sandbox import prometheus as sandbox_prometheus
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.prometheus import PrometheusServer
from shipcaptain.settings import Settings

THRESHOLD = 0.01
RATIO = 'sum(rate(app_requests_total{code="500"}[3s])) / sum(rate(app_requests_total[3s]))'


def ratio(prom: PrometheusServer) -> float | None:
    body = httpx.get(f"{prom.url}/api/v1/query", params={"query": RATIO}, timeout=5).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def one_run(
    client: Client,
    engine: Engine,
    runbook: Path,
    work: Path,
    app: HealthServer,
    prom: PrometheusServer,
) -> tuple[float, float]:
    app.set_error_rate(0.0)
    while (value := ratio(prom)) is None or value >= THRESHOLD:  # back to healthy
        time.sleep(0.1)
    record = client.create_release(runbook, {}, user="casey", workdir=work)
    engine.start(record.id, 1)
    while not any(  # the analysis is measuring healthy numbers
        e.kind == "step.progress" for e in client.store.list_events(release_id=record.id)
    ):
        time.sleep(0.02)
    raised = time.time()
    app.set_error_rate(0.2)
    crossed = None
    while True:
        if crossed is None and (value := ratio(prom)) is not None and value > THRESHOLD:
            crossed = time.time()
        run = client.store.latest_step_runs(record.id).get("analysis")
        if run is not None and run.status == "failed" and run.ended_at is not None:
            failed = run.ended_at.timestamp()
            break
        time.sleep(0.05)
    if crossed is None or crossed > failed:  # failed between two polls of this script
        crossed = failed
    client.wait_until_finished(record.id, timeout=30)
    return failed - crossed, failed - raised


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not sandbox_prometheus.available():
        print("prometheus is not installed (apt-get install prometheus): nothing measured")
        return 1
    root = Path(tempfile.mkdtemp(prefix="shipcaptain-bench-metrics-"))
    work = root / "work"
    work.mkdir()
    settings = Settings(
        database_url=f"sqlite:///{root / 'state.db'}", data_dir=root / "data", poll_interval=0.05
    )
    with (
        HealthServer(build="abc1234") as app,
        PrometheusServer([f"127.0.0.1:{app.port}"]) as prom,
        Client(settings) as client,
    ):
        prom.wait_for(RATIO, within=60)
        runbook = root / "runbook.yaml"
        runbook.write_text(
            textwrap.dedent(f"""\
            name: bench
            phases:
              - id: post_deploy
                steps:
                  - id: analysis
                    action: metrics
                    with:
                      prometheus: {prom.url}
                      queries: [{{name: error_rate, query: '{RATIO}', below: {THRESHOLD}}}]
                      count: 600
                      interval: 1s
            """)
        )
        engine = Engine(settings, executor_id="bench", store=client.store, workdir=work)
        engine.launch()
        try:
            results = [one_run(client, engine, runbook, work, app, prom) for _ in range(args.runs)]
        finally:
            engine.shutdown()
    detect = [r[0] for r in results]
    total = [r[1] for r in results]
    print(f"metrics detection, interval 1s, scrape 1s, rate window 3s, {args.runs} runs")
    print(
        f"  threshold crossed -> step failed: median {statistics.median(detect):.2f} s, "
        f"max {max(detect):.2f} s, min {min(detect):.2f} s"
    )
    print(
        f"  error rate raised -> step failed: median {statistics.median(total):.2f} s, "
        f"max {max(total):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
