"""The sandbox's production database: a PostgreSQL primary with a streaming read replica
(``shipcaptain.sandbox.postgres``) holding ValueCanvas's schema before the release. The
release's migrations add two columns to ``canvases`` and an index (expand) and, once the
app no longer reads it, drop ``legacy_owner`` (contract).

From the command line (the tutorial runs it next to a release started by hand)::

    python -m shipcaptain.sandbox.production_database --env-file WS/database.env

writes ``DATABASE_URL=...`` and ``REPLICA_URL=...`` to the file (and prints them) and serves
until it is stopped (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import psycopg

from shipcaptain.sandbox.postgres import PostgresWithReplica, unavailable_reason
from shipcaptain.sandbox.service import print_env, serve_until_stopped

SCHEMA = """
create table canvases (id bigint generated always as identity primary key, name text not null,
                       legacy_owner text);
insert into canvases (name, legacy_owner) values ('Q3 plan', 'casey'), ('Pricing', 'fola');
"""


class ProductionDatabase(PostgresWithReplica):
    def start(self) -> ProductionDatabase:
        super().start()
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
        return self

    def env(self) -> dict[str, str]:
        """The variables the runbook's database steps read."""
        return {"DATABASE_URL": self.primary_url, "REPLICA_URL": self.replica_url}

    def replica_report(self) -> str:
        """What the migrations left on the read replica (streamed from the primary)."""
        with psycopg.connect(self.replica_url, autocommit=True) as conn:
            columns = [
                str(r[0])
                for r in conn.execute(
                    "select column_name from information_schema.columns "
                    "where table_name = 'canvases' order by ordinal_position"
                )
            ]
            history = conn.execute(
                "select to_regclass('supabase_migrations.schema_migrations')"
            ).fetchone()
            versions = (
                [
                    str(r[0])
                    for r in conn.execute(
                        "select version from supabase_migrations.schema_migrations order by version"
                    )
                ]
                if history and history[0]
                else []
            )
        return (
            f"read replica: canvases({', '.join(columns)}); "
            f"migrations {', '.join(versions) or 'none'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.production_database",
        description="Run the sandbox's production database (a PostgreSQL primary with a "
        "streaming replica); print its variables; remove it when stopped.",
    )
    parser.add_argument("--env-file", type=Path, help="also write the variables to this file")
    args = parser.parse_args(argv)
    if reason := unavailable_reason():
        print(f"cannot start PostgreSQL here: {reason}")
        return 1
    db = ProductionDatabase()

    def started() -> None:
        print_env(db.env(), args.env_file)

    serve_until_stopped(db, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
