"""A throwaway PostgreSQL cluster standing in for the application's logs database, so the
demo's ``sql_check`` step runs a real read-only query against real PostgreSQL.

The server is the sandbox's throwaway PostgreSQL (``shipcaptain.sandbox.postgres``: it
says where the server programs come from). ``available()`` says whether it can start here;
the demo says so when it cannot.
"""

from __future__ import annotations

import psycopg

from shipcaptain.sandbox.postgres import PostgresServer, unavailable_reason
from shipcaptain.sandbox.service import Service, serve_until_stopped

#: the logs of the last days: ordinary lines, and one RLS error from two days ago
SEED = """
create table logs (at timestamptz not null, level text not null, message text not null);
insert into logs values
  (now() - interval '2 days', 'error',
   'new row violates row-level security policy for table "canvases"'),
  (now() - interval '20 minutes', 'info', 'GET /api/canvases 200'),
  (now() - interval '5 minutes', 'info', 'POST /api/canvases/42/archive 200');
"""


def available() -> bool:
    return unavailable_reason() is None


class LogsDatabase(Service):
    """``with LogsDatabase() as db: db.url`` -> ``postgresql://postgres@127.0.0.1:<port>/logs``."""

    def __init__(self, port: int = 0) -> None:
        self.server = PostgresServer(port=port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/logs"

    def start(self) -> LogsDatabase:
        self.server.start()
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute("create database logs")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(SEED.encode())
        return self

    def stop(self) -> None:
        self.server.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m shipcaptain.sandbox.logs_database``: print the URL, serve until stopped."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.logs_database",
        description="Run the sandbox's logs database (PostgreSQL); print its URL; "
        "remove it when stopped.",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes a free one")
    args = parser.parse_args(argv)
    if not available():
        print(f"cannot start PostgreSQL here: {unavailable_reason()}")
        return 1
    db = LogsDatabase(port=args.port)
    serve_until_stopped(db, lambda: print(db.url, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
