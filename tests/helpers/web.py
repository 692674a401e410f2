"""The dashboard and the API in tests: an application in this process (over a test
harness's client and engine), or ``shipcaptain server`` as its own process on port 0."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from helpers.processes import wait_for
from helpers.releases import Harness
from helpers.team import EVERY_ROLE, EVERYONE, OPEN_ENVIRONMENTS, OPEN_PERMISSIONS
from shipcaptain.identity import create_token
from shipcaptain.records import Person
from shipcaptain.store import Store
from shipcaptain.web.app import create_app

ROLES = """roles:
  release_captain: {title: Release Captain, members: [casey]}
  oncall_sre: {title: On-Call SRE, members: [sam]}
"""
#: a release that waits for the on-call SRE between two shell steps
GATED = (
    'name: gated\nenvironment: "{{ environment }}"\n'
    + ROLES
    + "parameters:\n  environment: {default: staging}\n"
    "phases:\n  - id: build\n    steps:\n"
    '      - {id: build, action: shell, with: {command: "echo built"}}\n'
    "  - id: ship\n    steps:\n"
    "      - {id: go_ahead, action: approval, with: {prompt: ship it?, roles: [oncall_sre], "
    "timeout: 1h}}\n"
    '      - {id: ship, action: shell, needs: [go_ahead], with: {command: "echo shipped"}}\n'
)


#: the administrator who makes the tests' tokens
ADMIN = Person(name="admin", admin=True)


def token_for(store: Store, name: str) -> str:
    """A fresh API token of ``name``, made by an administrator. The first one makes the
    tests' team (everyone the tests act as, ``name`` too), with the open permission table:
    the runbook's roles and separation of duties still decide at gates and rollbacks."""
    team = {p.name: p for p in store.list_people() if p.active}
    if name not in team or ADMIN.name not in team:
        for person in (*EVERYONE, name):
            team.setdefault(person, Person(name=person, roles=EVERY_ROLE))
        team[ADMIN.name] = ADMIN
        store.put_team(
            list(team.values()),
            actor="test",
            message=f"{name} joins",
            data={},
            permissions=dict(OPEN_PERMISSIONS),
            environments=dict(OPEN_ENVIRONMENTS),
        )
    secret, _ = create_token(store, name, expires_in=3600, label="test", by=ADMIN)
    return secret


@contextmanager
def api_client(h: Harness, runbook_root: Path) -> Iterator[TestClient]:
    """The application over the harness's client; its engine runs the releases."""
    app = create_app(h.settings, client=h.client, runbook_root=runbook_root)
    with TestClient(app) as client:
        yield client


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(web: TestClient, token: str, next: str = "/releases") -> str:
    form = web.get(f"/login?next={next}")
    response = web.post(
        "/login",
        data={"token": token, "csrf_token": csrf_in(form.text), "next": next},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response.headers["set-cookie"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


#: A bound on one request to a server process, not a wait: the server answers its first
#: requests while it also launches its engine, which under load (a loaded CI machine) takes
#: longer than httpx's default 5 s
REQUEST_TIMEOUT = 60.0


class ServerProcess:
    """``shipcaptain server --port 0`` in its own process; ``url`` is what it printed."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipcaptain", "server", "--port", "0", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(https?://\S+?)/?$", line.strip())
        if not found:
            self.stop()
            raise AssertionError(f"server did not print its URL: {line!r} {self.stderr}")
        self.url = found.group(1)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._drain.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


def status_of(api: httpx.Client, release: str, token: str) -> dict[str, object]:
    """A release's status through the API (``GET /releases/{id}/status``)."""
    answer: dict[str, object] = api.get(f"/releases/{release}/status", headers=bearer(token)).json()
    return answer


def start_and_approve_gated(api: httpx.Client, captain: str, sre: str) -> str:
    """Start gated.yaml through the API as ``captain``, wait for its gate and approve it as
    ``sre`` (the approval's answer checked); the release's id."""
    started = api.post("/releases", json={"runbook_path": "gated.yaml"}, headers=bearer(captain))
    assert started.status_code == 201, started.text
    release = str(started.json()["id"])
    wait_for(lambda: status_of(api, release, sre)["waiting"] == ["go_ahead"], 60, what="the gate")
    approved = api.post(f"/releases/{release}/gates/go_ahead/approve", json={}, headers=bearer(sre))
    assert approved.json()["state"] == "recorded", approved.text
    return release


@contextmanager
def server_process(
    database_url: str, data_dir: Path, cwd: Path, *args: str, token: str | None = None
) -> Iterator[ServerProcess]:
    """The server as its own process; with ``token`` (of a person with worker.run) in
    SHIPCAPTAIN_TOKEN, which running its workers needs."""
    env = {
        **os.environ,
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(data_dir),
        "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
    }
    env.pop("SHIPCAPTAIN_TOKEN", None)
    if token is not None:
        env["SHIPCAPTAIN_TOKEN"] = token
    server = ServerProcess(list(args), env, cwd)
    try:
        yield server
    finally:
        server.stop()


CHROMIUM = "/usr/bin/chromium"
#: Chromium features the tests turn off beside Playwright's own: the address bar's popup of
#: each browser window (one per context), which Chromium 156 builds as web pages in a
#: renderer process of their own, about 0.8 s of CPU a context for a window nobody sees:
#: 20 of the browser tests' 57 s of Chromium CPU (issue 27). The pages under test are
#: rendered as before.
NOT_WANTED_FEATURES = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")


@functools.cache
def playwright_disabled_features() -> tuple[str, ...]:
    """The features Playwright's launcher turns off (``--disable-features``). Chromium takes
    the last ``--disable-features`` it is given, so one of the tests' own must repeat
    Playwright's list (which keeps HTTP on HTTP, paint holding off...): read from the
    launcher Playwright ships, whose version the lock file pins."""
    import playwright

    bundle = Path(playwright.__file__).parent / "driver/package/lib/coreBundle.js"
    found = re.search(r"disabledFeatures = \[(.*?)\]\.filter", bundle.read_text(), re.S)
    if found is None:
        raise RuntimeError(f"no list of disabled features in {bundle}: Playwright changed")
    return tuple(re.findall(r'"([A-Za-z0-9]+)"', found[1]))


def chromium_args() -> list[str]:
    """The switches the tests launch Chromium with (read when a browser is launched: the
    other tests that import this module never read Playwright's launcher)."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-features=" + ",".join([*playwright_disabled_features(), *NOT_WANTED_FEATURES]),
    ]
