"""The suite never reads the developer's own settings or credentials.

A developer's shell may hold ``SHIPCAPTAIN_*`` settings (a real Slack webhook, a production
database URL, a token) or the credentials the actions read (``GITHUB_TOKEN``, ``KUBECONFIG``,
``DATABASE_URL``...). Tests and every subprocess they start must see only what the test sets,
so :func:`scrub` removes them from the environment before any test runs. What configures the
test run itself (``SHIPCAPTAIN_TEST_*``, ``SHIPCAPTAIN_REQUIRE_*``, the PostgreSQL binaries,
screenshots) is kept.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

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
        # not a credential: the developer's kubectl cache, which the tests' kubectl would
        # fill with discovery of loopback addresses (conftest gives each process its own)
        "KUBECACHEDIR",
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


#: where a folder in memory is (Linux's tmpfs), and the least room it must have for the
#: suite's scratch files (a run's peak measured 635 MB: throwaway PostgreSQL clusters of
#: ~30 MB each, SQLite state databases, Chromium's profiles)
RAM_ROOT = Path("/dev/shm")
RAM_ROOM = 2 * 1024**3


def scratch_in_memory(environ: MutableMapping[str, str]) -> Path | None:
    """Put the suite's temporary files in memory: ``TMPDIR`` (and :mod:`tempfile`'s folder)
    set to a folder of this user's under :data:`RAM_ROOT`, which pytest's ``tmp_path``,
    every ``tempfile`` of the tests and every process a test starts use (the throwaway
    PostgreSQL clusters of the demo and the rehearsals, SQLite state databases, git
    origins, Chromium's profiles). Copying a new cluster there costs the kernel a quarter
    of what it costs on this machine's disk (``cp -a`` of an initdb: 0.03-0.05 s of
    system time against 0.17-0.19 s), and so does every file a test writes.

    Nothing changes (None) when the developer set ``TMPDIR``, when there is no such folder
    or it has less than :data:`RAM_ROOM` free (a container's 64 MB ``/dev/shm``), or when
    the folder's name is taken by something not this user's own directory. The folder is
    kept between runs: pytest keeps its last three runs' folders there, as it does in
    ``/tmp``."""
    if "TMPDIR" in environ:
        return None
    try:
        room = os.statvfs(RAM_ROOT)
    except OSError:
        return None
    if room.f_bavail * room.f_frsize < RAM_ROOM:
        return None
    folder = RAM_ROOT / f"shipcaptain-tests-{os.getuid()}"
    try:
        # readable by others: the throwaway PostgreSQL servers run as the user postgres
        folder.mkdir(mode=0o755, exist_ok=True)
        found = folder.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        return None  # a link, or another user's: not ours to write in
    # the browser tests' screenshots, looked at after a run, stay where they were
    environ.setdefault("SHIPCAPTAIN_SCREENSHOTS", tempfile.gettempdir())
    environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    return folder
