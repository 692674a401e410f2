"""``shipcaptain server``: the web dashboard and the REST API."""

from __future__ import annotations

from pathlib import Path

import click

from shipcaptain.cli.common import ROTATE_AUDIT_KEY, Obj, handle_errors


@click.command()
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", default=8080, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--no-workers",
    is_flag=True,
    help="Serve only; releases run in separate `shipcaptain worker` processes.",
)
@click.option(
    "--runbooks",
    "runbook_root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of the runbooks a release may be started from by path "
    "[default: the current directory]",
)
@click.option(
    "--certfile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TLS certificate (PEM): serve https (session cookies are then Secure).",
)
@click.option(
    "--keyfile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TLS private key (PEM) of --certfile.",
)
@ROTATE_AUDIT_KEY
@click.pass_obj
@handle_errors
def server(
    obj: Obj,
    host: str,
    port: int,
    no_workers: bool,
    runbook_root: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    rotate_audit_key: Path | None,
) -> None:
    """Serve the web dashboard and the REST API (OpenAPI at /api/v1/openapi.json) on the
    state database, and run the engine's workers in the same process unless --no-workers.
    Prints the URL it listens on. Every request is made with a person's token; running
    workers takes the token of a person with the worker.run permission (as `worker` does).
    Refuses to start with an audit key that did not sign the newest event of the log
    (unless --rotate-audit-key)."""
    from shipcaptain.errors import UsageError
    from shipcaptain.web.server import serve

    obj.engine_process("server")
    if (certfile is None) != (keyfile is None):
        raise UsageError("--certfile and --keyfile go together")
    # before this process writes anything: a key of its own would forge the log
    rotated = obj.client.check_audit_key(rotate=rotate_audit_key)
    if not no_workers:
        obj.client.start_worker(
            "server",
            user=obj.person.name,
            executor_id=obj.settings.worker_id_or_default("server"),
            rotated=bool(rotated),
        )
    if rotated:
        click.echo(f"audit key rotated (--rotate-audit-key): {rotated}", err=True)
    serve(
        obj.settings,
        host=host,
        port=port,
        run_workers=not no_workers,
        runbook_root=runbook_root or Path.cwd(),
        certfile=certfile,
        keyfile=keyfile,
    )


def register(group: click.Group) -> None:
    group.add_command(server)
