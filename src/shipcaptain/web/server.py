"""``shipcaptain server``: the dashboard and the API in one process (uvicorn), with the
engine's workers unless told not to."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

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


@contextlib.contextmanager
def serving_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a thread of this process (the demo, tests, benchmarks); yields
    its base URL; stops it on exit."""
    sock = bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


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
    if run_workers:
        print(app.state.web.host.engine_functions(), file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly, then passes it on
        server.run(sockets=[sock])
