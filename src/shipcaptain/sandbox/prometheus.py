"""A real Prometheus server (Debian's ``prometheus`` package) for the demo and the tests.

It runs on 127.0.0.1 on a free port, with a temporary configuration and data directory,
and scrapes the given targets every second::

    with PrometheusServer(["127.0.0.1:41234"]) as prom:
        prom.url   # http://127.0.0.1:<port>

``available()`` says whether the binary is installed; callers that cannot run without it
say so (the demo skips its metrics step and tells why) rather than pretend.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from shipcaptain import tls
from shipcaptain.errors import ShipError
from shipcaptain.sandbox.service import Service

BINARY = "prometheus"
SCRAPE_INTERVAL = "1s"
#: the sandbox app's request rate: a value once Prometheus has two scrapes of the app
FIRST_DATA = "sum(rate(app_requests_total[1m]))"


def available() -> bool:
    return shutil.which(BINARY) is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer(Service):
    """Start ``prometheus`` scraping ``targets`` (``host:port``) every second; stop it after."""

    def __init__(self, targets: list[str], *, job: str = "app") -> None:
        self.targets = targets
        self.job = job
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        #: one client for every look (a client a look made its TLS context each time)
        self._http = httpx.Client(timeout=10, verify=tls.verify())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_within: float = 30.0) -> PrometheusServer:
        binary = shutil.which(BINARY)
        if binary is None:
            raise ShipError("prometheus is not installed (Debian: apt-get install prometheus)")
        self._dir = tempfile.TemporaryDirectory(prefix="shipcaptain-prometheus-")
        root = Path(self._dir.name)
        config = root / "prometheus.yml"
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL}\n"
            f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
            "scrape_configs:\n"
            f"  - job_name: {self.job}\n"
            f"    static_configs:\n      - targets: [{targets}]\n",
            encoding="utf-8",
        )
        for _ in range(3):  # the free port may be taken between looking and binding
            self.port = _free_port()
            log = (root / "prometheus.log").open("wb")
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                    # loopback only, a throwaway server: ``forget`` deletes its history
                    "--web.enable-admin-api",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            if self._wait_ready(ready_within):
                return self
            self._terminate()
        tail = (root / "prometheus.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise ShipError(f"prometheus did not become ready:\n{tail}")

    def _wait_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                if self._http.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._terminate()
        self._http.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def forget(self, promql: str, within: float = 30.0) -> float:
        """Delete every sample scraped so far (the admin API's ``delete_series``; queries
        no longer see them at once) and wait until ``promql`` has a value from new scrapes:
        a Prometheus with no history, without the seconds a new server takes before its
        first scrape. Returns the value."""
        answer = self._http.post(
            f"{self.url}/api/v1/admin/tsdb/delete_series",
            params={"match[]": f'{{job="{self.job}"}}'},
        )
        if answer.status_code != 204:
            raise ShipError(
                f"prometheus {self.url} did not delete its series: "
                f"{answer.status_code} {answer.text[:300]}"
            )
        return self.wait_for(promql, within)

    def wait_for(self, promql: str, within: float = 30.0) -> float:
        """Wait until ``promql`` has a (non-NaN) value; return it. For tests and the demo."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            body = self._http.get(f"{self.url}/api/v1/query", params={"query": promql}).json()
            result = body.get("data", {}).get("result") or []
            if result and result[0]["value"][1] != "NaN":
                return float(result[0]["value"][1])
            time.sleep(0.25)
        raise ShipError(f"no data for {promql} within {within:g}s")
