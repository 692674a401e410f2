"""How long queueing a release for the workers takes: ``Client.create_release`` (read and
check the runbook, authorize, record the release) plus ``Client.enqueue`` (hand it to DBOS's
queue), in this process, with no worker running, as a server or ``release start --detach``
does it.

The same 20-step runbook file (the releases of ``scale.py``: a no-op chain per step) is
queued ``--releases`` times on a throwaway database of each backend; the first release
(cold: the runbook checked, connections opened) is printed apart from the median and min of
the rest. As a baseline from the same run: one store read of a release
(``Store.get_release``) on the same database.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/queue_releases.py                     # SQLite and PostgreSQL
    python benchmarks/queue_releases.py --releases 50 --backend sqlite

PostgreSQL: a throwaway database on ``SHIPCAPTAIN_TEST_POSTGRES_URL`` (see
``step_overhead.py``), skipped with a note when the server cannot be reached.

Target (issue 27): at most 20 ms a release. Exit code 0 when every backend's median meets
it, 1 when not.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import postgres_database, postgres_unreachable

TARGET_MS = 20.0


def runbook_text(steps: int) -> str:
    lines = ["name: bench-queue", "environment: staging", "phases:", "  - id: p", "    steps:"]
    lines += [
        f'      - {{id: s{i:02d}, action: shell, with: {{command: "true"}}}}' for i in range(steps)
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'state.db'}"
    else:
        with postgres_database() as url:
            yield url


def measure(backend: str, releases: int, steps: int) -> tuple[float, list[float], list[float]]:
    """(first release, the others, store reads) in seconds."""
    from bench_team import EVERYTHING, put_bench_team

    from shipcaptain.client import Client
    from shipcaptain.settings import Settings

    with (
        tempfile.TemporaryDirectory(prefix="sc-queue-") as tmp,
        database(backend, Path(tmp)) as url,
    ):
        folder = Path(tmp)
        runbook = folder / "runbook.yaml"
        runbook.write_text(runbook_text(steps))
        settings = Settings(
            database_url=url, data_dir=folder / "data", audit_key_file=folder / "audit.key"
        )
        with Client(settings) as client:
            put_bench_team(client.store, permissions=EVERYTHING)
            times, reads = [], []
            for _ in range(releases + 1):
                started = time.perf_counter()
                record = client.create_release(runbook, {}, user="bench", workdir=folder)
                client.enqueue(record.id, 1)
                times.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.store.get_release(record.id)
                reads.append(time.perf_counter() - started)
    return times[0], times[1:], reads[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=20, help="releases (default 20)")
    parser.add_argument("--steps", type=int, default=20, help="steps per runbook (default 20)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args(argv)

    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    ok = True
    print(
        f"queueing a release of {args.steps} steps (create_release + enqueue), in-process, "
        f"{args.releases} in a row after a first one: median (min)"
    )
    for backend in backends:
        if backend == "postgresql" and (why := postgres_unreachable()):
            print(f"  postgresql: skipped ({why})")
            continue
        first, rest, reads = measure(backend, args.releases, args.steps)
        median = statistics.median(rest) * 1000
        ok = ok and median <= TARGET_MS
        print(
            f"  {backend:<11} {median:7.1f} ms ({min(rest) * 1000:.1f}); "
            f"first {first * 1000:.0f} ms; baseline, one store read: "
            f"{statistics.median(reads) * 1000:.2f} ms"
        )
    print(f"target: <= {TARGET_MS:g} ms a release: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
