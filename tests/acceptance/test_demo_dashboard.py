"""``shipcaptain demo --dashboard``: the demo serves the dashboard, prints its address and a
token for fola (Feature Owner), and fola's sign-offs wait until someone gives them there;
given through the API with that token, the release finishes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_the_demo_waits_for_the_sign_offs_given_in_the_dashboard(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {"SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipcaptain",
            "demo",
            "--dashboard",
            "--workspace",
            str(tmp_path / "w"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not re.search(r"with this sandbox token: (\S+)", "".join(lines)):
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        out = "".join(lines)
        url, release = re.search(r"dashboard: (http://\S+)/releases/(rel-[0-9a-f]+)", out).groups()  # type: ignore[union-attr]
        token = re.search(r"with this sandbox token: (\S+)", out).group(1)  # type: ignore[union-attr]
        api = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        decided: list[str] = []
        while (status := api.get(f"/releases/{release}/status").json())["status"] not in (
            "succeeded",
            "failed",
            "rolled_back",
        ):
            assert time.monotonic() < deadline + 60, status
            for gate in status["waiting"]:
                answer = api.post(
                    f"/releases/{release}/gates/{gate}/approve",
                    json={"comment": "from the dashboard"},
                )
                if answer.status_code == 200:
                    decided.append(gate)
            time.sleep(0.3)
        assert status["status"] == "succeeded"
        assert "breaking_migrations_sign_off" in decided
        assert "smoke_surfaces_validated" in decided
        # the changelog sign-off waited for fola's own part (dev and casey gave theirs)
        assert "changelog_confirmed" in decided
        # nobody else decided fola's gates: the demo left them to the dashboard
        assert "[demo] fola" not in "".join(lines)
        while "the dashboard stays up until Ctrl-C" not in "".join(lines):
            assert time.monotonic() < deadline + 90
            time.sleep(0.1)
        assert token not in api.get(f"{url}/releases/{release}").text
        api.close()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
        proc.stdout.close()
    assert code == 0, "".join(lines)[-3000:]
