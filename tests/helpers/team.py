"""A team with tokens for tests that drive the CLI (every CLI call is authenticated)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from shipcaptain import identity
from shipcaptain.cli.main import cli
from shipcaptain.permissions import ACTIONS
from shipcaptain.records import Person
from shipcaptain.store import open_store

#: Every person the CLI tests act as.
EVERYONE = ("ops", "casey", "sam", "fola", "dev", "dana", "erin", "bob", "carol", "riley", "ann")

#: Anyone on the team may do anything the table governs; gates still check the runbook's
#: roles and separation of duties (tests of the table itself give their own).
OPEN_PERMISSIONS: dict[str, dict[str, list[str]]] = {action: {"*": ["*"]} for action in ACTIONS}

#: The tests' team runs any runbook anywhere (production is protected by default).
OPEN_ENVIRONMENTS: dict[str, dict[str, bool]] = {"production": {"protected": False}}

#: The tests' people hold every role the team grants ("*"); a runbook's ``members``
#: narrow it, so its roles decide at gates as the runbook says.
EVERY_ROLE: dict[str, tuple[str, ...]] = {"*": ("*",)}


def make_team(
    database_url: str,
    people: Iterable[str | Person] = EVERYONE,
    *,
    admin: str = "casey",
    permissions: Mapping[str, Any] | None = None,
    environments: Mapping[str, Any] | None = None,
    expires_in: float | None = None,
) -> dict[str, str]:
    """Store a team (``admin`` is its admin) and a token for each person; name -> token.
    A person given by name holds every role (the runbook's members narrow it)."""
    members: list[Person] = []
    for entry in people:
        person = Person(name=entry, roles=EVERY_ROLE) if isinstance(entry, str) else entry
        if person.name == admin:
            person = Person(**{**person.__dict__, "admin": True})
        members.append(person)
    with open_store(database_url) as store:
        store.migrate()
        store.put_team(
            members,
            actor="test",
            message="the tests' team",
            data={},
            permissions=dict(permissions if permissions is not None else OPEN_PERMISSIONS),
            environments=dict(environments if environments is not None else OPEN_ENVIRONMENTS),
        )
        secret, _ = identity.create_token(store, admin, expires_in=None, label="test admin")
        by = identity.authenticate(store, secret)
        tokens = {admin: secret}
        for person in members:
            if person.name != admin:
                tokens[person.name], _ = identity.create_token(
                    store, person.name, expires_in=expires_in, label="test", by=by
                )
    return tokens


def token_env(tokens: Mapping[str, str], user: str) -> dict[str, str]:
    """The environment that makes the CLI act as ``user``."""
    return {"SHIPCAPTAIN_TOKEN": tokens[user]}


def people(*names: str, roles: Sequence[str] = ()) -> list[Person]:
    return [Person(name=n, roles={"*": tuple(roles)} if roles else {}) for n in names]


#: the CLI as a child process
CLI = [sys.executable, "-m", "shipcaptain.cli.main"]


def run_here(
    env: Mapping[str, str], workdir: Path, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``shipcaptain ARGS`` run in this process (click's runner) with the settings a child
    given ``env`` and started in ``workdir`` would see (only its SHIPCAPTAIN_ and XDG_
    variables count; ``token``, when given, replaces SHIPCAPTAIN_TOKEN). For commands that
    prepare a test or only read the state it checks: the same command, exit code and output
    without a child's start-up (about 0.8 s of CPU of imports). Never for a command that runs
    an engine (``release start`` without --detach, ``worker``, ``server``): those launch
    DBOS, a singleton of the process."""
    overrides: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("SHIPCAPTAIN_")
    }
    overrides |= {k: v for k, v in env.items() if k.startswith(("SHIPCAPTAIN_", "XDG_"))}
    if token is not None:
        overrides["SHIPCAPTAIN_TOKEN"] = token
    here = os.getcwd()
    os.chdir(workdir)
    try:
        done = CliRunner(env=overrides).invoke(
            cli, list(args), prog_name="shipcaptain", catch_exceptions=False
        )
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(list(args), done.exit_code, done.stdout, done.stderr)


class People:
    """The CLI run as one person or another, on one database, from one folder."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.workdir = workdir
        base = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
        self.env = {
            **base,
            "SHIPCAPTAIN_DATABASE_URL": database_url,
            "SHIPCAPTAIN_DATA_DIR": str(workdir / "data"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
        self.outputs: list[str] = []

    def run(
        self, *args: str, token: str | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if token is not None:
            env["SHIPCAPTAIN_TOKEN"] = token
        done = subprocess.run(
            [*CLI, *args],
            env=env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def token(self, *args: str, token: str | None = None) -> str:
        done = self.run("token", "create", *args, "--json", token=token)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])

    def setup(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """The CLI run in this process (click's runner) with the same settings: for the
        commands that only prepare a test (``team apply``, ``token create``) or only read
        what it looks at, where a child process would add its start-up and nothing the test
        looks at. Paths are taken from the folder, as a child started there would."""
        done = run_here(self.env, self.workdir, *args, token=token)
        self.outputs += [done.stdout, done.stderr]
        return done

    def setup_token(self, *args: str, token: str | None = None) -> str:
        """``token create ... --json`` in this process (see :meth:`setup`)."""
        done = self.setup("token", "create", *args, "--json", token=token)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])
