"""How long ``shipcaptain release start`` takes as a person (or a CI farm) runs it: a new
process that runs an N-step no-op release (default 50, a chain of ``true``) to the end.

For each run, on a throwaway SQLite state database:

* **whole process**: from spawning ``shipcaptain release start RUNBOOK --json`` to its exit;
* **to first step**: from spawning it to the first step's recorded ``started_at`` (the
  imports, settings, store, release record, engine launch and first dispatch);
* **steps**: the first step's start to the last step's end (recorded);
* **after the last step**: the last step's end to the process's exit (the release's own
  end, the live view noticing it, engine shutdown and interpreter exit);
* **CPU**: user + system time of the process and its children (the N commands included),
  which hardly moves with the load of other processes on the machine.

Beside them, measured in the same run: ``shipcaptain --help`` (the CLI's floor), a bash
script running the same N commands as the ``shell`` action spawns them, and, if
``ansible-playbook`` is on PATH (or given with ``--ansible``), a local playbook of N
``command: true`` tasks.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/release_start.py
    python benchmarks/release_start.py --runs 5 --ansible /tmp/ansible/bin/ansible-playbook

Targets (issue 27): whole process <= 1.5 s, to first step <= 0.5 s. Exit code 0 when both
medians meet them, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_startup import cli_command, state_database, state_database_of, time_command
from step_overhead import bash_script, runbook_text

TARGET_WHOLE_S = 1.5
TARGET_FIRST_STEP_S = 0.5


def run_release(base: list[str], env: dict[str, str], folder: Path) -> dict[str, float]:
    """One ``release start`` as a new process; its phases in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = datetime.now(UTC)
    started = time.perf_counter()
    done = subprocess.run(
        [*base, "release", "start", "runbook.yaml", "--json"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.perf_counter() - started
    exited = datetime.now(UTC)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(
            f"release start exited {done.returncode}:\n{done.stderr}{done.stdout[-2000:]}"
        )
    release_id = json.loads(done.stdout.splitlines()[-1])["id"]

    from shipcaptain.store import open_store

    with open_store(env["SHIPCAPTAIN_DATABASE_URL"]) as store:
        steps = list(store.latest_step_runs(release_id).values())
    first = min(s.started_at for s in steps if s.started_at)
    last = max(s.ended_at for s in steps if s.ended_at)
    return {
        "whole": whole,
        "first step": (first - spawned).total_seconds(),
        "steps": (last - first).total_seconds(),
        "after the last step": (exited - last).total_seconds(),
        "CPU, whole process tree": cpu,
    }


def time_ansible(playbook: str, folder: Path, steps: int) -> float:
    book = folder / "playbook.yml"
    tasks = "".join(f"    - command: 'true'\n      name: s{i:03d}\n" for i in range(steps))
    book.write_text(
        f"- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n{tasks}"
    )
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1"}
    # the modules run with the Python next to ansible-playbook (its own virtualenv)
    python = Path(playbook).with_name("python")
    interpreter = str(python) if python.exists() else sys.executable
    started = time.perf_counter()
    done = subprocess.run(
        [
            playbook,
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={interpreter}",
            str(book),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{playbook} exited {done.returncode}:\n{done.stdout[-2000:]}")
    return time.perf_counter() - started


def time_bash(folder: Path, steps: int, runs: int) -> list[float]:
    """Seconds of ``runs`` runs of a bash script with the same commands as the release."""
    script = folder / "chain.sh"
    script.write_text(bash_script("chain", steps))
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["bash", str(script)], check=True)
        times.append(time.perf_counter() - started)
    return times


def baseline_database(folder: Path, src: Path, steps: int) -> tuple[dict[str, str], Path]:
    """A state database of its own for the baseline's runs, whose CLI imports ``src``."""
    # made by the baseline's own sources: a database of the schema it knows (it refuses one
    # migrated by these sources)
    env, _ = state_database_of(src, folder, 0)
    (folder / "runbook.yaml").write_text(runbook_text("chain", steps))
    return env, folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="releases to time (default 5)")
    parser.add_argument("--steps", type=int, default=50, help="steps per release (default 50)")
    parser.add_argument("--ansible", help="ansible-playbook to compare with [default: on PATH]")
    parser.add_argument("--no-ansible", action="store_true", help="do not run Ansible")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run another checkout's sources (its src/ folder), in turns with these "
        "(each on a database of its own): the baseline from the same run",
    )
    args = parser.parse_args(argv)

    base = cli_command()
    phases: dict[str, list[float]] = {}
    baseline: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sc-start-") as tmp:
        folder = Path(tmp)
        env, _ = state_database(folder, 0)
        (folder / "runbook.yaml").write_text(runbook_text("chain", args.steps))
        run_release(base, env, folder)  # warm the file cache and .pyc files
        other = None
        if args.baseline_src is not None:
            other = baseline_database(folder / "baseline", args.baseline_src, args.steps)
            run_release(base, *other)
        turns: list[tuple[dict[str, list[float]], dict[str, str], Path]] = [(phases, env, folder)]
        if other is not None:  # in turns, each first every other time: load hits both alike
            turns.append((baseline, *other))
        for i in range(args.runs):
            for into, run_env, run_folder in turns[i % 2 :] + turns[: i % 2]:
                for name, value in run_release(base, run_env, run_folder).items():
                    into.setdefault(name, []).append(value)
        help_times = time_command([*base, "--help"], args.runs)
        bash_times = time_bash(folder, args.steps, args.runs)
        playbook = None if args.no_ansible else args.ansible or shutil.which("ansible-playbook")
        ansible = time_ansible(playbook, folder, args.steps) if playbook else None

    print(
        f"shipcaptain release start of {args.steps} no-op steps (a chain of `true`), "
        f"SQLite, new process each, {args.runs} runs: median (min)"
    )
    for name, values in phases.items():
        line = f"  {name:<26} {statistics.median(values) * 1000:8.0f} ms ({min(values) * 1000:.0f})"
        if name in baseline:
            was = baseline[name]
            line += f"   baseline {statistics.median(was) * 1000:8.0f} ms ({min(was) * 1000:.0f})"
        print(line)
    if baseline:
        print(f"  (baseline: the sources in {args.baseline_src}, run in turns with these)")
    print("same run, for comparison:")
    print(f"  {'shipcaptain --help':<26} {statistics.median(help_times) * 1000:8.0f} ms")
    print(f"  {'bash, same commands':<26} {statistics.median(bash_times) * 1000:8.0f} ms")
    if ansible is not None:
        print(f"  {'ansible-playbook (1 run)':<26} {ansible * 1000:8.0f} ms")
    else:
        print("  ansible-playbook: not run (not on PATH, or --no-ansible; give --ansible PATH)")

    whole = statistics.median(phases["whole"])
    first = statistics.median(phases["first step"])
    ok_whole, ok_first = whole <= TARGET_WHOLE_S, first <= TARGET_FIRST_STEP_S
    print(
        f"\nwhole process {whole:.2f} s: {'meets' if ok_whole else 'MISSES'} the target of "
        f"<= {TARGET_WHOLE_S:g} s; to first step {first:.2f} s: "
        f"{'meets' if ok_first else 'MISSES'} the target of <= {TARGET_FIRST_STEP_S:g} s"
    )
    return 0 if ok_whole and ok_first else 1


if __name__ == "__main__":
    sys.exit(main())
