"""`audit verify|export|anchor|public-key` with --server: the CLI (its own process) goes
through the API of a `shipcaptain server` (its own process) and never opens a local state
database; the bundle it gets verifies offline against the server's anchor file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.web import GATED, server_process, start_and_approve_gated, token_for
from shipcaptain.settings import Settings
from shipcaptain.store import open_store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "shipcaptain.cli.main"]


def test_audit_commands_go_through_the_server(database_url: str, tmp_path: Path) -> None:
    write_runbook(tmp_path, GATED, "gated.yaml")
    with open_store(database_url) as store:
        store.migrate()
        casey, sam = token_for(store, "casey"), token_for(store, "sam")
    server_data = tmp_path / "data"
    anchors = Settings(data_dir=server_data, database_url=database_url).anchor_path
    with server_process(
        database_url, server_data, tmp_path, "--runbooks", str(tmp_path), token=casey
    ) as server:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api:
            release = start_and_approve_gated(api, casey, sam)
        wait_for(anchors.exists, 60, what="the release's end to be anchored")

        here = tmp_path / "auditor"
        here.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
        env |= {
            "SHIPCAPTAIN_SERVER": server.url,
            "SHIPCAPTAIN_TOKEN": sam,
            "SHIPCAPTAIN_DATA_DIR": str(here / "data"),  # nothing local may be made
            "XDG_CONFIG_HOME": str(here / "config"),
        }

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*CLI, *args],
                env=env,
                cwd=here,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        verified = cli("audit", "verify", "--json")
        assert verified.returncode == 0, verified.stderr
        check = json.loads(verified.stdout)
        assert check["ok"] is True
        assert check["keyed"] is True
        assert check["anchors_checked"] == 1
        exported = cli("audit", "export", release, "-o", "bundle")
        assert exported.returncode == 0, exported.stderr
        key = cli("audit", "public-key")
        assert key.returncode == 0, key.stderr
        assert key.stdout.startswith("-----BEGIN PUBLIC KEY-----")
        anchored = cli("audit", "anchor", "--json")
        assert anchored.returncode == 0, anchored.stderr
        assert json.loads(anchored.stdout)["file"] == str(anchors)
        assert server.stop() == 0

    (here / "public.pem").write_text(key.stdout)
    bundle = here / "bundle" / f"evidence-{release}.json"
    offline = cli(
        "audit", "verify", "--bundle", str(bundle), "--anchor", str(anchors),
        "--public-key", str(here / "public.pem"),
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    [gate] = json.loads(bundle.read_text())["approvals"]
    assert [d["person"] for d in gate["decisions"]] == ["sam"]
    assert not (here / "data").exists()  # no local state database, no local audit key
