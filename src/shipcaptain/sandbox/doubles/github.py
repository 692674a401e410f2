"""A loopback stand-in for the GitHub REST API (the endpoints a release uses).

Serves, for any repository ``owner/name``:

* ``POST /repos/{o}/{r}/actions/workflows/{wf}/dispatches`` (204, like GitHub) starts a
  run that is ``queued``, then ``in_progress``, then ``completed`` with the configured
  conclusion, after the configured delays;
* ``GET .../actions/workflows/{wf}/runs`` (filters ``branch``, ``event``, ``status``),
  ``GET .../actions/runs/{id}`` and ``.../actions/runs/{id}/jobs``;
* ``GET .../actions/runs/{id}/artifacts`` (filter ``name``; what a completed run uploaded)
  and ``GET .../actions/artifacts/{id}/zip``, which answers 302 with a link to the zip
  archive that works without the token (and refuses one), like GitHub's storage links;
* ``GET .../commits/{ref}``, ``.../commits/{sha}/check-runs``, ``.../commits/{sha}/status``;
* ``GET .../git/ref/{ref}``.

A run's ``display_title`` is the workflow name followed by the values of its inputs, the
way a workflow with ``run-name: deploy ${{ inputs.tag }} ${{ inputs.distinct_id }}``
shows them. Tests and the demo configure it through the Python object
(``set_commit``, ``add_check_run``, ``add_status``, ``workflow`` settings), never over HTTP.
Answers need ``Authorization: Bearer <token>`` with the configured token.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shipcaptain.sandbox.service import Service


@dataclass
class WorkflowBehaviour:
    """How runs of one workflow file behave."""

    conclusion: str = "success"
    queued_seconds: float = 0.2
    running_seconds: float = 0.5
    jobs: list[str] = field(default_factory=lambda: ["build", "push-image"])
    failing_job: str | None = None
    #: what a run uploads once it completes: artifact name -> {file name: text}, from the run
    artifacts: Callable[[Run], dict[str, dict[str, str]]] | None = None


@dataclass
class Run:
    id: int
    workflow: str
    ref: str
    head_sha: str
    inputs: dict[str, str]
    created: float
    behaviour: WorkflowBehaviour


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class GitHubDouble(Service):
    def __init__(self, token: str = "sandbox-github-token", git_dir: Path | None = None) -> None:
        self.token = token
        #: a bare repository that stands for the repository hosted on GitHub: refs and
        #: commits not set with ``set_ref`` are looked up in it with real git
        self.git_dir = git_dir
        self.lock = threading.Lock()
        self.workflows: dict[str, WorkflowBehaviour] = {}
        self.runs: list[Run] = []
        self.dispatches: list[dict[str, Any]] = []
        self.refs: dict[str, str] = {}  # "heads/main" / "tags/v1" -> sha
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.requests = 0
        #: answer the next N requests with a primary rate limit (403, remaining 0, reset in 1s)
        self.rate_limit_next = 0
        #: answer the next N requests with 502 Bad Gateway
        self.fail_next = 0
        self._next_id = 9_000_001
        #: download links handed out (their secret part -> the archive), as blob storage
        #: keeps them: usable without the token, for a short while
        self.blobs: dict[str, bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- configuration (Python side) ----

    def workflow(self, name: str) -> WorkflowBehaviour:
        return self.workflows.setdefault(name, WorkflowBehaviour())

    def set_ref(self, ref: str, sha: str) -> None:
        self.refs[ref] = sha

    def resolve(self, ref: str) -> str | None:
        """The commit of ``heads/<b>``, ``tags/<t>``, a bare name or a full sha."""
        for name in (ref, f"heads/{ref}", f"tags/{ref}"):
            if name in self.refs:
                return self.refs[name]
        if self.git_dir is not None:
            for name in (f"refs/{ref}", f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
                proc = subprocess.run(
                    [
                        "git",
                        "--git-dir",
                        str(self.git_dir),
                        "rev-parse",
                        "-q",
                        "--verify",
                        f"{name}^{{commit}}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode == 0:
                    return proc.stdout.strip()
        return ref if re.fullmatch(r"[0-9a-f]{40}", ref) else None

    def add_check_run(
        self, sha: str, name: str, status: str = "completed", conclusion: str | None = "success"
    ) -> None:
        self.check_runs.setdefault(sha, []).append(
            {"name": name, "status": status, "conclusion": conclusion}
        )

    def add_status(self, sha: str, context: str, state: str = "success") -> None:
        self.statuses.setdefault(sha, []).append({"context": context, "state": state})

    def record_run(self, workflow: str, ref: str, conclusion: str, age: float) -> None:
        """A finished run from the past (``age`` seconds ago), as CI history."""
        sha = self.resolve(ref) or "0" * 40
        behaviour = WorkflowBehaviour(conclusion=conclusion, queued_seconds=0, running_seconds=0)
        with self.lock:
            self.runs.append(
                Run(self._next_id, workflow, ref, sha, {}, time.time() - age, behaviour)
            )
            self._next_id += 1

    # ---- lifecycle ----

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GitHubDouble:
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- state of a run ----

    def run_json(self, repo: str, run: Run) -> dict[str, Any]:
        now = time.time()
        b = run.behaviour
        started = run.created + b.queued_seconds
        ended = started + b.running_seconds
        status = "queued" if now < started else "in_progress" if now < ended else "completed"
        title = " ".join([run.workflow.rsplit(".", 1)[0], *run.inputs.values()])
        return {
            "id": run.id,
            "name": run.workflow.rsplit(".", 1)[0],
            "display_title": title,
            "path": f".github/workflows/{run.workflow}",
            "event": "workflow_dispatch",
            "head_branch": run.ref,
            "head_sha": run.head_sha,
            "status": status,
            "conclusion": b.conclusion if status == "completed" else None,
            "created_at": _iso(run.created),
            "updated_at": _iso(min(now, ended)),
            "run_started_at": _iso(started),
            "html_url": f"https://github.com/{repo}/actions/runs/{run.id}",
            "url": f"{self.url}/repos/{repo}/actions/runs/{run.id}",
        }

    def artifacts_of(self, repo: str, run: Run) -> list[tuple[dict[str, Any], bytes]]:
        """The run's artifacts (once it completed) with their zip archives."""
        if run.behaviour.artifacts is None or self.run_json(repo, run)["status"] != "completed":
            return []
        out = []
        for i, (name, files) in enumerate(sorted(run.behaviour.artifacts(run).items())):
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as z:
                for file, text in files.items():
                    z.writestr(file, text)
            artifact_id = run.id * 100 + i
            meta = {
                "id": artifact_id,
                "name": name,
                "size_in_bytes": len(archive.getvalue()),
                "url": f"{self.url}/repos/{repo}/actions/artifacts/{artifact_id}",
                "archive_download_url": (
                    f"{self.url}/repos/{repo}/actions/artifacts/{artifact_id}/zip"
                ),
                "expired": False,
                "created_at": _iso(run.created),
                "workflow_run": {"id": run.id, "head_branch": run.ref, "head_sha": run.head_sha},
            }
            out.append((meta, archive.getvalue()))
        return out

    def jobs_json(self, repo: str, run: Run) -> list[dict[str, Any]]:
        state = self.run_json(repo, run)
        jobs = []
        for i, name in enumerate(run.behaviour.jobs):
            conclusion = None
            if state["status"] == "completed":
                failed = run.behaviour.conclusion != "success" and (
                    run.behaviour.failing_job in (None, name)
                )
                conclusion = "failure" if failed else "success"
            jobs.append(
                {
                    "id": run.id * 10 + i,
                    "run_id": run.id,
                    "name": name,
                    "status": state["status"],
                    "conclusion": conclusion,
                    "html_url": f"{state['html_url']}/job/{run.id * 10 + i}",
                }
            )
        return jobs


