"""A whole release on the real engine: expand, rollout, feature-owner sign-off on a risky
contract migration, contract behind a replica check, verify_schema; on a real primary with
a streaming replica."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers.pg_cluster import Cluster, available, primary_with_replica
from helpers.releases import harness, write_runbook
from shipcaptain.migrations.migrator import apply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="needs PostgreSQL server programs"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with primary_with_replica() as c:
        yield c


RUNBOOK = """\
name: migrations
roles:
  release_captain: {{title: Release Captain, members: [casey]}}
  feature_owner: {{title: Feature Owner, members: [fola], surfaces: [boards]}}
phases:
  - id: db
    steps:
      - id: expand
        action: migrate
        with: {{directory: "{dir}", database_url: "{url}", phase: expand}}
      - id: rollout
        action: shell
        needs: [expand]
        with: {{command: "echo rolled out"}}
      - id: sign_off
        action: migration_sign_off
        with: {{directory: "{dir}", surfaces: [boards], timeout: 1h}}
      - id: contract
        action: migrate
        needs: [rollout, sign_off]
        with:
          directory: "{dir}"
          database_url: "{url}"
          phase: contract
          replicas: {{replica-1: "{replica}"}}
      - id: verify
        action: verify_schema
        needs: [contract]
        with: {{directory: "{dir}", database_url: "{url}"}}
"""


def test_release_orders_expand_rollout_sign_off_contract_verify(
    tmp_path: Path, cluster: Cluster
) -> None:
    name = "r_" + uuid.uuid4().hex[:10]
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = cluster.primary_url.rsplit("/", 1)[0] + "/" + name
    mig = tmp_path / "supabase" / "migrations"
    mig.mkdir(parents=True)
    (mig / "1_boards.sql").write_text("CREATE TABLE boards (id bigint, legacy text);\n")
    apply(url, tmp_path, "expand", "an earlier release")  # the app runs on version 1
    (mig / "2_drop.sql").write_text("ALTER TABLE boards DROP COLUMN legacy;\n")
    runbook = write_runbook(
        tmp_path, RUNBOOK.format(dir=tmp_path, url=url, replica=cluster.replica_url)
    )
    with harness(f"sqlite:///{tmp_path / 'state.db'}", tmp_path) as h:
        release = h.start(runbook)
        h.wait_for_gate(release.id, "sign_off")
        # the sign-off runs alongside expand and the rollout; contract waits for all three
        assert "contract" not in h.statuses(release.id)
        gate = h.client.store.get_gate(release.id, "sign_off", 1)
        assert "2_drop.sql: touches boards" in gate.prompt
        h.client.decide(release.id, "sign_off", user="fola", decision="approve")
        assert h.wait(release.id).status == "succeeded"
        runs = h.client.store.latest_step_runs(release.id)
        assert runs["contract"].outputs["applied"] == ["2"]
        assert runs["verify"].summary == "schema at version 2"
        starter = h.client.store.get_release(release.id).started_by
    with psycopg.connect(url) as conn:
        who = conn.execute(
            "SELECT applied_by FROM supabase_migrations.schema_migrations WHERE version = '2'"
        ).fetchone()
    assert who == (f"{starter} (release {release.id})",)  # the person who started it
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
