"""Many releases at once on real worker processes: throughput, engine cost, memory, takeover.

Each release has 20 steps in four parallel chains of five; every fifth step is a durable
``wait`` (a timer), the others are no-op shell commands. The releases go to
``staging`` (no environment lock), are queued all at once, and run in separate
``shipcaptain worker`` processes:

* sqlite:     one worker, SQLite state file;
* scaling:    one, two and four workers on a throwaway PostgreSQL database each, every
              worker taking at most ``--concurrency`` releases at once (the setting's
              default, 8): how much adding a worker adds;
* takeover:   two workers on a throwaway PostgreSQL database; once every release has
              started, one worker is killed with SIGKILL and the other takes over.

In sqlite and takeover, each worker's concurrency is its share of the releases (so that
all are in flight at once).

Printed per scenario: releases finished per minute (from the first queued to the last
finished), the workers' CPU milliseconds per step (user + system, read from /proc: the
engine's own cost, the commands are child processes), each worker's peak memory (VmHWM),
whether any release was lost, and for the kill: seconds from the dead worker's last
heartbeat to the first takeover and to the first step that ran again on the survivor.

Targets (from the issue): 200 releases in flight on one worker with none lost; takeover
within 15 s of the last heartbeat.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/scale.py                      # 200 releases, every scenario
    python benchmarks/scale.py --releases 50 --scenarios sqlite
    python benchmarks/scale.py --releases 64 --wait 5 --scenarios scaling --own-postgres
    python benchmarks/scale.py --scenarios scaling --rounds 3 --baseline-src /tmp/base/src
    python benchmarks/scale.py --scenarios scaling --workers 1 --anchors 2000

With ``--anchors N``, the anchor file holds N anchors before the first release (a
long-lived team's, one a release): what a release's end costs as the file grows.

With ``--rounds`` (more than one) or ``--baseline-src``, every round runs each source in a
process of its own (the baseline's first), prints its report, and the medians of the
rounds follow, figure by figure, this checkout's beside the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_team import bench_token, put_bench_team
from step_overhead import postgres_database, postgres_unreachable

from shipcaptain.client import FINISHED, Client
from shipcaptain.records import ReleaseFilter
from shipcaptain.settings import Settings
from shipcaptain.store import Store

STEPS = 20
CHAINS = 4
TAKEOVER_TARGET_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def runbook_text(wait_seconds: float) -> str:
    lines = ["name: scale", 'environment: "{{ environment }}"', "parameters:"]
    lines += ["  environment: {default: staging}", "phases:"]
    lines += ["  - id: all", "    steps:"]
    per_chain = STEPS // CHAINS
    for c in range(CHAINS):
        for i in range(per_chain):
            sid = f"c{c}s{i}"
            needs = f", needs: [c{c}s{i - 1}]" if i else ""
            if i == per_chain // 2:
                timer = f"{{duration: {wait_seconds}s}}"
                lines.append(f"      - {{id: {sid}, action: wait{needs}, with: {timer}}}")
            else:
                lines.append(
                    f"      - {{id: {sid}, action: shell{needs}, with: {{command: 'true'}}}}"
                )
    return "\n".join(lines) + "\n"


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def workers(names: list[str], env: dict[str, str], cwd: Path) -> Iterator[list[Worker]]:
    """The worker processes, each writing its stderr to ``<cwd>/<name>.log``."""
    started = []
    for name in names:
        with (cwd / f"{name}.log").open("wb") as log:
            command = [sys.executable, "-m", "shipcaptain", "worker", "--id", name]
            proc = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
            )
        started.append(Worker(name, proc))
    try:
        yield started
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in started:
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit(f"gave up: {what} within {timeout:.0f}s")


def worker_token(store: Store) -> str:
    """The token the workers run with: a one-person team whose member may run workers."""
    put_bench_team(store, roles=("worker", "release_captain"), permissions={})
    return bench_token(store, "bench", "scale benchmark")


def seed_anchors(client: Client, count: int) -> None:
    """An anchor file of ``count`` anchors already, as a long-lived team's has (one a
    release): checkpoints of the log's head as it is now, signed with the audit key the
    workers use, each naming an earlier release. 0: the file is left as it is."""
    if not count:
        return
    from shipcaptain.audit.anchors import sign_checkpoint

    key = client.audit_key()
    first, head = client.store.get_event(1), client.store.last_event()
    assert first is not None  # the team and the token were recorded
    assert head is not None
    lines = [
        sign_checkpoint(
            key, log=first.hash, size=head.seq, head=head.hash, release=f"earlier-{n}", run=1
        ).to_line()
        for n in range(count)
    ]
    path = client.settings.anchor_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def launched(cwd: Path, names: list[str]) -> bool:
    """Whether every worker has launched its engine (it says so on stderr once it runs)."""
    return all(
        (cwd / f"{name}.log").exists() and b" running on " in (cwd / f"{name}.log").read_bytes()
        for name in names
    )


def queue_releases(
    client: Client, runbook: Path, count: int, workdir: Path
) -> tuple[list[str], list[float]]:
    """Queue ``count`` releases; their ids and the seconds each took to queue."""
    ids, took = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        record = client.create_release(runbook, {}, user="bench", workdir=workdir)
        client.enqueue(record.id, 1)
        took.append(time.perf_counter() - t0)
        ids.append(record.id)
    return ids, took


def unfinished(store: Store, ids: list[str]) -> int:
    return sum(
        1
        for r in store.list_releases(ReleaseFilter(limit=len(ids) + 10))
        if r.status not in FINISHED
    )


def scenario(
    url: str,
    count: int,
    names: list[str],
    kill: bool,
    wait_s: float,
    concurrency: int | None = None,
    anchors: int = 0,
) -> dict[str, float]:
    """Run one scenario and print its figures; returns them, for the medians of rounds.
    ``concurrency``: releases each worker runs at once (None: its share of them all);
    ``anchors``: the anchors in the anchor file before the first release."""
    with tempfile.TemporaryDirectory(prefix="sc-scale-") as tmp:
        work = Path(tmp)
        runbook = work / "runbook.yaml"
        runbook.write_text(runbook_text(wait_s))
        env = {
            **os.environ,
            "SHIPCAPTAIN_DATABASE_URL": url,
            "SHIPCAPTAIN_DATA_DIR": str(work / "data"),
            "SHIPCAPTAIN_WORKER_CONCURRENCY": str(concurrency or -(-count // len(names))),
            "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "1",
            "SHIPCAPTAIN_TAKEOVER_AFTER": "10",
        }
        client = Client(Settings(database_url=url, data_dir=work / "data"))
        client.store.migrate()
        env["SHIPCAPTAIN_TOKEN"] = worker_token(client.store)
        seed_anchors(client, anchors)
        with workers(names, env, work) as running:
            # a worker is listed as soon as it claims its id, before it imports and launches
            # its engine: its CPU is counted from the moment it runs releases
            wait_until(lambda: launched(work, names), 60, "workers up")
            cpu0 = {w.name: w.cpu_seconds() for w in running}
            t0 = time.monotonic()
            ids, took = queue_releases(client, runbook, count, work)
            queued_s = time.monotonic() - t0
            takeover, to_takeover = "", 0.0
            if kill:

                def busiest() -> Worker | None:
                    load = {w.name: len(client.store.releases_run_by(w.name)) for w in running}
                    name = max(load, key=lambda n: load[n])
                    return next(w for w in running if w.name == name) if load[name] else None

                wait_until(lambda: busiest() is not None, 120, "a worker running releases")
                victim = busiest() or running[0]
                victims = [r.id for r in client.store.releases_run_by(victim.name)]
                victim_peak = victim.peak_mb()
                victim_cpu = victim.cpu_seconds() - cpu0[victim.name]
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait(timeout=10)
                takeover, to_takeover = measure_takeover(client.store, victim.name, victims)
            wait_until(lambda: unfinished(client.store, ids) == 0, 1800, "every release finished")
            elapsed = time.monotonic() - t0
            records = [client.store.get_release(i) for i in ids]
            lost = [r.id for r in records if r.status != "succeeded"]
            cpu = {
                w.name: (w.cpu_seconds() - cpu0[w.name]) if w.proc.poll() is None else victim_cpu
                for w in running
            }
            peaks = {w.name: w.peak_mb() if w.proc.poll() is None else victim_peak for w in running}
        client.close()
    steps = count * STEPS
    each = f", up to {concurrency} releases each" if concurrency else ""
    print(
        f"  {count} releases x {STEPS} steps ({count * CHAINS} timers of {wait_s:g}s) on "
        f"{len(names)} worker(s){each}; queued in {queued_s:.1f}s, all finished in "
        f"{elapsed:.1f}s"
    )
    each_ms = sorted(t * 1000 for t in took)
    print(
        f"  queueing a release while the workers run: median {statistics.median(each_ms):.0f} ms, "
        f"min {each_ms[0]:.0f} ms, max {each_ms[-1]:.0f} ms (first {took[0] * 1000:.0f} ms)"
    )
    print(f"  releases finished per minute: {count / elapsed * 60:.0f}")
    print(
        f"  worker CPU per step: {sum(cpu.values()) / steps * 1000:.1f} ms "
        f"({', '.join(f'{n} {s:.1f}s' for n, s in cpu.items())})"
    )
    print(f"  peak memory per worker: {', '.join(f'{n} {mb:.0f} MB' for n, mb in peaks.items())}")
    print(f"  lost releases: {len(lost)}" + (f" ({', '.join(lost[:5])})" if lost else ""))
    if takeover:
        print(takeover)
    figures = {
        "releases finished per minute": count / elapsed * 60,
        "worker CPU per step (ms)": sum(cpu.values()) / steps * 1000,
        "queueing a release, median (ms)": statistics.median(each_ms),
        "peak memory of a worker (MB)": max(peaks.values()),
        "lost releases": float(len(lost)),
    }
    if takeover:
        figures["takeover after the last heartbeat (s)"] = to_takeover
    return figures


def measure_takeover(store: Store, victim: str, victims: list[str]) -> tuple[str, float]:
    """What the takeover took, as a line to print, and its seconds from the dead worker's
    last heartbeat to the first takeover."""
    last_beat = next(w.heartbeat_at for w in store.list_workers() if w.executor_id == victim)

    def taken() -> bool:
        return any(e.kind == "release.taken_over" for r in victims for e in store.list_events(r))

    wait_until(taken, 120, "a takeover")
    events = [e for r in victims for e in store.list_events(r)]
    first_takeover = min(e.at for e in events if e.kind == "release.taken_over")

    def moved_on() -> bool:
        return any(
            s.started_at is not None and s.started_at > first_takeover
            for r in victims
            for s in store.list_step_runs(r)
        )

    wait_until(moved_on, 120, "a step after the takeover")
    first_step = min(
        s.started_at
        for r in victims
        for s in store.list_step_runs(r)
        if s.started_at is not None and s.started_at > first_takeover
    )
    to_takeover = (first_takeover - last_beat).total_seconds()
    to_step = (first_step - last_beat).total_seconds()
    verdict = "meets" if to_takeover < TAKEOVER_TARGET_S else "MISSES"
    line = (
        f"  kill -9 of {victim} running {len(victims)} releases: first takeover "
        f"{to_takeover:.1f}s after its last heartbeat, first step moving on after "
        f"{to_step:.1f}s ({verdict} the target of < {TAKEOVER_TARGET_S:g}s)"
    )
    return line, to_takeover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--wait", type=float, default=2.0, help="seconds of each timer step")
    parser.add_argument(
        "--scenarios",
        default="sqlite,scaling,takeover",
        help="comma-separated, of: sqlite, scaling, takeover",
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts of the scaling runs")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="releases per worker in the scaling runs"
    )
    parser.add_argument(
        "--own-postgres",
        action="store_true",
        help="run the PostgreSQL scenarios on a throwaway server of their own (max_connections "
        "200: each worker holds about 20), not on SHIPCAPTAIN_TEST_POSTGRES_URL's",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run every scenario with the shipcaptain sources in this directory (another "
        "checkout's src/), in turns with these (once each a round), for a baseline from "
        "the same run",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds, each a run of every scenario (the baseline's first with --baseline-src); "
        "each round is printed, then the medians",
    )
    parser.add_argument(
        "--anchors",
        type=int,
        default=0,
        help="anchors in the anchor file before the first release (a long-lived team's: one "
        "a release); each release's end anchors the log after them",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # for rounds
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.baseline_src is not None or args.rounds > 1:
        return in_rounds(args, sys.argv[1:] if argv is None else argv)
    if args.own_postgres:
        from shipcaptain.sandbox.postgres import PostgresServer

        with PostgresServer(options="-c max_connections=200") as pg:
            os.environ["SHIPCAPTAIN_TEST_POSTGRES_URL"] = pg.url
            return run(args)
    return run(args)


#: the line a run started by :func:`in_rounds` ends with: its figures, as JSON
FIGURES = "figures: "


def in_rounds(args: argparse.Namespace, argv: list[str]) -> int:
    """``--rounds`` rounds, each a run of the baseline's sources (with ``--baseline-src``)
    then one of these, every run a process of its own whose workers inherit its
    ``PYTHONPATH``; each run's report is printed as it comes, then the medians of the
    rounds, scenario by scenario."""
    rest, skip = [], False
    for arg in argv:  # every option but --baseline-src and --rounds
        if skip:
            skip = False
        elif arg in ("--baseline-src", "--rounds"):
            skip = True
        elif not arg.startswith(("--baseline-src=", "--rounds=")):
            rest.append(arg)
    ours = Path(__file__).resolve().parents[1] / "src"
    sources = [("this checkout", ours)]
    if args.baseline_src is not None:
        sources.insert(0, ("baseline", args.baseline_src.resolve()))
    for label, src in sources:
        if not (src / "shipcaptain" / "__init__.py").is_file():
            raise SystemExit(f"{label}: no shipcaptain package in {src} (give a checkout's src/)")
    # label -> scenario -> figure -> one value a round
    measured: dict[str, dict[str, dict[str, list[float]]]] = {label: {} for label, _ in sources}
    for round_ in range(1, args.rounds + 1):
        for label, src in sources:
            print(f"== round {round_}, {label} ({src})", flush=True)
            env = {**os.environ, "PYTHONPATH": str(src)}
            command = [sys.executable, __file__, *rest, "--json"]
            figures = None
            with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith(FIGURES):
                        figures = json.loads(line[len(FIGURES) :])
                    else:
                        print(line, end="", flush=True)
            if proc.returncode != 0 or figures is None:
                raise SystemExit(
                    f"round {round_}, {label}: the run failed (exit {proc.returncode})"
                    + ("" if figures is not None else ", no figures")
                )
            ran = Path(figures.pop("source")).resolve()
            if not ran.is_relative_to(src):  # a src without the package: the installed one ran
                raise SystemExit(f"round {round_}, {label}: ran {ran}, not the sources in {src}")
            for name, values in figures.items():
                for figure, value in values.items():
                    kept = measured[label].setdefault(name, {}).setdefault(figure, [])
                    kept.append(float(value))
    print_medians(measured, args.rounds)
    return 0


def print_medians(measured: dict[str, dict[str, dict[str, list[float]]]], rounds: int) -> None:
    """The median of each figure over the rounds, the labels side by side (each round's
    values in brackets)."""
    labels = list(measured)
    print(f"\nmedians of {rounds} round(s), " + " against ".join(reversed(labels)) + ":")
    names = [n for label in labels for n in measured[label]]
    for name in dict.fromkeys(names):
        print(f"{name}")
        figures = [f for label in labels for f in measured[label].get(name, {})]
        for figure in dict.fromkeys(figures):
            sides = []
            for label in reversed(labels):  # this checkout first, as in the README's tables
                values = measured[label].get(name, {}).get(figure)
                if not values:
                    sides.append(f"{label}: not measured")
                    continue
                each = " / ".join(_figure(v) for v in values)
                sides.append(f"{label} {_figure(statistics.median(values))} ({each})")
            print(f"  {figure}: " + ", ".join(sides))


def _figure(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"


def run(args: argparse.Namespace) -> int:
    chosen = set(args.scenarios.split(","))
    print(f"benchmarks/scale.py at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs")
    figures: dict[str, dict[str, float]] = {}
    if "sqlite" in chosen:
        name = "sqlite, one worker"
        print(f"{name}:")
        with tempfile.TemporaryDirectory(prefix="sc-scale-db-") as db:
            url = f"sqlite:///{db}/state.db"
            figures[name] = scenario(
                url, args.releases, ["w1"], False, args.wait, anchors=args.anchors
            )
    if chosen & {"scaling", "takeover"} and (why := postgres_unreachable()):
        print(f"postgresql: skipped ({why})")
        return done(args, figures)
    if "scaling" in chosen:
        for n in (int(x) for x in args.workers.split(",")):
            name = f"postgresql, {n} worker(s), each up to {args.concurrency} releases at once"
            print(f"{name}:")
            with postgres_database() as url:
                names = [f"w{i}" for i in range(1, n + 1)]
                figures[name] = scenario(
                    url, args.releases, names, False, args.wait, args.concurrency, args.anchors
                )
    if "takeover" in chosen:
        name = "postgresql, two workers, one killed with SIGKILL"
        print(f"{name}:")
        with postgres_database() as url:
            figures[name] = scenario(
                url, args.releases, ["w1", "w2"], True, args.wait, anchors=args.anchors
            )
    return done(args, figures)


def done(args: argparse.Namespace, figures: dict[str, dict[str, float]]) -> int:
    """With ``--json`` (a run of :func:`in_rounds`), the figures as the last line."""
    if args.json:
        import shipcaptain

        source = {"source": shipcaptain.__file__}  # which sources ran, for in_rounds to check
        print(FIGURES + json.dumps(source | figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
