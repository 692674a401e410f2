"""The suite runs without the developer's own settings and credentials."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers import environment
from helpers.environment import scratch_in_memory, scrub


def test_scrub_removes_settings_and_credentials_and_keeps_the_test_run_s_own() -> None:
    environ = {
        "SHIPCAPTAIN_SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T000/B000/xyz",
        "SHIPCAPTAIN_DATABASE_URL": "postgresql://prod.example.invalid/state",
        "SHIPCAPTAIN_TOKEN": "sc_live_secret",
        "GITHUB_TOKEN": "ghp_secret",
        "KUBECONFIG": "/home/dev/.kube/prod",
        "KUBECACHEDIR": "/home/dev/.kube/cache",
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
        "KUBECACHEDIR",
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
    # conftest scrubbed os.environ before any test: nothing of the developer's is left, and
    # kubectl's cache is a folder of this process's own
    assert scrub(dict(os.environ)) == ["KUBECACHEDIR"]
    assert Path(os.environ["KUBECACHEDIR"]).parent == Path(tempfile.gettempdir())


@pytest.fixture
def ram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /dev/shm (room enough), and tempfile's folder put back after."""
    monkeypatch.setattr(environment, "RAM_ROOT", tmp_path)
    monkeypatch.setattr(environment, "RAM_ROOM", 1)
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    return tmp_path


def test_scratch_files_go_to_a_folder_of_the_user_s_in_memory(ram: Path) -> None:
    before = tempfile.gettempdir()
    environ = {"PATH": "/usr/bin"}
    folder = scratch_in_memory(environ)
    assert folder == ram / f"shipcaptain-tests-{os.getuid()}"
    assert folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o755  # the postgres user walks through it
    assert environ["TMPDIR"] == str(folder) == tempfile.gettempdir()
    assert environ["SHIPCAPTAIN_SCREENSHOTS"] == before  # screenshots stay where they were
    assert scratch_in_memory({"PATH": "/usr/bin"}) == folder  # the same folder the next run


def test_scratch_files_stay_where_they_were_unless_the_folder_is_fit(
    ram: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tempfile.gettempdir()
    chosen = {"TMPDIR": "/var/tmp/mine"}  # the developer's own choice stands
    assert scratch_in_memory(chosen) is None
    assert chosen == {"TMPDIR": "/var/tmp/mine"}
    name = ram / f"shipcaptain-tests-{os.getuid()}"
    name.symlink_to(ram / "elsewhere", target_is_directory=True)  # a link: not followed
    (ram / "elsewhere").mkdir()
    assert scratch_in_memory(environ := {}) is None
    assert environ == {}
    name.unlink()
    monkeypatch.setattr(environment, "RAM_ROOM", 1 << 62)  # too little room (a container's)
    assert scratch_in_memory(environ) is None
    monkeypatch.setattr(environment, "RAM_ROOT", ram / "missing")  # no such folder
    monkeypatch.setattr(environment, "RAM_ROOM", 1)
    assert scratch_in_memory(environ) is None
    assert environ == {}
    assert tempfile.gettempdir() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a folder another user owns")
def test_a_folder_of_that_name_owned_by_another_user_is_not_used(ram: Path) -> None:
    name = ram / f"shipcaptain-tests-{os.getuid()}"
    name.mkdir()
    os.chown(name, 65534, 65534)  # nobody's
    environ: dict[str, str] = {}
    assert scratch_in_memory(environ) is None
    assert environ == {}
