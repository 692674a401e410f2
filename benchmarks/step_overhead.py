"""Orchestration overhead per step: shipcaptain versus a plain bash script.

The same release of N no-op steps (``true``) runs

* in shipcaptain, in this process (``Engine`` + ``Client``, as the integration tests do),
  timed from ``Engine.start`` until the release workflow returned with the release
  recorded as succeeded;
* in bash: a script that runs the N commands exactly as the ``shell`` action spawns
  them (``bash -o pipefail -c true``, behind ``setpriv --pdeathsig KILL --`` where the
  action uses it), one after the other for the chain and all at once (``&`` then
  ``wait``) for the fan-out, timed around ``subprocess.run(["bash", script])``.

overhead per step = (shipcaptain wall time - bash wall time) / N.

Two shapes, because they stress the engine differently:

* chain:   step i ``needs`` step i-1: every step waits for the result event of the one
           before it, so hand-over latency (event delivery, polling) adds up N times;
* fan-out: N independent steps: every step starts at once, so contention on the
           database (one SQLite writer, the audit chain's lock) is what costs.

shipcaptain's own records show where the time goes: each step's recorded duration
(started_at to ended_at of its step run: the action spawning ``bash`` plus the store
writes around it) and, for the chain, the gap between one step's end and the next one's
start (pure engine hand-over). ``--trace`` also counts the store calls per step and the
SQL they run (statements, transactions, pool check-outs: on PostgreSQL a round trip each,
with a ``BEGIN`` and a ``COMMIT`` per transaction that writes).

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/step_overhead.py                  # SQLite and PostgreSQL, 3 runs each
    python benchmarks/step_overhead.py --runs 5 --backend sqlite --trace

PostgreSQL: a throwaway database is created on the server of
``SHIPCAPTAIN_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and dropped afterwards; if the server cannot be reached, PostgreSQL is skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import logging
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: overhead per step, ms, by backend (issue 27's targets)
TARGETS_MS = {"sqlite": 3.0, "postgresql": 5.0}


def shell_argv() -> tuple[str, ...]:
    """What the ``shell`` action spawns for ``command: true``: ``bash -o pipefail -c true``,
    behind ``setpriv --pdeathsig KILL --`` where the action uses it (so the command dies
    with the engine)."""
    from shipcaptain.actions import shell

    prefix = getattr(shell, "_DIE_WITH_ENGINE", [])
    return (*prefix, "bash", "-o", "pipefail", "-c", "true")


SHELL_ARGV = shell_argv()
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SHAPES = ("chain", "fan-out")


# ---- the release and its bash twin ------------------------------------------------------


def runbook_text(shape: str, steps: int) -> str:
    """A runbook of ``steps`` shell steps running ``true``, in one phase."""
    lines = [f"name: bench-{shape}", "phases:", "  - id: bench", "    steps:"]
    for i in range(1, steps + 1):
        needs = f", needs: [s{i - 1:03d}]" if shape == "chain" and i > 1 else ""
        lines.append(f'      - {{id: s{i:03d}, action: shell{needs}, with: {{command: "true"}}}}')
    return "\n".join(lines) + "\n"


def bash_script(shape: str, steps: int) -> str:
    command = " ".join(SHELL_ARGV)
    if shape == "chain":
        return "set -e\n" + f"{command}\n" * steps
    return f"{command} &\n" * steps + "wait\n"


def time_bash(script: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", str(script)], check=True)
    return time.perf_counter() - started


# ---- databases ----------------------------------------------------------------------------


def admin_url() -> str:
    return os.environ.get("SHIPCAPTAIN_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL


def postgres_unreachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(admin_url(), connect_timeout=3, autocommit=True):
            return None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return first


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped (WITH FORCE) afterwards."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"sc_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
        yield url
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ---- store call accounting (--trace) ----------------------------------------------------

WRITES = frozenset(
    {
        "create_release",
        "update_release",
        "begin_run",
        "upsert_step_run",
        "begin_try",
        "record_step_result",
        "open_gate",
        "close_gate",
        "add_decision",
        "append_event",
        "heartbeat",
    }
)


@dataclass
class StoreTrace:
    """Counts and times every public store call made while ``active``."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    active: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    #: SQL on the database, by whose it is ("store": shipcaptain's, "engine": DBOS's) and
    #: what: statements, transactions begun, connections checked out of the pool (on
    #: PostgreSQL a check-out may ping the server first)
    sql: Counter[tuple[str, str]] = field(default_factory=Counter)

    def install(self, store: Any) -> None:
        self._install_sql(store)
        for name in dir(type(store)):
            # latest_step_runs is counted as the list_step_runs it calls
            if name.startswith("_") or name in ("close", "migrate", "latest_step_runs"):
                continue
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return method(*args, **kwargs)
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls[name] += 1
                    self.seconds[name] += time.perf_counter() - started

        return traced

    def _install_sql(self, store: Any) -> None:
        from sqlalchemy import Engine, event
        from sqlalchemy.pool import Pool

        pool = getattr(getattr(store, "_engine", None), "pool", None)

        def whose(engine_pool: Any) -> str:
            return "store" if engine_pool is pool else "engine"

        def count(owner: str, what: str) -> None:
            if self.active:
                with self.lock:
                    self.sql[(owner, what)] += 1

        def on_statement(conn: Any, *_args: Any) -> None:
            count(whose(conn.engine.pool), "statements")

        def on_begin(conn: Any) -> None:
            count(whose(conn.engine.pool), "transactions")

        def on_checkout(_dbapi: Any, _record: Any, proxy: Any) -> None:
            count(whose(proxy._pool), "checkouts")

        event.listen(Engine, "before_cursor_execute", on_statement)
        event.listen(Engine, "begin", on_begin)
        event.listen(Pool, "checkout", on_checkout)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.seconds.clear()
            self.sql.clear()


