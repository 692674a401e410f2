"""backup_recent (file, command, real PostgreSQL query) and verify_env."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from helpers.databases import postgres_database
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.preflight import BackupRecentAction, VerifyEnvAction
from shipcaptain.errors import ActionError

backup = BackupRecentAction()
verify = VerifyEnvAction()


def ctx(tmp_path: Path, env: dict[str, str] | None = None) -> StepContext:
    return StepContext(
        release_id="r", step_id="s", attempt=1, timeout=30, workdir=tmp_path, env=env or {}
    )


def test_backup_file_younger_than_the_limit_passes(tmp_path: Path) -> None:
    dump = tmp_path / "nightly.dump"
    dump.write_text("x")
    two_hours_ago = time.time() - 7200
    os.utime(dump, (two_hours_ago, two_hours_ago))
    outcome = backup.run(
        backup.parse_params({"path": "nightly.dump", "max_age": "24h"}), ctx(tmp_path)
    )
    assert outcome.ok, outcome.summary
    assert 7190 <= outcome.outputs["age_seconds"] <= 7300


def test_backup_file_too_old_fails_with_the_age_found(tmp_path: Path) -> None:
    dump = tmp_path / "nightly.dump"
    dump.write_text("x")
    old = time.time() - 30 * 3600
    os.utime(dump, (old, old))
    outcome = backup.run(
        backup.parse_params({"path": "nightly.dump", "max_age": "24h"}), ctx(tmp_path)
    )
    assert not outcome.ok
    assert outcome.summary.startswith("last backup is 1d6h"), outcome.summary
    assert outcome.summary.endswith("old (" + outcome.outputs["backup_at"] + "), more than 1d")


def test_missing_backup_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"nightly\.dump"):
        backup.run(backup.parse_params({"path": "nightly.dump"}), ctx(tmp_path))


def test_backup_time_from_a_command(tmp_path: Path) -> None:
    params = backup.parse_params(
        {"command": "echo checking; date -u -d '-3 hours' +%Y-%m-%dT%H:%M:%SZ", "max_age": "4h"}
    )
    outcome = backup.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    params = backup.parse_params({"command": "echo not-a-time"})
    with pytest.raises(ActionError, match="'not-a-time', not an ISO time"):
        backup.run(params, ctx(tmp_path))


def test_backup_time_from_a_sql_query(tmp_path: Path) -> None:
    with postgres_database("sc_backup") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create table backups (finished_at timestamptz)")
            conn.execute("insert into backups values (now() - interval '26 hours')")
        params = backup.parse_params({"sql": "select max(finished_at) from backups"})
        outcome = backup.run(params, ctx(tmp_path, {"DATABASE_URL": url}))
        assert not outcome.ok
        assert 26 * 3600 - 60 <= outcome.outputs["age_seconds"] <= 26 * 3600 + 60
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("insert into backups values (now() - interval '1 hour')")
        outcome = backup.run(params, ctx(tmp_path, {"DATABASE_URL": url}))
        assert outcome.ok, outcome.summary


def test_backup_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one of sql, path, command"):
        backup.parse_params({"path": "a", "command": "b"})


def test_verify_env_runs_the_script_and_never_prints_secret_values(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "verify-env.sh"
    script.parent.mkdir()
    script.write_text('#!/bin/bash\necho "env=$1 key=$STRIPE_KEY"\n')
    script.chmod(0o755)
    env = {"STRIPE_KEY": "sk_live_verysecret", "APP_URL": "https://app"}
    params = verify.parse_params(
        {"script": "./scripts/verify-env.sh production", "required": ["STRIPE_KEY", "APP_URL"]}
    )
    outcome = verify.run(params, ctx(tmp_path, env))
    assert outcome.ok, outcome.summary
    assert "env=production key=***" in outcome.detail
    assert "verysecret" not in outcome.model_dump_json()


def test_verify_env_names_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "prod.env").write_text("APP_URL=https://app\nSTRIPE_KEY=\n# comment\n")
    params = verify.parse_params(
        {"env_file": "prod.env", "required": ["APP_URL", "STRIPE_KEY", "SUPABASE_URL"]}
    )
    outcome = verify.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert outcome.summary == "configuration keys not set: STRIPE_KEY, SUPABASE_URL"


def test_verify_env_fails_when_the_script_fails(tmp_path: Path) -> None:
    params = verify.parse_params({"script": "echo 'SUPABASE_URL is wrong'; exit 3"})
    outcome = verify.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert "exit 3" in outcome.summary
    assert "SUPABASE_URL is wrong" in outcome.detail
