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
import os
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


def run_on_state(
    state: tuple[dict[str, str], Path, str],
    args: list[str],
    more_env: dict[str, str] | None = None,
) -> tuple[list[str], subprocess.CompletedProcess[str], set[str]]:
    """``args`` (``{release}`` standing for the state's release) run on the state database
    (with ``more_env``): the command line, the process and the modules it imported."""
    env, folder, release_id = state
    argv = [a.replace("{release}", release_id) for a in args]
    done, modules = run_cli(argv, env={**env, **(more_env or {})}, cwd=folder)
    return argv, done, modules


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


# ---- read-only commands: they read the state database and never import the engine -------

#: the engine (DBOS and the modules that run releases), the web stack and the integrations'
#: clients: a command that only reads the state database imports none of them
ENGINE_AND_SERVICES = (
    "dbos",
    "shipcaptain.engine.engine",
    "shipcaptain.engine.workflows",
    "shipcaptain.engine.steps",
    "shipcaptain.engine.runtime",
    "httpx",
    "kubernetes",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",  # the state database of these cases is SQLite
    "shipcaptain.web.app",
    "shipcaptain.actions.http",
    "shipcaptain.actions.k8s",
    "shipcaptain.actions.github",
)
#: what only a process that runs releases imports (a worker, a release that runs in the
#: terminal): a command that hands DBOS a release or a message takes DBOS's client alone
ENGINE_ONLY = (
    "shipcaptain.engine.engine",
    "shipcaptain.engine.workflows",
    "shipcaptain.engine.steps",
    "shipcaptain.engine.runtime",
)
#: what only a command that reads or runs a runbook needs: the runbook loader (YAML),
#: templating (Jinja) and the plan
RUNBOOK_MACHINERY = ("jinja2", "ruamel", "shipcaptain.plan", "shipcaptain.runbook.loader")

SHELL_ONLY = """\
name: shell-only
phases:
  - id: build
    steps:
      - {id: a, action: shell, with: {command: "true"}}
"""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, str]:
    """A SQLite state database with a team and one queued release: the CLI's environment,
    its working folder and the release's id."""
    from helpers.team import make_team, token_env

    folder = tmp_path_factory.mktemp("cli-imports")
    url = f"sqlite:///{folder / 'state.db'}"
    tokens = make_team(url)
    (folder / "runbook.yaml").write_text(SHELL_ONLY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_DATA_DIR": str(folder / "data"),
        "XDG_CONFIG_HOME": str(folder / "config"),
        **token_env(tokens, "casey"),
    }
    done, modules = run_cli(
        ["release", "start", "runbook.yaml", "--detach", "--json"], env=env, cwd=folder
    )
    assert done.returncode == 0, done.stderr
    # the probe sees what a command imports: queueing a release for a worker takes DBOS's
    # client, not the engine that runs releases (a worker's)
    assert "dbos" in modules
    assert loaded(modules, ENGINE_ONLY) == []
    return env, folder, json.loads(done.stdout)["id"]


READ_ONLY = [
    (["release", "list"], True),
    (["release", "list", "--json"], True),
    (["release", "show", "{release}"], False),
    (["release", "show", "{release}", "--json"], False),
    (["release", "rollback", "{release}", "--dry-run"], False),
    (["workers"], True),
    (["workers", "--json"], True),
    (["incident", "list"], True),
    (["audit", "verify"], True),
    (["token", "list"], True),
]


@pytest.mark.parametrize(("args", "store_only"), READ_ONLY, ids=[" ".join(a) for a, _ in READ_ONLY])
def test_read_only_commands_never_import_the_engine(
    state: tuple[dict[str, str], Path, str], args: list[str], store_only: bool
) -> None:
    release_id = state[2]
    argv, done, modules = run_on_state(state, args)
    assert done.returncode == 0, done.stderr
    if "list" in argv and "release" in argv:
        assert release_id in done.stdout  # it did read the state database
    assert "shipcaptain.store" in modules
    assert loaded(modules, ENGINE_AND_SERVICES) == []
    if store_only:  # no runbook to read: no YAML, no Jinja, no plan
        assert loaded(modules, RUNBOOK_MACHINERY) == []


#: the commands that only read, on a current SQLite state database: the standard library's
#: sqlite3 reads it (shipcaptain.store.sqlite_read) and the settings are read without
#: pydantic-settings (shipcaptain.settings_env); issue 27
READ_PATH = [
    ["release", "list"],
    ["release", "list", "--json"],
    ["release", "show", "{release}"],
    ["release", "show", "{release}", "--json"],
    ["workers"],
    ["incident", "list"],
    ["audit", "verify"],
]
#: what the read path never imports: the store on SQLAlchemy, pydantic-settings, the engine
NOT_ON_THE_READ_PATH = ("sqlalchemy", "pydantic_settings", "dbos", "shipcaptain.settings")


@pytest.mark.parametrize("args", READ_PATH, ids=[" ".join(a) for a in READ_PATH])
def test_read_commands_on_sqlite_import_neither_sqlalchemy_nor_pydantic_settings(
    state: tuple[dict[str, str], Path, str], args: list[str]
) -> None:
    release_id = state[2]
    argv, done, modules = run_on_state(state, args)
    assert done.returncode == 0, done.stderr
    assert "shipcaptain.store.sqlite_read" in modules  # it did read the state database
    if argv[:2] in (["release", "list"], ["release", "show"]):
        assert release_id in done.stdout
    assert loaded(modules, NOT_ON_THE_READ_PATH) == []
    if argv[:2] in (["release", "list"], ["release", "show"]):
        # nor pydantic: printing releases needs no model, and `show --json` writes the API's
        # document with shipcaptain.codec (tests/unit/test_release_document.py)
        assert loaded(modules, ("pydantic", "shipcaptain.web")) == []
    if argv[:2] == ["release", "show"]:
        # the steps come from the outline recorded with the release when it was created
        # (shipcaptain.runbook.outline): no YAML, runbook model, Jinja or action registry
        assert "shipcaptain.runbook.outline" in modules
        no_model = ("yaml", "ruamel", "jinja2", "shipcaptain.runbook.model")
        assert loaded(modules, (*no_model, "shipcaptain.actions")) == []