# ---- one measured release ---------------------------------------------------------------


@dataclass
class Measurement:
    wall: float  # seconds, Engine.start until the release finished
    cpu: float  # seconds of this process's CPU (user + system, every thread) meanwhile
    step_ms: list[float]  # recorded duration of each step
    gaps_ms: list[float]  # chain: next step's start minus previous step's end
    first_start_ms: float  # Engine.start until the first step started
    tail_ms: float  # last step ended until the release workflow returned


def _ms(delta: Any) -> float:
    return float(delta.total_seconds() * 1000.0)


def run_release(
    harness: Any, runbook: Path, shape: str, trace: StoreTrace | None = None
) -> Measurement:
    client, engine, workdir = harness
    record = client.create_release(runbook, {}, user="bench", workdir=workdir)
    began = datetime.now(UTC)
    cpu_before = process_cpu()
    started = time.perf_counter()
    if trace is not None:
        trace.reset()
        trace.active = True
    handle = engine.start(record.id, 1)
    outcome = handle.get_result()
    wall = time.perf_counter() - started
    cpu = process_cpu() - cpu_before
    finished = datetime.now(UTC)
    if trace is not None:
        trace.active = False
    release = client.get(record.id)
    if release.status != "succeeded" or outcome.get("status") != "succeeded":
        raise SystemExit(f"benchmark release {record.id} ended {release.status}: {release.reason}")
    runs = sorted(client.store.latest_step_runs(record.id).values(), key=lambda r: r.step_id)
    step_ms = [_ms(r.ended_at - r.started_at) for r in runs]
    gaps = (
        [_ms(b.started_at - a.ended_at) for a, b in itertools.pairwise(runs)]
        if shape == "chain"
        else []
    )
    first = min(r.started_at for r in runs)
    last = max(r.ended_at for r in runs)
    return Measurement(wall, cpu, step_ms, gaps, _ms(first - began), _ms(finished - last))


