"""The suite runs without the developer's own settings and credentials."""

from __future__ import annotations

import os

from helpers.environment import scrub


def test_scrub_removes_settings_and_credentials_and_keeps_the_test_run_s_own() -> None:
    environ = {
        "SHIPCAPTAIN_SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T000/B000/xyz",
        "SHIPCAPTAIN_DATABASE_URL": "postgresql://prod.example.invalid/state",
        "SHIPCAPTAIN_TOKEN": "sc_live_secret",
        "GITHUB_TOKEN": "ghp_secret",
        "KUBECONFIG": "/home/dev/.kube/prod",
        "DATABASE_URL": "postgresql://prod.example.invalid/app",
        "SHIPCAPTAIN_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "SHIPCAPTAIN_REQUIRE_POSTGRES": "1",
        "SHIPCAPTAIN_PG_BIN": "/usr/lib/postgresql/15/bin",
        "PATH": "/usr/bin",
        "HOME": "/root",
    }
    removed = scrub(environ)
    assert removed == [
        "DATABASE_URL",
        "GITHUB_TOKEN",
        "KUBECONFIG",
        "SHIPCAPTAIN_DATABASE_URL",
        "SHIPCAPTAIN_SLACK_WEBHOOK_URL",
        "SHIPCAPTAIN_TOKEN",
    ]
    assert environ == {
        "SHIPCAPTAIN_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "SHIPCAPTAIN_REQUIRE_POSTGRES": "1",
        "SHIPCAPTAIN_PG_BIN": "/usr/lib/postgresql/15/bin",
        "PATH": "/usr/bin",
        "HOME": "/root",
    }


def test_the_suite_s_own_environment_was_scrubbed() -> None:
    # conftest scrubbed os.environ before any test: nothing of the developer's is left
    assert scrub(dict(os.environ)) == []
