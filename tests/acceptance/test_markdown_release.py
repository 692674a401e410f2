"""`shipcaptain release start RUNBOOK.md`: the real CLI runs a Markdown runbook directly
(imported in memory) on SQLite and PostgreSQL; its mistakes point at Markdown lines."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.team import make_team

CLI = [sys.executable, "-m", "shipcaptain.cli.main"]

RUNBOOK = """\
# Tiny release

## Roles
- **Release Captain:** runs it

## Build
1. Tag it: `touch tagged-<version>`
2. Wait 1 seconds for the caches.
<!-- shipcaptain: id=notes -->
3. Write the notes:
   ```bash
   echo "notes for <version>" >> effects
   ```

## Rollback
- Remove the tag: `rm -f tagged-<version>`
"""


@functools.cache
def _tokens(database_url: str) -> dict[str, str]:
    return make_team(database_url)


def run(database_url: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(workdir / "data"),
        "SHIPCAPTAIN_POLL_INTERVAL": "0.05",
        "SHIPCAPTAIN_TOKEN": _tokens(database_url)["casey"],
    }
    return subprocess.run(
        [*CLI, *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_release_start_runs_a_markdown_runbook(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "RUNBOOK.md").write_text(RUNBOOK, encoding="utf-8")
    done = run(database_url, tmp_path, "release", "start", "RUNBOOK.md", "-p", "version=2.0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "tagged-2.0.1").exists()
    assert (tmp_path / "effects").read_text() == "notes for 2.0.1\n"

    listed = json.loads(run(database_url, tmp_path, "release", "list", "--json").stdout)
    shown = run(database_url, tmp_path, "release", "show", listed[0]["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    steps = {s["id"]: s["status"] for s in json.loads(shown.stdout)["steps"]}
    assert steps == {
        "tag_it": "succeeded",
        "wait_1_seconds_for_the_caches": "succeeded",
        "notes": "succeeded",
    }


def test_a_mistake_in_a_markdown_runbook_names_its_line(database_url: str, tmp_path: Path) -> None:
    text = RUNBOOK.replace(
        "<!-- shipcaptain: id=notes -->", "<!-- shipcaptain: id=notes needs=tag -->"
    )
    (tmp_path / "RUNBOOK.md").write_text(textwrap.dedent(text), encoding="utf-8")
    done = run(database_url, tmp_path, "release", "start", "RUNBOOK.md", "-p", "version=2.0.1")
    assert done.returncode == 2
    # the step's line is its command's line, inside the item that carries the annotation
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.strip().startswith("echo"))
    assert f"RUNBOOK.md:{line}: phases[0].steps[2].needs" in done.stderr
    assert "'tag'" in done.stderr
    assert not (tmp_path / "tagged-2.0.1").exists()
