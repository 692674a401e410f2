"""How long the sandbox makes a person wait: ``shipcaptain demo`` end to end, and a
rehearsal of faults (``shipcaptain rehearse``), whole processes, wall time.

Both start a sandbox world first (git, the GitHub and Kubernetes doubles, PostgreSQL
servers, a real Prometheus); a rehearsal then runs one release of the runbook a fault.
Printed per run: the wall time, and for a rehearsal the world's set-up and each fault's
share (from its report). With ``--baseline-src`` (another checkout's ``src/``, imported
through ``PYTHONPATH``) the baseline runs in turns with this checkout, so both meet the
same load::

    python benchmarks/sandbox_pace.py --runs 2 --baseline-src /tmp/base/src
    python benchmarks/sandbox_pace.py --what rehearse --faults error_rate,latency

Needs what the demo needs (git, kubectl, openssl, Debian's prometheus and PostgreSQL
server binaries). No target of its own: issue 27's suite spends about a third of its
time in sandbox worlds (demos, rehearsals, the production topology).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "src/shipcaptain/sandbox/assets/valuecanvas.yaml"
METRICS_FAULTS = "prometheus_unreachable,error_rate,latency"


def run(what: str, src: Path | None, faults: str) -> dict[str, float]:
    """One whole run of ``shipcaptain demo`` or ``rehearse``; its figures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory(prefix="sandbox-pace-") as folder:
        here = Path(folder)
        env["SHIPCAPTAIN_DATA_DIR"] = str(here / "data")
        env["SHIPCAPTAIN_WEBHOOK_URL"] = "http://127.0.0.1:9/nothing-listens"
        command = [sys.executable, "-m", "shipcaptain.cli.main"]
        if what == "demo":
            command += ["demo", "--workspace", str(here / "sandbox")]
        else:
            command += ["rehearse", str(ASSET), "--report-dir", str(here / "report")]
            command += [f"--fault={name}" for name in faults.split(",")]
        began = time.monotonic()
        done = subprocess.run(
            command, env=env, cwd=here, capture_output=True, text=True, check=False
        )
        figures = {"wall": time.monotonic() - began}
        if done.returncode != 0:
            raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}")
        if what == "rehearse":
            report = json.loads((here / "report" / "report.json").read_text())
            figures["world set-up"] = float(report["timing"]["world_setup_s"])
            for row in report["faults"]:
                figures[row["fault"]] = float(row["seconds"])
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=["demo", "rehearse", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--faults", default=METRICS_FAULTS, help="the rehearsal's faults")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="another checkout's src/: run in turns with this one, in the same run",
    )
    args = parser.parse_args()
    if args.baseline_src is not None and not (args.baseline_src / "shipcaptain").is_dir():
        raise SystemExit(f"--baseline-src {args.baseline_src}: no shipcaptain package in it")
    kinds = ["demo", "rehearse"] if args.what == "both" else [args.what]
    sources: list[tuple[str, Path | None]] = [("this checkout", ROOT / "src")]
    if args.baseline_src is not None:
        sources.insert(0, ("baseline", args.baseline_src))
    seen: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.runs):
        for what in kinds:
            for label, src in sources:
                figures = run(what, src, args.faults)
                seen.setdefault((what, label), []).append(figures)
                shown = ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
                print(f"{what:8} {label:13} {shown}", flush=True)
    print("\nmedians:")
    for (what, label), runs in seen.items():
        names = list(runs[0])
        shown = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.1f} s" for k in names)
        print(f"  {what:8} {label:13} {shown}")
    print(f"  (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
