"""How long ``shipcaptain --help`` and the read-only commands take, and which imports cost
the most.

* Wall time of ``shipcaptain --help`` as a new process (the console script next to this
  interpreter, else ``python -m shipcaptain.cli.main``), ``--runs`` times (default 10):
  median and min. Target: < 0.3 s.
* The read-only commands (``release list``, ``release show``, ``workers``, ``incident
  list``, ``audit verify``, ...) on a throwaway SQLite state database holding a team and a
  handful of releases, measured in the same run and printed beside ``--help`` as a ratio.
  Target (issue 27): ``release list`` within 2x ``--help``.
* ``--writes``: commands that write too (``token create``, ``incident open``, ``release
  start --detach``);
  ``--cluster-env``: every command with a cluster's numbers in its environment (a heartbeat,
  a takeover time, a poll interval), as a worker's or a team's shell has them.
* ``python -X importtime -c "import shipcaptain.cli.main"``: the modules with the largest
  cumulative and self import times. The CLI imports its command modules when it starts, so
  any heavy module they import at the top (dbos, sqlalchemy, pydantic, rich, the engine,
  the client) is paid by every command, even ``--help``; those must be imported lazily,
  inside the commands.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --runs 20 --top 25
    python benchmarks/cli_startup.py --runs 5 --baseline-src /path/to/main/src
    python benchmarks/cli_startup.py --backend postgresql --writes --cluster-env \
        --baseline-src /path/to/main/src

Exit code 0 when the median is under the target, 1 when it is not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
#: ``release list`` may take at most this many times ``--help`` (issue 27)
TARGET_RATIO = 2.0
#: modules that should never be imported just to show help
HEAVY = ("dbos", "sqlalchemy", "pydantic", "pydantic_settings", "rich", "psycopg", "httpx")


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("shipcaptain")
    if script.exists():
        return [str(script)]
    found = shutil.which("shipcaptain")
    return [found] if found else [sys.executable, "-m", "shipcaptain.cli.main"]


def time_command(
    argv: list[str], runs: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, env=env, cwd=cwd)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return times


RUNBOOK = """\
name: bench-read
phases:
  - id: build
    steps:
      - {id: a, action: shell, with: {command: "true"}}
      - {id: b, action: shell, needs: [a], with: {command: "true"}}
"""


def state_database(
    folder: Path, releases: int, url: str | None = None
) -> tuple[dict[str, str], str]:
    """A state database (SQLite under ``folder`` unless ``url``) with a one-person team, a
    token and ``releases`` pending releases: the CLI's environment and one release's id."""
    from bench_team import EVERYTHING, bench_token, put_bench_team

    from shipcaptain.client import Client
    from shipcaptain.settings import Settings

    url = url or f"sqlite:///{folder / 'state.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_DATA_DIR": str(folder / "data"),
        "SHIPCAPTAIN_AUDIT_KEY_FILE": str(folder / "audit.key"),
        "XDG_CONFIG_HOME": str(folder / "config"),
    }
    (folder / "runbook.yaml").write_text(RUNBOOK)
    settings = Settings(
        database_url=url, data_dir=folder / "data", audit_key_file=folder / "audit.key"
    )
    with Client(settings) as client:
        put_bench_team(
            client.store,
            permissions=EVERYTHING,
            environments={"production": {"protected": False}},
        )
        env["SHIPCAPTAIN_TOKEN"] = bench_token(client.store, "bench", "cli_startup benchmark")
        ids = [
            client.create_release(folder / "runbook.yaml", {}, user="bench").id
            for _ in range(releases)
        ]
    return env, ids[-1] if ids else ""


def state_database_of(
    src: Path, folder: Path, releases: int, url: str | None = None
) -> tuple[dict[str, str], str]:
    """:func:`state_database` made by the sources in ``src`` (another checkout's ``src/``)
    in a new process: a database of the schema that checkout knows, which it can read (a
    checkout refuses a database migrated by a newer one), and its releases as it creates
    them. The environment sets ``PYTHONPATH`` to ``src``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    script = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from cli_startup import state_database; "
        "env, rid = state_database(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] or None); "
        "print(json.dumps([env, rid]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env["PYTHONPATH"] = str(src.resolve())
    args = [str(Path(__file__).parent), str(folder), str(releases), url or ""]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"making the baseline's state database failed:\n{done.stderr}")
    made, release_id = json.loads(done.stdout.splitlines()[-1])
    return made | {"PYTHONPATH": env["PYTHONPATH"]}, release_id