def process_cpu() -> float:
    """This process's CPU time so far (user + system, every thread), seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def engine_on(url: str, data_dir: Path, workdir: Path, trace: StoreTrace | None) -> Iterator[Any]:
    from shipcaptain.client import Client
    from shipcaptain.engine.engine import Engine
    from shipcaptain.settings import Settings

    settings = Settings(database_url=url, data_dir=data_dir, poll_interval=0.05)
    client = Client(settings)
    if trace is not None:
        trace.install(client.store)
    engine = Engine(settings, executor_id="bench-engine", store=client.store, workdir=workdir)
    engine.launch()
    try:
        yield client, engine, workdir
    finally:
        engine.shutdown()
        client.close()


# ---- reporting ----------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    shape: str
    bash: list[float]
    shipcaptain: list[Measurement]
    steps: int
    trace: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (calls, ms)/step
    sql: dict[str, float] = field(default_factory=dict)  # "<whose> <what>": per step

    def overhead(self, agg: Callable[[list[float]], float]) -> float:
        return (agg([m.wall for m in self.shipcaptain]) - agg(self.bash)) * 1000.0 / self.steps

    def cpu(self, agg: Callable[[list[float]], float]) -> float:
        """The engine process's CPU per step, ms (spawning each command included)."""
        return agg([m.cpu for m in self.shipcaptain]) * 1000.0 / self.steps

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "shape": self.shape,
            "steps": self.steps,
            "bash": self.bash,
            "shipcaptain": [vars(m) for m in self.shipcaptain],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        measured = [Measurement(**m) for m in data["shipcaptain"]]
        return cls(data["backend"], data["shape"], data["bash"], measured, data["steps"])


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(rows: list[Row], runs: int, steps: int, title: str = "") -> None:
    print()
    print(
        f"{title}Per step, {steps} steps of `{' '.join(SHELL_ARGV)}`, {runs} runs: median "
        "(min). Overhead = (shipcaptain - bash) / steps."
    )
    print(
        "bash: a script running the same commands (chain: one after the other; "
        "fan-out: all with & then wait)."
    )
    header = (
        f"{'backend':<10} {'shape':<8} {'bash total ms':>14} {'shipcaptain total ms':>21} "
        f"{'overhead ms/step':>17} {'CPU ms/step':>12} {'step rec. ms':>13} {'gap ms':>8} "
        f"{'start ms':>9} {'end ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        walls = [m.wall * 1000.0 for m in r.shipcaptain]
        bash = [b * 1000.0 for b in r.bash]
        step_rec = med([med(m.step_ms) for m in r.shipcaptain])
        gaps = med([med(m.gaps_ms) for m in r.shipcaptain]) if r.shape == "chain" else None
        print(
            f"{r.backend:<10} {r.shape:<8} "
            f"{med(bash):>7.1f} ({min(bash):>5.1f}) "
            f"{med(walls):>11.1f} ({min(walls):>7.1f}) "
            f"{r.overhead(med):>8.1f} ({r.overhead(min):>5.1f}) "
            f"{r.cpu(med):>12.1f} "
            f"{step_rec:>13.1f} "
            f"{(f'{gaps:.1f}' if gaps is not None else '-'):>8} "
            f"{med([m.first_start_ms for m in r.shipcaptain]):>9.1f} "
            f"{med([m.tail_ms for m in r.shipcaptain]):>7.1f}"
        )
    print(
        "\nCPU: the engine process's CPU time (user + system, every thread, spawning each "
        "command included) during the release, per step;"
        "\nstep rec.: median duration shipcaptain recorded for one step (spawning bash from the"
        " engine plus the store writes inside the step);\ngap: chain only, median time from one"
        " step's recorded end to the next step's recorded start (engine hand-over);\nstart: "
        "Engine.start until the first step started; end: last step ended until the release "
        "workflow returned."
    )


def print_verdict(rows: list[Row]) -> bool:
    ok = True
    print()
    for r in rows:
        per_step = r.overhead(med)
        target = TARGETS_MS[r.backend]
        met = per_step <= target
        ok = ok and met
        verdict = "meets" if met else "MISSES"
        print(
            f"{r.backend} {r.shape}: {per_step:.1f} ms/step of overhead: {verdict} the "
            f"target of <= {target:g} ms/step (bash ~1 ms/step, Ansible ~300 ms/step)"
        )
    return ok


def print_trace(rows: list[Row]) -> None:
    for r in rows:
        if not r.trace:
            continue
        print(f"\nstore calls per step, {r.backend} {r.shape} (last run; W = writes):")
        ordered = sorted(r.trace.items(), key=lambda kv: -kv[1][1])
        total_calls = sum(c for c, _ in r.trace.values())
        total_ms = sum(ms for _, ms in r.trace.values())
        writes = sum(c for name, (c, _) in r.trace.items() if name in WRITES)
        for name, (calls, ms) in ordered:
            mark = "W" if name in WRITES else " "
            print(f"  {mark} {name:<20} {calls:6.2f} calls {ms:8.2f} ms")
        print(
            f"    {'total':<20} {total_calls:6.2f} calls {total_ms:8.2f} ms ({writes:.2f} writes)"
        )
        print("    (ms summed over threads: in the fan-out they overlap)")
        if r.sql:
            print(
                "  SQL per step: "
                + ", ".join(f"{name} {n:.2f}" for name, n in sorted(r.sql.items()))
                + "\n  (statements as SQLAlchemy runs them, BEGIN and COMMIT not counted; "
                "PostgreSQL: each statement, BEGIN, COMMIT and ping a round trip)"
            )


# ---- main ---------------------------------------------------------------------------------


def measure_backend(
    backend: str, url: str, tmp: Path, args: argparse.Namespace, rows: list[Row]
) -> None:
    workdir = tmp / f"work-{backend}"
    workdir.mkdir()
    trace = StoreTrace() if args.trace else None
    runbooks = {}
    scripts = {}
    for shape in SHAPES:
        runbooks[shape] = tmp / f"{shape}.yaml"
        runbooks[shape].write_text(runbook_text(shape, args.steps), encoding="utf-8")
        scripts[shape] = tmp / f"{shape}.sh"
        scripts[shape].write_text(bash_script(shape, args.steps), encoding="utf-8")
    warmup = tmp / "warmup.yaml"
    warmup.write_text(runbook_text("chain", 5), encoding="utf-8")
    with engine_on(url, tmp / f"data-{backend}", workdir, trace) as harness:
        run_release(harness, warmup, "chain")  # connections, imports, caches: not measured
        for shape in SHAPES:
            row = Row(backend, shape, [], [], args.steps)
            for i in range(args.runs):
                row.bash.append(time_bash(scripts[shape]))
                measurement = run_release(harness, runbooks[shape], shape, trace)
                row.shipcaptain.append(measurement)
                print(
                    f"  {backend} {shape} run {i + 1}: shipcaptain "
                    f"{measurement.wall * 1000:.0f} ms, bash {row.bash[-1] * 1000:.0f} ms",
                    file=sys.stderr,
                )
            if trace is not None:
                row.trace = {
                    name: (n / args.steps, trace.seconds[name] * 1000.0 / args.steps)
                    for name, n in trace.calls.items()
                }
                row.sql = {f"{o} {w}": n / args.steps for (o, w), n in trace.sql.items()}
            rows.append(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per shape (default 3)")
    parser.add_argument("--steps", type=int, default=50, help="steps per release (default 50)")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "all"],
        default="all",
        help="which state database (default: both)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="count and time the store calls per step, and count their SQL",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure the shipcaptain sources in this directory (another checkout's "
        "src), each run in a process of its own, in turns with this checkout's: the "
        "baseline from the same run",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # for turns
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 2:
        parser.error("--runs must be at least 1 and --steps at least 2")
    if args.trace and args.baseline_src is not None:
        parser.error("--trace counts this checkout's calls only: run it without --baseline-src")
    logging.basicConfig(level=logging.WARNING)
    if args.baseline_src is not None:
        return in_turns(args)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sc-bench-") as name:
        tmp = Path(name)
        if args.backend in ("sqlite", "all"):
            (tmp / "sqlite").mkdir()
            url = f"sqlite:///{tmp / 'sqlite' / 'state.db'}"
            measure_backend("sqlite", url, tmp / "sqlite", args, rows)
        if args.backend in ("postgresql", "all"):
            why = postgres_unreachable()
            if why is not None:
                print(f"\nnote: PostgreSQL skipped, the server is unreachable: {why}")
            else:
                (tmp / "postgresql").mkdir()
                with postgres_database() as url:
                    measure_backend("postgresql", url, tmp / "postgresql", args, rows)
    if args.json:
        print(json.dumps([r.as_json() for r in rows]))
        return 0
    print_table(rows, args.runs, args.steps)
    print_trace(rows)
    met = print_verdict(rows)
    return 0 if met else 1


def in_turns(args: argparse.Namespace) -> int:
    """``--runs`` rounds, each one run of the baseline's sources then one of these, every
    run a process of its own (``PYTHONPATH`` pointing at the sources it measures)."""
    import shipcaptain

    ours = Path(shipcaptain.__file__).resolve().parents[1]
    measured: dict[str, dict[tuple[str, str], Row]] = {"baseline": {}, "this checkout": {}}
    for i in range(args.runs):
        for label, src in (("baseline", args.baseline_src.resolve()), ("this checkout", ours)):
            argv = [sys.executable, __file__, "--runs", "1", "--steps", str(args.steps)]
            argv += ["--backend", args.backend, "--json"]
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{label} run {i + 1} failed:\n{done.stderr}")
            for data in json.loads(done.stdout.strip().splitlines()[-1]):
                row = Row.from_json(data)
                key = (row.backend, row.shape)
                if key in measured[label]:
                    measured[label][key].bash += row.bash
                    measured[label][key].shipcaptain += row.shipcaptain
                else:
                    measured[label][key] = row
            print(f"  round {i + 1}: {label} measured", file=sys.stderr)
    print_table(list(measured["baseline"].values()), args.runs, args.steps,
                f"baseline ({args.baseline_src}): ")  # fmt: skip
    rows = list(measured["this checkout"].values())
    print_table(rows, args.runs, args.steps, f"this checkout ({ours}): ")
    met = print_verdict(rows)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
