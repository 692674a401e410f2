"""squawk's findings for migration files (the ``squawk`` command from squawk-cli).

Rules about retry-safety and timeouts are noise for a release captain and are left out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from shipcaptain.errors import ActionError

_NOISE = {"prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout"}


def squawk_path() -> str | None:
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.exists() else shutil.which("squawk")


def squawk_findings(paths: list[Path]) -> dict[Path, list[str]]:
    """``{file: ["rule: message", ...]}``; empty when squawk is not installed."""
    exe = squawk_path()
    if exe is None or not paths:
        return {}
    proc = subprocess.run(
        [exe, "--reporter", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        items = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ActionError(f"squawk gave no JSON: {proc.stderr.strip()[:300]}") from exc
    out: dict[Path, list[str]] = {p: [] for p in paths}
    for item in items:
        if item.get("rule_name") in _NOISE:
            continue
        line = f"{item.get('rule_name')}: {item.get('message')}"
        out.setdefault(Path(item["file"]), []).append(line)
    return out