def read_commands(release_id: str) -> list[list[str]]:
    return [
        ["release", "list"],
        ["release", "list", "--json"],
        ["release", "show", release_id],
        ["release", "show", release_id, "--json"],
        ["workers"],
        ["incident", "list"],
        ["audit", "verify"],
    ]


#: commands that write, each of which can run again and again with exit 0 (``--writes``)
def write_commands(release_id: str) -> list[list[str]]:
    return [
        ["token", "create", "--label", "bench", "--expires-in", "1h"],
        ["incident", "open", "--severity", "P2", "--summary", "bench", "--release", release_id],
        ["release", "start", "runbook.yaml", "--detach"],  # queued for a worker (none here)
    ]


#: what a cluster's processes have in their environment (``--cluster-env``): numbers, which
#: the light settings reader once left to pydantic-settings
CLUSTER_ENV = {
    "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
    "SHIPCAPTAIN_TAKEOVER_AFTER": "3",
    "SHIPCAPTAIN_POLL_INTERVAL": "0.1",
}


def import_times() -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) for every module imported by the CLI's main module."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import shipcaptain.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if not parts[0].strip().isdigit():
            continue  # the header line
        rows.append((parts[2].strip(), int(parts[0]), int(parts[1])))
    return rows


def run_once(argv: list[str], env: dict[str, str] | None, cwd: Path | None) -> tuple[float, float]:
    """One run as a new process: its wall time and its CPU time (user + system), in seconds.
    CPU time hardly moves with the load of other processes on the machine; wall time does."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{done.stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def measure_reads(
    base: list[str],
    runs: int,
    releases: int,
    backend: str = "sqlite",
    baseline_src: Path | None = None,
    *,
    writes: bool = False,
    cluster_env: bool = False,
) -> float:
    """Time the read-only commands and ``--help`` in turns (each round runs every command
    once, so a burst of load hits all of them alike); print each beside ``--help``. With
    ``baseline_src``, another checkout's sources (its ``src/``, through ``PYTHONPATH``) run
    every command too, in turns with these, each tree on a state database of the same
    content made by its own sources (a tree refuses a schema newer than it knows): the
    baseline from the same run. ``writes``: commands that write too; ``cluster_env``: with
    :data:`CLUSTER_ENV` set. Returns ``release list``'s ratio to ``--help`` (medians of
    wall time)."""
    name = "PostgreSQL" if backend == "postgresql" else "SQLite"
    print(
        f"\ncommands on {name} ({releases} releases), {runs} rounds, each command "
        "once a round, --help among them: median wall ms (min), median CPU ms, "
        "wall and CPU as a multiple of --help's"
    )
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sc-cli-"))
        url = base_url = None
        if backend == "postgresql":  # throwaway databases on the test server, dropped after
            from step_overhead import postgres_database

            url = stack.enter_context(postgres_database())
            if baseline_src is not None:
                base_url = stack.enter_context(postgres_database())
        env, release_id = state_database(Path(tmp), releases, url)
        trees = {"": (env, release_id)}
        if baseline_src is not None:
            trees["baseline"] = state_database_of(
                baseline_src, Path(tmp) / "baseline", releases, base_url
            )
        if cluster_env:
            print(f"  with {' '.join(f'{k}={v}' for k, v in CLUSTER_ENV.items())}")
            trees = {name: ({**e, **CLUSTER_ENV}, r) for name, (e, r) in trees.items()}
        commands = [["--help"], *read_commands("{release}")]
        if writes:
            commands += write_commands("{release}")
        walls: dict[tuple[str, int], list[float]] = {}
        cpus: dict[tuple[str, int], list[float]] = {}
        for round_ in range(runs + 1):
            for i, sub in enumerate(commands):
                order = list(trees.items())
                for tree, (tree_env, tree_release) in order[round_ % 2 :] + order[: round_ % 2]:
                    argv = [*base, *(a.replace("{release}", tree_release) for a in sub)]
                    wall, cpu = run_once(argv, tree_env, Path(tmp))
                    if round_:  # the first round warms the file cache and .pyc files
                        walls.setdefault((tree, i), []).append(wall)
                        cpus.setdefault((tree, i), []).append(cpu)
    list_ratio = 0.0
    for tree in trees:
        help_wall = statistics.median(walls[(tree, 0)])
        help_cpu = statistics.median(cpus[(tree, 0)])
        if tree:
            print(f"baseline: the sources in {baseline_src}, run in turns with these")
        for i, sub in enumerate(commands):
            wall, cpu = statistics.median(walls[(tree, i)]), statistics.median(cpus[(tree, i)])
            if sub == ["release", "list"] and not tree:
                list_ratio = wall / help_wall
            label = " ".join(["shipcaptain", *sub]).replace("{release}", "ID")
            low = min(walls[(tree, i)])
            print(
                f"  {label:<34} {wall * 1000:7.1f} ms ({low * 1000:6.1f})  "
                f"cpu {cpu * 1000:6.1f} ms  {wall / help_wall:4.1f}x / {cpu / help_cpu:4.2f}x"
            )
    return list_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--top", type=int, default=15, help="imports to list (default 15)")
    parser.add_argument(
        "--releases", type=int, default=5, help="releases in the state database (default 5)"
    )
    parser.add_argument("--no-read", action="store_true", help="only --help (no state database)")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="state database of the read-only commands (default sqlite; postgresql: a "
        "throwaway database on SHIPCAPTAIN_TEST_POSTGRES_URL's server)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run the read-only commands with another checkout's sources (its src/ "
        "folder), in turns with these: the baseline from the same run",
    )
    parser.add_argument(
        "--writes",
        action="store_true",
        help="also time commands that write (token create, incident open)",
    )
    parser.add_argument(
        "--cluster-env",
        action="store_true",
        help="run the commands with a cluster's numbers in the environment (heartbeat, "
        "takeover, poll interval)",
    )
    args = parser.parse_args(argv)

    base = cli_command()
    commands = [[*base, "--help"], [*base, "release", "--help"]]
    print(f"wall time of a new process, {args.runs} runs: median (min)")
    medians = []
    for argv_ in commands:
        time_command(argv_, 1)  # warm the file cache and .pyc files
        times = time_command(argv_, args.runs)
        medians.append(statistics.median(times))
        label = " ".join(["shipcaptain", *argv_[len(base) :]])
        print(f"  {label:<28} {statistics.median(times) * 1000:7.1f} ms ({min(times) * 1000:.1f})")
    python_only = time_command([sys.executable, "-c", "pass"], args.runs)
    print(f"  {'python -c pass':<28} {statistics.median(python_only) * 1000:7.1f} ms (floor)")

    list_ratio = (
        None
        if args.no_read
        else measure_reads(
            base,
            args.runs,
            args.releases,
            args.backend,
            args.baseline_src,
            writes=args.writes,
            cluster_env=args.cluster_env,
        )
    )

    rows = import_times()
    total = max((cum for name, _, cum in rows if name == "shipcaptain.cli.main"), default=0)
    print(f"\nimport shipcaptain.cli.main: {total / 1000:.1f} ms (python -X importtime)")
    print(f"top {args.top} by cumulative time (µs, a package includes what it imports):")
    for name, own, cumulative in sorted(rows, key=lambda r: -r[2])[: args.top]:
        print(f"  {cumulative:>8} {own:>8}  {name}")
    print(f"top {args.top} by self time:")
    for name, own, cumulative in sorted(rows, key=lambda r: -r[1])[: args.top]:
        print(f"  {own:>8} {cumulative:>8}  {name}")
    imported = {name.strip() for name, _, _ in rows}
    heavy = sorted(m for m in HEAVY if m in imported)
    if heavy:
        print(f"\nheavy modules imported just to start the CLI: {', '.join(heavy)}")
        print("  import them inside the commands that need them (see cli/common.py's Obj).")
    else:
        print(f"\nnone of {', '.join(HEAVY)} is imported to start the CLI.")

    worst = max(medians)
    verdict = "meets" if worst < TARGET_S else "MISSES"
    print(
        f"\nslowest --help median {worst * 1000:.1f} ms: {verdict} the target of < {TARGET_S:g} s"
    )
    ok = worst < TARGET_S
    if list_ratio is not None:
        meets = list_ratio <= TARGET_RATIO
        print(
            f"release list: {list_ratio:.1f}x --help: "
            f"{'meets' if meets else 'MISSES'} the target of <= {TARGET_RATIO:g}x"
        )
        ok = ok and meets
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
