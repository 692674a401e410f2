"""``shipcaptain``: the root command. Commands live in ``commands_*`` modules; what they
share is in ``common``. docs/reference/cli.md is generated from this tree. Heavy modules are
imported inside commands so ``--help`` stays fast."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import traceback
from pathlib import Path

import click

from shipcaptain.cli import (
    commands_incident,
    commands_markdown,
    commands_migrations,
    commands_release,
    commands_runbook,
    commands_server,
    commands_team,
)
from shipcaptain.cli.common import EXIT_CODES, Obj

__all__ = ["EXIT_CODES", "cli", "main"]


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "SHIPCAPTAIN",
        "show_default": True,
    }
)
@click.option(
    "--database-url",
    envvar="SHIPCAPTAIN_DATABASE_URL",
    show_envvar=True,
    help="State database: sqlite:///file.db or postgresql://... "
    "[default: SQLite file under --data-dir]",
)
@click.option(
    "--data-dir",
    envvar="SHIPCAPTAIN_DATA_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where embedded state and logs live [default: ./.shipcaptain if present, "
    "else ~/.local/share/shipcaptain]",
)
@click.option(
    "--server",
    envvar="SHIPCAPTAIN_SERVER",
    show_envvar=True,
    help="URL of a `shipcaptain server`: every command people run (release, incident, sla, "
    "workers, team, token, login, audit, migrations apply) acts through its API, with the "
    "token in SHIPCAPTAIN_TOKEN; worker and server need the state database.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="SHIPCAPTAIN_DEBUG",
    show_envvar=True,
    help="Show tracebacks and debug logs.",
)
@click.version_option(package_name="shipcaptain", allow_from_autoenv=False)
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    data_dir: Path | None,
    server: str | None,
    debug: bool,
) -> None:
    """shipcaptain runs deployment runbooks as durable, auditable releases.

    You act as the person whose token you show: SHIPCAPTAIN_TOKEN, else the token
    `shipcaptain login` saved. Commands that only read files (validate, plan, import,
    export, schema, actions) need no token.

    \b
    Exit codes:
      0  success          5  invalid state
      1  bug              6  action could not run
      2  invalid input    7  state database unusable
      3  not found        10 release failed / rolled back
      4  permission       11 release cancelled
                          12 waiting at a gate, handed to workers
    """
    obj = Obj(
        {
            "database_url": database_url,
            "data_dir": data_dir,
            "server": server,
            "debug": debug or None,
        }
    )
    ctx.obj = obj
    ctx.call_on_close(obj.close)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


commands_runbook.register(cli)
commands_release.register(cli)
commands_markdown.register(cli)
commands_migrations.register(cli)
commands_incident.register(cli)
commands_team.register(cli)
commands_server.register(cli)


def _show_envvars(command: click.Command) -> None:
    """Every option names its SHIPCAPTAIN_* variable in --help (click's automatic ones)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.allow_from_autoenv:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


_show_envvars(cli)


#: objects allocated before a collection of the youngest generation (Python's default: 700).
#: Importing what a release needs (DBOS, SQLAlchemy, psycopg, pydantic) made 170 collections,
#: 11 % of the imports' CPU; at 20,000, five. The older generations are collected as often,
#: relative to it, as by default.
YOUNG_GENERATION = 20_000


#: seconds the interpreter may spend ending once a command has returned (joining threads,
#: exit handlers) before the process leaves without the threads still running.
EXIT_GRACE = 10.0
#: what ``main`` says (on stderr, before the threads' stacks) when it leaves threads behind
LEFT_BEHIND = "thread(s) did not end within"


def _exit_code(ended: SystemExit) -> int:
    if ended.code is None:
        return 0
    return ended.code if isinstance(ended.code, int) else 1


def _leave_within(grace: float, code: int) -> None:
    """Once a command has returned (its answer printed, its engine shut down, the store
    closed), the process ends within ``grace`` seconds with ``code``, whatever thread is
    still running: a thread that does not end (a gate's wait that missed the engine's stop
    held one for an hour, see ``engine._wait_left``) held the interpreter's exit after the
    command had answered. Such threads are named on stderr with their stacks, for a bug
    report."""
    main_thread = threading.main_thread()

    def leave() -> None:
        left = [t for t in threading.enumerate() if t is not main_thread and not t.daemon]
        frames = sys._current_frames()
        lines = [
            f"shipcaptain: the command ended, but {len(left)} {LEFT_BEHIND} "
            f"{grace:g}s; leaving without them (exit {code}). This is a bug: please report it "
            "with what follows."
        ]
        for thread in left:
            frame = frames.get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame, limit=8)) if frame else ""
            lines.append(f"thread {thread.name!r}:\n{stack}")
        try:
            sys.stdout.flush()
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()
        finally:
            os._exit(code)

    timer = threading.Timer(grace, leave)
    timer.name = "shipcaptain-exit"
    timer.daemon = True
    timer.start()


def main() -> None:
    gc.set_threshold(YOUNG_GENERATION, 10, 10)
    try:
        cli(prog_name="shipcaptain")
    except SystemExit as ended:
        _leave_within(EXIT_GRACE, _exit_code(ended))
        raise
    finally:
        # Everything is written and closed by now (click closed the context: the client,
        # the store, the engine). Leave the objects alive at exit out of the interpreter's
        # last garbage collection: with DBOS, SQLAlchemy and pydantic loaded it walked the
        # whole heap for 0.5-0.9 s after a `release start` had finished.
        gc.freeze()


if __name__ == "__main__":
    main()
