"""``shipcaptain server``: the dashboard and the API in one process (uvicorn), with the
engine's workers unless told not to."""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path

import uvicorn

from shipcaptain.settings import Settings
from shipcaptain.web.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 takes a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: a keep-alive answer is not held back ~40 ms for the
    # client's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    run_workers: bool,
    runbook_root: Path,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> None:
    app = create_app(settings, run_workers=run_workers, runbook_root=runbook_root)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    scheme = "https" if certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app,
        log_level="debug" if settings.debug else "warning",
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_graceful_shutdown=2,
        access_log=settings.debug,
    )
    server = uvicorn.Server(config)
    print(f"shipcaptain server on {scheme}://{shown}:{bound}/", flush=True)
    print(
        "workers: " + ("running in this process" if run_workers else "none (--no-workers)"),
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly, then passes it on
        server.run(sockets=[sock])
