"""What starting the CLI imports: ``--help`` and the read-only commands must not pay for the
engine (DBOS), the web stack or the integrations' clients; those load only inside the
commands that run releases.

Each case runs the CLI in a fresh interpreter (a subprocess: this process has imported
everything already) and reads back the names in its ``sys.modules`` once the command has
finished. This checks behaviour (what was imported), not time; benchmarks/cli_startup.py
measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: a CLI process that prints its sys.modules, after the command ran, as the last line of stderr
DRIVER = textwrap.dedent(
    """
    import json, sys
    from shipcaptain.cli.main import cli
    code = 0
    try:
        cli(sys.argv[1:], prog_name="shipcaptain")
    except SystemExit as exc:
        code = exc.code
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
    sys.exit(code)
    """
)

#: never imported to show help: the state store and its driver layer, the engine, the web
#: and HTTP stack, templating, settings/validation and the integrations' clients
HEAVY_FOR_HELP = (
    "dbos",
    "sqlalchemy",
    "psycopg",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "jinja2",
    "kubernetes",
    "fastapi",
    "starlette",
    "uvicorn",
    "rich",
    "ruamel",
    "shipcaptain.store",
    "shipcaptain.engine",
    "shipcaptain.client",
    "shipcaptain.settings",
    "shipcaptain.web",
)


def run_cli(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    assert lines, f"the driver printed no module list:\n{done.stderr}"
    return done, set(json.loads(lines[-1][len("MODULES ") :]))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The packages of ``names`` of which any module is in ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize("args", [["--help"], ["release", "--help"], ["release", "list", "-h"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    done, modules = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert "Usage: shipcaptain" in done.stdout
    assert loaded(modules, HEAVY_FOR_HELP) == []
    # the probe itself can fail: the command modules were imported
    assert "shipcaptain.cli.commands_release" in modules
