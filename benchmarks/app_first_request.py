"""The CPU an application of ``shipcaptain server`` spends on its first requests: the API's
release list and the sign-in page, asked of each new application (made by ``create_app`` on
an empty SQLite state database, through Starlette's test client), then the same requests
again (the application warm).

Beside it, in the same run and the same process, the baseline: the same applications with
their routers included as FastAPI's ``include_router`` does (FastAPI 0.165 builds every route
of an included router again for each application, at its first request), in turns with
the current code. A server process makes one application: its first request pays this once;
the tests make one per test.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/app_first_request.py [--apps 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PATHS = ("/api/v1/releases", "/login")


def _cpu_ms(call: Callable[[], Any]) -> float:
    start = time.process_time()
    call()
    return (time.process_time() - start) * 1000


@contextmanager
def _included_the_fastapi_way() -> Iterator[None]:
    """create_app with its routers included by ``include_router`` (the baseline)."""
    from fastapi import APIRouter, FastAPI

    from shipcaptain.web import app as web_app

    def include(app: FastAPI, *routers: APIRouter) -> None:
        for router in routers:
            app.include_router(router)

    kept = web_app.add_routes
    web_app.add_routes = include
    try:
        yield
    finally:
        web_app.add_routes = kept


def _one_app() -> tuple[float, float]:
    """CPU (ms) of a new application's first requests, then of the same requests again."""
    from starlette.testclient import TestClient

    from shipcaptain.settings import load_settings
    from shipcaptain.web.app import create_app

    app = create_app(load_settings(), session_key="bench")
    with TestClient(app) as client:

        def ask() -> None:
            for path in PATHS:
                client.get(path)

        return _cpu_ms(ask), _cpu_ms(ask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=12, help="applications of each kind")
    args = parser.parse_args()
    os.environ["SHIPCAPTAIN_DATA_DIR"] = tempfile.mkdtemp(prefix="sc-app-bench-")
    _one_app()  # the process's imports and the database's creation, counted for neither
    now: list[tuple[float, float]] = []
    before: list[tuple[float, float]] = []
    for _ in range(args.apps):
        now.append(_one_app())
        with _included_the_fastapi_way():
            before.append(_one_app())
    print(f"{args.apps} applications of each kind, in turns; CPU ms, median (min)")
    print(f"{'routes':<34}{'first requests':>18}{'the same again':>18}")
    for name, runs in (("added as made (now)", now), ("include_router (baseline)", before)):
        first = [r[0] for r in runs]
        again = [r[1] for r in runs]
        print(
            f"{name:<34}{statistics.median(first):>11.1f} ({min(first):4.1f})"
            f"{statistics.median(again):>11.1f} ({min(again):4.1f})"
        )


if __name__ == "__main__":
    main()
