"""The suite never reads the developer's own settings or credentials.

A developer's shell may hold ``SHIPCAPTAIN_*`` settings (a real Slack webhook, a production
database URL, a token) or the credentials the actions read (``GITHUB_TOKEN``, ``KUBECONFIG``,
``DATABASE_URL``...). Tests and every subprocess they start must see only what the test sets,
so :func:`scrub` removes them from the environment before any test runs. What configures the
test run itself (``SHIPCAPTAIN_TEST_*``, ``SHIPCAPTAIN_REQUIRE_*``, the PostgreSQL binaries,
screenshots) is kept.
"""

from __future__ import annotations

from collections.abc import MutableMapping

#: settings of the test run itself, kept
KEPT_PREFIXES = ("SHIPCAPTAIN_TEST_", "SHIPCAPTAIN_REQUIRE_")
KEPT = frozenset({"SHIPCAPTAIN_PG_BIN", "SHIPCAPTAIN_SCREENSHOTS"})

#: credentials and endpoints that the actions read from the environment
CREDENTIALS = frozenset(
    {
        "DATABASE_URL",
        "REPLICA_URL",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_API_URL",
        "KUBECONFIG",
        "SLACK_BOT_TOKEN",
        "SLACK_WEBHOOK_URL",
        "PROMETHEUS_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSERVICE",
    }
)


def scrub(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the developer's settings and credentials from ``environ``; the names removed."""
    removed = [
        name
        for name in environ
        if name in CREDENTIALS
        or (
            name.startswith("SHIPCAPTAIN_")
            and name not in KEPT
            and not name.startswith(KEPT_PREFIXES)
        )
    ]
    for name in removed:
        del environ[name]
    return sorted(removed)
