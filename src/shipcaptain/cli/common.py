"""What every command shares: the context object, error handling, common options and the
documented exit codes."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from shipcaptain.client import Client
    from shipcaptain.contract import Service
    from shipcaptain.records import Person
    from shipcaptain.remote import RemoteClient
    from shipcaptain.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES = {
    0: "success",
    1: "a bug in shipcaptain (the message says where the debug log is)",
    2: "invalid input: a bad runbook, flag, parameter or setting",
    3: "not found: no such release, step or gate",
    4: "permission denied: your role or separation of duties forbids it",
    5: "invalid state: e.g. approving a gate that is already closed",
    6: "an action could not run",
    7: "the state database cannot be reached or is not usable",
    10: "the release ended failed or rolled back",
    11: "the release was cancelled",
    12: "the release waits for people at a gate and was handed to the workers "
    "(`release start`/`resume` without --stay): not finished, decide with `release approve`",
}


class Obj:
    """What the root command hands to subcommands: settings, and the client contract
    (:attr:`service`) chosen once: a server's (--server / SHIPCAPTAIN_SERVER) or the state
    database's, as the person of the token."""

    def __init__(self, settings_kw: dict[str, Any]) -> None:
        self.settings_kw = settings_kw
        self._settings: Settings | None = None
        self._reads_only = False
        self._full_settings = False
        self._client: Client | None = None
        self._person: Person | None = None
        self._service: Service | None = None
        self._remotes: list[RemoteClient] = []

    def reads_only(self) -> None:
        """Say, before anything is opened, that this command only reads the state database:
        a current SQLite database is read without SQLAlchemy (issue 27: ``release list``
        within 2x ``--help``), with the same records and errors."""
        self._reads_only = True

    def full_settings(self) -> None:
        """Say, before the settings are read, that this command needs the ``Settings`` class
        itself (the sandbox's commands copy it, ``model_copy``). Every other command reads
        them without pydantic-settings (``settings_env.read_settings``, ~45 ms of each
        command's start, issue 27): the same values under the same names, anything it is
        unsure of read by ``Settings``, which gives the value or the error as always."""
        self._full_settings = True

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            if not self._full_settings:
                from shipcaptain.settings_env import read_settings

                # the same values under the same names (SettingsValues); None: only the
                # full settings can say
                self._settings = cast("Settings | None", read_settings(**self.settings_kw))
            if self._settings is None:
                from shipcaptain.settings import load_settings

                self._settings = load_settings(**self.settings_kw)
        return self._settings

    @property
    def client(self) -> Client:
        """The state database's client: for what runs in this process (an engine, a
        runbook checked here); people's commands go through :attr:`service`."""
        if self._client is None:
            from shipcaptain.client import Client

            self._client = Client(self.settings, read_only=self._reads_only)
        return self._client

    @property
    def person(self) -> Person:
        """Who is acting on the state database: the person whose token is shown
        (SHIPCAPTAIN_TOKEN, else the token ``shipcaptain login`` saved);
        AuthenticationFailed without a valid one."""
        if self._person is None:
            from shipcaptain.errors import AuthenticationFailed
            from shipcaptain.identity import saved_token, token_file

            token = self.settings.token.get_secret_value() or saved_token()
            if not token:
                raise AuthenticationFailed(
                    "you are not logged in: run `shipcaptain login` (it saves your token in "
                    f"{token_file()}) or set SHIPCAPTAIN_TOKEN"
                )
            self._person = self.client.person_of(token)
        return self._person

    @property
    def service(self) -> Service:
        """The client contract, as the person of the token: the server's client with
        --server, else the state database's (the person authenticated on first use)."""
        if self._service is None:
            if self.settings.server:
                from shipcaptain.identity import saved_token

                token = self.settings.token.get_secret_value() or saved_token() or ""
                self._service = self.service_for(token)
            else:
                from shipcaptain.session import LocalSession

                self._service = LocalSession(self.client, lambda: self.person)
        return self._service

    def service_for(self, token: str) -> Service:
        """The client contract as the person of ``token`` (``login`` checks one)."""
        if self.settings.server:
            from shipcaptain.remote import RemoteClient

            remote = RemoteClient(self.settings.server, token)
            self._remotes.append(remote)
            return remote
        return self.client.session(token)

    def bootstrap(self) -> Service:
        """The state database's client as no one yet (``--bootstrap``: the first team file
        and admin token, checked by the callee)."""
        if self.settings.server:
            from shipcaptain.errors import UsageError

            raise UsageError(
                "--bootstrap is direct access to the state database: run it where the "
                "database is reachable (SHIPCAPTAIN_DATABASE_URL), without --server"
            )
        from shipcaptain.session import LocalSession

        return LocalSession(self.client, lambda: None)

    @property
    def runs_here(self) -> bool:
        """Whether this process runs the releases it starts (on the state database), or a
        server's workers do (--server): the one place the two differ by nature."""
        return not self.settings.server

    @property
    def user(self) -> str:
        """Who acts: the token's person (on the server with --server, else here)."""
        return self.service.user

    def engine_process(self, command: str) -> None:
        """``worker`` and ``server`` run on the state database itself: --server is no way
        to reach it."""
        if self.settings.server and not self.settings.database_url:
            from shipcaptain.errors import UsageError

            raise UsageError(
                f"`shipcaptain {command}` runs on the state database, not through a server: "
                "set SHIPCAPTAIN_DATABASE_URL (--server / SHIPCAPTAIN_SERVER is for the "
                "commands people run)"
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for remote in self._remotes:
            remote.close()


def _debug_log_path() -> Path:
    try:
        from shipcaptain.settings import load_settings

        path = load_settings().log_path
    except Exception:
        path = Path.cwd() / "shipcaptain-debug.log"
    return path


def handle_errors(func: F) -> F:
    """Users' mistakes: one clear message and the documented exit code. Bugs: say so,
    write the traceback to the debug log, exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from shipcaptain.errors import ShipError

        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        as_json = bool(ctx.params.get("as_json"))
        try:
            return func(*args, **kwargs)
        except ShipError as exc:
            if debug:
                traceback.print_exc()
            if as_json:
                click.echo(json.dumps({"error": exc.to_dict()}, indent=2))
            else:
                click.echo(f"error[{exc.code}]: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:  # `release show | head`: the reader has what it wanted
            sys.stderr.close()
            sys.exit(0)
        except Exception as exc:
            path = _debug_log_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(traceback.format_exc())
            except OSError:
                pass
            if debug:
                traceback.print_exc()
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                f"This is a bug in shipcaptain; the traceback is in {path} "
                "(run with --debug to see it here).",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


#: worker and server: retire the log's audit key for this process's own (a deliberate key
#: rotation); without it they refuse to start with another key than the log's
ROTATE_AUDIT_KEY = click.option(
    "--rotate-audit-key",
    "rotate_audit_key",
    metavar="OLD_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Retire the audit key in OLD_KEY_FILE (the key the log is signed with now) for "
    "this process's key: the old key signs its last checkpoint and the new key a rotation "
    "checkpoint naming it, so `audit verify` with the new key checks the whole log. Give "
    "every other process the new key file. Without it the process refuses to start with "
    "another key than the log's.",
)


param_option = click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A runbook parameter, e.g. -p version=1.4.0 (repeatable).",
)
