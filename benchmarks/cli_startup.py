"""How long ``shipcaptain --help`` takes, and which imports cost the most.

* Wall time of ``shipcaptain --help`` as a new process (the console script next to this
  interpreter, else ``python -m shipcaptain.cli.main``), ``--runs`` times (default 10):
  median and min. Target: < 0.3 s.
* ``python -X importtime -c "import shipcaptain.cli.main"``: the modules with the largest
  cumulative and self import times. The CLI imports its command modules when it starts, so
  any heavy module they import at the top (dbos, sqlalchemy, pydantic, rich, the engine,
  the client) is paid by every command, even ``--help``; those must be imported lazily,
  inside the commands.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --runs 20 --top 25

Exit code 0 when the median is under the target, 1 when it is not.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3
#: modules that should never be imported just to show help
HEAVY = ("dbos", "sqlalchemy", "pydantic", "pydantic_settings", "rich", "psycopg", "httpx")


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("shipcaptain")
    if script.exists():
        return [str(script)]
    found = shutil.which("shipcaptain")
    return [found] if found else [sys.executable, "-m", "shipcaptain.cli.main"]


def time_command(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return times


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--top", type=int, default=15, help="imports to list (default 15)")
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
    print(f"\nslowest median {worst * 1000:.1f} ms: {verdict} the target of < {TARGET_S:g} s")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
