"""What importing the engine costs a ``release start``: CPU time of ``import
shipcaptain.engine.engine`` (DBOS and what it pulls in) in a new interpreter that has
imported what the command imports before it (the CLI, the client, the SQLite store, the
runbook loader, the settings), and which drivers that left loaded.

CPU time (user + system of the importing thread) hardly moves with the load of other
processes, unlike wall time. With ``--baseline-src`` another checkout's sources (its
``src/`` folder) are measured in turns with these: the baseline from the same run.

Run (from the repository root, in the project's virtualenv; with bytecode caching on, as
an installed shipcaptain has it)::

    python benchmarks/engine_import.py --runs 10 --baseline-src /tmp/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys, time
import shipcaptain.cli.main, shipcaptain.client, shipcaptain.store.sqlite
import shipcaptain.runbook.loader, shipcaptain.settings
started = time.thread_time()
import shipcaptain.engine.engine
spent = time.thread_time() - started
loaded = [m for m in ("psycopg", "yaml", "sqlalchemy.orm") if m in sys.modules]
print(json.dumps({"ms": spent * 1000, "loaded": loaded}))
"""


def measure(src: Path | None) -> tuple[float, list[str]]:
    """CPU milliseconds of the import, and the drivers loaded after it."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout.splitlines()[-1])
    return float(found["ms"]), [str(m) for m in found["loaded"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="imports to time (default 10)")
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/, in turns")
    args = parser.parse_args(argv)
    sources: list[tuple[str, Path | None]] = [("these sources", None)]
    if args.baseline_src is not None:
        sources.append((f"baseline {args.baseline_src}", args.baseline_src))
    for _, src in sources:
        measure(src)  # warm the file cache and the bytecode
    times: dict[str, list[float]] = {name: [] for name, _ in sources}
    loaded: dict[str, list[str]] = {}
    for i in range(args.runs):
        for name, src in sources[i % 2 :] + sources[: i % 2]:  # each first every other time
            spent, loaded[name] = measure(src)
            times[name].append(spent)
    for name, values in times.items():
        print(
            f"{name}: import shipcaptain.engine.engine {statistics.median(values):.0f} ms CPU "
            f"median (min {min(values):.0f}) of {args.runs}; drivers left loaded: "
            f"{', '.join(loaded[name]) or 'none'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
