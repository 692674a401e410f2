"""A throwaway PostgreSQL primary with a streaming replica for the tests: the sandbox's
(``shipcaptain.sandbox.postgres``), which the demo uses too."""

from __future__ import annotations

import os

from shipcaptain.sandbox.postgres import PostgresWithReplica, unavailable_reason

Cluster = PostgresWithReplica
primary_with_replica = PostgresWithReplica


def available() -> bool:
    """PostgreSQL's server programs are here, or CI requires PostgreSQL: then the tests run
    and fail loudly rather than being skipped."""
    return bool(os.environ.get("SHIPCAPTAIN_REQUIRE_POSTGRES")) or unavailable_reason() is None