#: commands that write, with a cluster's numbers set (a heartbeat, a takeover time): their
#: settings are read without pydantic-settings too (every command but the sandbox's)
WRITE_WITH_NUMBERS = [
    ["release", "cancel", "{release}", "--reason", "not today"],
    ["token", "create", "--label", "ci", "--expires-in", "1h"],
]
NUMBERS = {
    "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
    "SHIPCAPTAIN_TAKEOVER_AFTER": "3",
    "SHIPCAPTAIN_POLL_INTERVAL": "0.05",
}


@pytest.mark.parametrize("args", WRITE_WITH_NUMBERS, ids=[" ".join(a) for a in WRITE_WITH_NUMBERS])
def test_commands_that_write_read_their_settings_without_pydantic_settings(
    state: tuple[dict[str, str], Path, str], args: list[str]
) -> None:
    _, done, modules = run_on_state(state, args, NUMBERS)
    assert done.returncode in (0, 1), done.stderr  # a finished release cannot be cancelled
    assert "shipcaptain.store" in modules  # it did open the state database
    assert loaded(modules, ("pydantic_settings", "shipcaptain.settings")) == []


def test_actions_are_imported_only_when_used() -> None:
    """The registry knows every installed action by name; a runbook of shell steps imports
    the shell action alone (not the HTTP, Kubernetes or GitHub ones and their clients)."""
    probe = textwrap.dedent(
        """
        import json, sys
        from shipcaptain.actions.registry import registry
        from shipcaptain.runbook.loader import parse_runbook
        names = registry.names()
        before = sorted(m for m in sys.modules if m.startswith("shipcaptain.actions."))
        parse_runbook(sys.argv[1], "runbook.yaml")
        after = sorted(m for m in sys.modules if m.startswith("shipcaptain.actions."))
        print(json.dumps({"names": names, "before": before, "after": after,
                          "httpx": "httpx" in sys.modules}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, SHELL_ONLY], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    assert {"shell", "http", "k8s_apply", "approval"} <= set(found["names"])
    assert "shipcaptain.actions.http" not in found["before"]
    assert "shipcaptain.actions.shell" in found["after"]
    assert "shipcaptain.actions.http" not in found["after"]
    assert found["httpx"] is False


def test_the_cli_leaves_its_heap_out_of_the_last_garbage_collection() -> None:
    """``main`` freezes the heap once the command is done: the interpreter's last collection
    then skips it (it walked the whole heap for 0.5-0.9 s after a ``release start``)."""
    probe = textwrap.dedent(
        """
        import atexit, gc, sys
        from shipcaptain.cli.main import main
        atexit.register(lambda: print("frozen", gc.get_freeze_count()))
        sys.argv = ["shipcaptain", "--help"]
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: shipcaptain" in done.stdout
    frozen = int(done.stdout.rsplit("frozen", 1)[1])
    assert frozen > 1000


def test_release_start_imports_the_engine_but_no_http_client(
    state: tuple[dict[str, str], Path, str],
) -> None:
    """Running a release here loads the engine (DBOS); with no notifier, pager or server
    configured, no HTTP client (httpx, and the rich and pygments it pulls in) is imported."""
    env, folder, _ = state
    done, modules = run_cli(["release", "start", "runbook.yaml", "--json"], env=env, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "succeeded"
    assert loaded(modules, ("dbos", "shipcaptain.engine.engine")) == [
        "dbos",
        "shipcaptain.engine.engine",
    ]
    assert loaded(modules, ("httpx", "rich", "pygments", "kubernetes", "fastapi")) == []


def test_release_start_on_sqlite_never_imports_the_postgresql_driver(
    state: tuple[dict[str, str], Path, str],
) -> None:
    """DBOS imports psycopg at the top of its modules even for SQLite; the engine has it
    imported only when used (shipcaptain/engine/dbos_import.py), so a release run here on
    a SQLite state database, or queued for a worker, never loads the driver (issue 27)."""
    env, folder, _ = state
    for args in (["--json"], ["--detach", "--json"]):
        done, modules = run_cli(["release", "start", "runbook.yaml", *args], env=env, cwd=folder)
        assert done.returncode == 0, done.stderr
        assert "dbos" in modules
        assert loaded(modules, ("psycopg", "psycopg_binary")) == []


def test_a_command_on_a_release_checks_its_recorded_roles_without_parsing_its_runbook(
    state: tuple[dict[str, str], Path, str],
) -> None:
    """Whoever cancels, resumes or decides on a release is checked against its runbook's
    roles, recorded with the release when it was created: the command parses no runbook
    (no YAML, runbook model or loader: about 0.2 s of an approval's 0.8 s of CPU)."""
    env, folder, _ = state
    done, modules = run_cli(
        ["release", "start", "runbook.yaml", "--detach", "--json"], env=env, cwd=folder
    )
    assert done.returncode == 0, done.stderr
    assert "shipcaptain.runbook.loader" in modules  # the probe sees a start parse it
    queued = json.loads(done.stdout)["id"]
    done, modules = run_cli(
        ["release", "cancel", queued, "--reason", "not today", "--json"], env=env, cwd=folder
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"
    assert loaded(modules, ("yaml", "ruamel", "shipcaptain.runbook.loader")) == []
    assert loaded(modules, ("shipcaptain.runbook.model",)) == []