_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"


class _Handler(BaseHTTPRequestHandler):
    owner: GitHubDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Limit", "5000")
        self.send_header("X-RateLimit-Remaining", "4999")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _authorised(self) -> bool:
        o = self.owner
        with o.lock:
            if o.rate_limit_next > 0:
                o.rate_limit_next -= 1
                data = b'{"message": "API rate limit exceeded"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-RateLimit-Remaining", "0")
                self.send_header("X-RateLimit-Reset", str(int(time.time()) + 1))
                self.end_headers()
                self.wfile.write(data)
                return False
            if o.fail_next > 0:
                o.fail_next -= 1
                self._send(502, {"message": "Server Error"})
                return False
        if self.headers.get("Authorization") == f"Bearer {self.owner.token}":
            return True
        self._send(401, {"message": "Bad credentials", "status": "401"})
        return False

    def _blob(self, key: str) -> None:
        """A download link's target: no token (a request with one is refused, as storage
        hosts do), the archive as application/zip."""
        data = self.owner.blobs.get(key)
        if self.headers.get("Authorization"):
            return self._send(400, {"message": "Authorization header not allowed"})
        if data is None:
            return self._send(404, {"message": "Not Found"})
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/_blobs/"):
            return self._blob(self.path.removeprefix("/_blobs/"))
        if not self._authorised():
            return
        o = self.owner
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        with o.lock:
            o.requests += 1
            m = re.fullmatch(_REPO + r"/actions/workflows/(?P<wf>[^/]+)/runs", path)
            if m:
                runs = [
                    o.run_json(m["repo"], r)
                    for r in reversed(o.runs)
                    if r.workflow == m["wf"]
                    and query.get("branch") in (None, r.ref)
                    and query.get("event") in (None, "workflow_dispatch")
                ]
                if "status" in query:
                    runs = [r for r in runs if query["status"] in (r["status"], r["conclusion"])]
                return self._send(200, {"total_count": len(runs), "workflow_runs": runs})
            m = re.fullmatch(_REPO + r"/actions/runs/(?P<id>\d+)(?P<rest>/jobs|/artifacts)?", path)
            if m:
                run = next((r for r in o.runs if r.id == int(m["id"])), None)
                if run is None:
                    return self._send(404, {"message": "Not Found"})
                if m["rest"] == "/jobs":
                    jobs = o.jobs_json(m["repo"], run)
                    return self._send(200, {"total_count": len(jobs), "jobs": jobs})
                if m["rest"] == "/artifacts":
                    found = [
                        meta
                        for meta, _ in o.artifacts_of(m["repo"], run)
                        if query.get("name") in (None, meta["name"])
                    ]
                    return self._send(200, {"total_count": len(found), "artifacts": found})
                return self._send(200, o.run_json(m["repo"], run))
            m = re.fullmatch(_REPO + r"/actions/artifacts/(?P<id>\d+)/(?P<format>[^/]+)", path)
            if m:
                run = next((r for r in o.runs if r.id == int(m["id"]) // 100), None)
                archives = {
                    meta["id"]: data for meta, data in o.artifacts_of(m["repo"], run)
                } if run else {}  # fmt: skip
                if m["format"] != "zip":
                    return self._send(422, {"message": "archive_format must be zip"})
                if int(m["id"]) not in archives:
                    return self._send(404, {"message": "Not Found"})
                key = secrets.token_urlsafe(16)
                o.blobs[key] = archives[int(m["id"])]
                self.send_response(302)
                self.send_header("Location", f"{o.url}/_blobs/{key}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            m = re.fullmatch(_REPO + r"/commits/(?P<ref>[^/]+)(?P<rest>/check-runs|/status)?", path)
            if m:
                sha = o.resolve(m["ref"])
                if sha is None:
                    return self._send(422, {"message": f"No commit found for SHA: {m['ref']}"})
                if m["rest"] == "/check-runs":
                    runs = [
                        {
                            **c,
                            "id": i + 1,
                            "head_sha": sha,
                            "html_url": f"https://github.com/{m['repo']}/runs/{i + 1}",
                        }
                        for i, c in enumerate(o.check_runs.get(sha, []))
                    ]
                    return self._send(200, {"total_count": len(runs), "check_runs": runs})
                if m["rest"] == "/status":
                    statuses = o.statuses.get(sha, [])
                    states = {s["state"] for s in statuses}
                    combined = (
                        "failure"
                        if states & {"failure", "error"}
                        else "pending"
                        if "pending" in states or not statuses
                        else "success"
                    )
                    return self._send(
                        200,
                        {
                            "state": combined,
                            "sha": sha,
                            "total_count": len(statuses),
                            "statuses": [
                                {**s, "target_url": f"https://ci.example.invalid/{s['context']}"}
                                for s in statuses
                            ],
                        },
                    )
                return self._send(
                    200, {"sha": sha, "html_url": f"https://github.com/{m['repo']}/commit/{sha}"}
                )
            m = re.fullmatch(_REPO + r"/git/ref/(?P<ref>.+)", path)
            if m:
                sha = o.resolve(m["ref"])
                if sha is None:
                    return self._send(404, {"message": "Not Found"})
                return self._send(
                    200, {"ref": f"refs/{m['ref']}", "object": {"sha": sha, "type": "commit"}}
                )
        return self._send(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        o = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"message": "Problems parsing JSON"})
        m = re.fullmatch(_REPO + r"/actions/workflows/(?P<wf>[^/]+)/dispatches", self.path)
        if not m:
            return self._send(404, {"message": "Not Found"})
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return self._send(422, {"message": "Invalid request: ref is required"})
        inputs = body.get("inputs") or {}
        with o.lock:
            o.requests += 1
            sha = o.resolve(ref)
            if sha is None:
                return self._send(422, {"message": f"No ref found for: {ref}"})
            o.dispatches.append({"workflow": m["wf"], "ref": ref, "inputs": dict(inputs)})
            o.runs.append(
                Run(
                    id=o._next_id,
                    workflow=m["wf"],
                    ref=ref,
                    head_sha=sha,
                    inputs={str(k): str(v) for k, v in inputs.items()},
                    created=time.time(),
                    behaviour=o.workflow(m["wf"]),
                )
            )
            o._next_id += 1
        return self._send(204)
