"""Where a suite run's CPU goes, by the command each process ran: every process, daemons and
the processes a test's subprocesses start too (kubectl, git, the sandbox's PostgreSQL), each
counted under the process a pytest process started (``shipcaptain worker``, ``shipcaptain
release start``, ``shipcaptain rehearse``...). ``suite_cpu.py`` counts by test; this counts
by command, which is what shows where the processes' CPU goes.

Two records, joined by process id:

- the kernel's process accounting (``apt-get install acct``): a record of every process
  that ended, its parent, its command name (15 characters) and CPU;
- a Python ``sitecustomize`` (``--python-hook DIR`` writes it) that writes each Python
  process's command line when it exits.

Record a run::

    python benchmarks/suite_processes.py --python-hook /tmp/hook
    touch /tmp/pacct && accton /tmp/pacct
    PYTHONPATH=/tmp/hook .venv/bin/python -m pytest
    accton off

Report::

    python benchmarks/suite_processes.py --report /tmp/pacct /tmp/hook/out [--top 40]

A process still running when accounting stops (the PostgreSQL server's own processes) is
not in it: ``/proc/<postmaster>/stat`` has those. A process killed by SIGKILL leaves no
command line (it is named by its command name). Process ids can be reused in a long run:
a few rows may land under the wrong command.
"""

from __future__ import annotations

import argparse
import json
import struct
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

#: struct acct_v3 (linux/acct.h): flag, version, tty, exit code, uid, gid, pid, ppid,
#: btime, etime (float), utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t), comm
ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")
#: comp_t counts clock ticks
TICKS = 100

HOOK = """\
import atexit, json, os, resource, sys


def _shipcaptain_suite_record():
    used = resource.getrusage(resource.RUSAGE_SELF)
    out = os.path.join({out!r}, f"{{os.getpid()}}.json")
    try:
        with open(out, "w") as file:
            json.dump({{"argv": getattr(sys, "orig_argv", sys.argv)[:8],
                       "ppid": os.getppid(), "cpu": used.ru_utime + used.ru_stime}}, file)
    except OSError:
        pass


atexit.register(_shipcaptain_suite_record)
"""


def _comp(value: int) -> float:
    """comp_t: a 13-bit mantissa and a 3-bit base-8 exponent, in clock ticks."""
    return ((value & 0x1FFF) << (3 * ((value >> 13) & 7))) / TICKS


def read_accounting(path: Path) -> dict[int, dict[str, Any]]:
    data = path.read_bytes()
    processes: dict[int, dict[str, Any]] = {}
    for offset in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        fields = ACCT_V3.unpack_from(data, offset)
        pid, ppid = fields[6], fields[7]
        processes[pid] = {
            "ppid": ppid,
            "cpu": _comp(fields[10]) + _comp(fields[11]),
            "comm": fields[18].split(b"\0")[0].decode(errors="replace"),
        }
    return processes


def read_command_lines(folder: Path) -> dict[int, list[str]]:
    lines = {}
    for file in folder.glob("*.json"):
        try:
            lines[int(file.stem)] = json.loads(file.read_text())["argv"]
        except (ValueError, KeyError, OSError):
            continue
    return lines


def _name(argv: list[str] | None, comm: str) -> str:
    if argv is None:
        return comm
    joined = " ".join(argv)
    if "exec(eval(sys.stdin" in joined:
        return "pytest process"
    if "-m pytest" in joined:
        return "pytest"
    words = [w for w in argv[1:] if not w.startswith(("-", "/"))]
    if words[:1] in (["shipcaptain"], ["shipcaptain.cli.main"]):
        words = ["shipcaptain", *words[1:3]]
    return "python " + " ".join(words[:3])


def report(accounting: Path, hook_out: Path, top: int) -> None:
    processes = read_accounting(accounting)
    argv = read_command_lines(hook_out)

    def name(pid: int) -> str:
        return _name(argv.get(pid), processes.get(pid, {}).get("comm", "?"))

    def started_by_a_test(pid: int) -> int | None:
        """The ancestor a pytest process started (or the process itself)."""
        for _ in range(64):
            parent = processes.get(pid, {}).get("ppid")
            if parent is None:
                return None
            if name(parent) in ("pytest process", "pytest"):
                return pid
            pid = parent
        return None

    rows: dict[str, list[Any]] = defaultdict(lambda: [0, 0.0, Counter()])
    for pid, process in processes.items():
        own = name(pid)
        if own in ("pytest process", "pytest"):
            key = own
        else:
            ancestor = started_by_a_test(pid)
            key = name(ancestor) if ancestor else f"(not a test's) {process['comm']}"
            if ancestor == pid:
                rows[key][0] += 1
        rows[key][1] += process["cpu"]
        rows[key][2][process["comm"]] += process["cpu"]
    total = sum(row[1] for row in rows.values())
    print(f"{len(processes)} processes, {total:.0f} s of CPU\n")
    print(f"{'cpu s':>7} {'runs':>5}  command (the CPU of its whole tree, by command name)")
    for key, (runs, cpu, by_comm) in sorted(rows.items(), key=lambda kv: -kv[1][1])[:top]:
        parts = ", ".join(f"{c} {s:.0f}" for c, s in by_comm.most_common(4))
        print(f"{cpu:7.1f} {runs:5d}  {key[:56]:56s} {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-hook", type=Path, help="write the sitecustomize into DIR")
    parser.add_argument("--report", nargs=2, type=Path, metavar=("PACCT", "HOOK_OUT"))
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.python_hook:
        out = (args.python_hook / "out").resolve()
        out.mkdir(parents=True, exist_ok=True)
        (args.python_hook / "sitecustomize.py").write_text(HOOK.format(out=str(out)))
        print(f"PYTHONPATH={args.python_hook.resolve()}: each Python process writes into {out}")
    if args.report:
        accounting, hook_out = args.report
        report(accounting, hook_out, args.top)
    if not (args.python_hook or args.report):
        parser.error("--python-hook DIR or --report PACCT HOOK_OUT")


if __name__ == "__main__":
    main()
