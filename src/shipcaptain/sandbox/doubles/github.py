"""A loopback stand-in for the GitHub REST API (the endpoints a release uses).

Serves, for any repository ``owner/name``:

* ``POST /repos/{o}/{r}/actions/workflows/{wf}/dispatches`` (204, like GitHub) starts a
  run that is ``queued``, then ``in_progress``, then ``completed`` with the configured
  conclusion, after the configured delays. Like GitHub it reads the workflow file at the
  ref (``.github/workflows/{wf}`` in ``git_dir``, or the ``definition`` a test gives) and
  answers 404 when there is none, and 422 when its ``on:`` has no ``workflow_dispatch``,
  for an input it does not declare, a required input missing, or a choice input's value
  not among its options, with GitHub's messages;
* ``GET .../actions/workflows/{wf}/runs`` (filters ``branch``, ``event``, ``status``,
  ``actor`` and ``created``: ``>=T``, ``<=T``, ``>T``, ``<T``, ``A..B``),
  ``GET .../actions/runs/{id}`` and ``.../actions/runs/{id}/jobs``;
* ``GET /user``: the login the token acts as (``login``);
* ``GET .../activity`` (filters ``ref``, ``activity_type``; newest first): the pushes to
  ``git_dir`` that its ``post-receive`` hook recorded (see :func:`record_pushes`), as
  GitHub's record of what reached each branch and when;
* ``GET .../actions/runs/{id}/artifacts`` (filter ``name``; what a completed run uploaded)
  and ``GET .../actions/artifacts/{id}/zip``, which answers 302 with a link to the zip
  archive that works without the token (and refuses one), like GitHub's storage links;
* ``GET .../commits/{ref}``, ``.../commits/{sha}/check-runs``, ``.../commits/{sha}/status``;
* ``GET .../git/ref/{ref}``.

A run's ``display_title`` is the workflow's ``run-name`` with ``${{ inputs.x }}`` (and
``github.event.inputs.x``, ``github.ref_name``, ``github.actor``) filled in, else its
``name``, as GitHub shows it. Tests and the demo configure it through the Python object
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shipcaptain.sandbox.doubles.workflow_file import WorkflowRefused, read_workflow
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
    #: the workflow file's text, for a double without ``git_dir`` (with one, the file at the
    #: dispatched ref is read from the repository, as GitHub does)
    definition: str | None = None


@dataclass
class Run:
    id: int
    workflow: str
    ref: str
    head_sha: str
    inputs: dict[str, str]
    created: float
    behaviour: WorkflowBehaviour
    event: str = "workflow_dispatch"
    actor: str = "release-bot"
    title: str = ""


WORKFLOWS = ".github/workflows"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class GitHubDouble(Service):
    def __init__(self, token: str = "sandbox-github-token", git_dir: Path | None = None) -> None:
        self.token = token
        #: the login the token acts as (``GET /user``, a run's ``actor``)
        self.login = "release-bot"
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
        #: answer the next N dispatches with 502 Bad Gateway, without acting on them
        self.fail_next_dispatches = 0
        #: seconds to wait before answering a dispatch already acted on (its run exists):
        #: a client whose timeout is shorter loses the answer of a dispatch that happened
        self.dispatch_answer_delay = 0.0
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

    def record_run(
        self,
        workflow: str,
        ref: str,
        conclusion: str,
        age: float,
        *,
        event: str = "push",
        actor: str = "someone-else",
    ) -> Run:
        """A finished run from the past (``age`` seconds ago), as CI history."""
        sha = self.resolve(ref) or "0" * 40
        behaviour = WorkflowBehaviour(conclusion=conclusion, queued_seconds=0, running_seconds=0)
        with self.lock:
            run = Run(
                self._next_id, workflow, ref, sha, {}, time.time() - age, behaviour, event, actor
            )
            self.runs.append(run)
            self._next_id += 1
        return run

    def workflow_text(self, workflow: str, sha: str) -> str | None:
        """The workflow file at commit ``sha``: from the repository, else the definition a
        test gave; None when there is none."""
        if self.git_dir is not None:
            proc = subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(self.git_dir),
                    "show",
                    f"{sha}:.github/workflows/{workflow}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            return proc.stdout if proc.returncode == 0 else None
        return self.workflow(workflow).definition

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
        name = run.workflow.rsplit(".", 1)[0]
        return {
            "id": run.id,
            "name": name,
            "display_title": run.title or name,
            "path": f".github/workflows/{run.workflow}",
            "event": run.event,
            "actor": {"login": run.actor},
            "triggering_actor": {"login": run.actor},
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

    def _user_or_activity(self) -> bool:
        """Answer ``GET /user`` and ``GET .../activity``; False for any other path."""
        parts = urlsplit(self.path)
        if parts.path == "/user":
            self._send(200, {"login": self.owner.login, "type": "User"})
            return True
        m = re.fullmatch(_REPO + r"/activity", parts.path)
        if m:
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            self._send(200, _activity(self.owner.git_dir, m["repo"], query))
            return True
        return False

    def do_GET(self) -> None:
        if self.path.startswith("/_blobs/"):
            return self._blob(self.path.removeprefix("/_blobs/"))
        if not self._authorised():
            return
        o = self.owner
        if self._user_or_activity():
            return None
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        with o.lock:
            o.requests += 1
            m = re.fullmatch(_REPO + r"/actions/workflows/(?P<wf>[^/]+)/runs", path)
            if m:
                created = _created_filter(query.get("created"))
                if created is None:
                    return self._send(422, {"message": "Invalid created filter"})
                runs = [
                    o.run_json(m["repo"], r)
                    for r in reversed(o.runs)
                    if r.workflow == m["wf"]
                    and query.get("branch") in (None, r.ref)
                    and query.get("event") in (None, r.event)
                    and query.get("actor") in (None, r.actor)
                    and created(int(r.created))
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
        with o.lock:
            if o.fail_next_dispatches > 0:
                o.fail_next_dispatches -= 1
                return self._send(502, {"message": "Server Error"})
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return self._send(422, {"message": "Invalid request: ref is required"})
        inputs = body.get("inputs") or {}
        with o.lock:
            o.requests += 1
            sha = o.resolve(ref)
            if sha is None:
                return self._send(422, {"message": f"No ref found for: {ref}"})
            text = o.workflow_text(m["wf"], sha)
            if text is None:
                return self._send(404, {"message": "Not Found"})
            given = {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in inputs.items()
            }
            try:
                workflow = read_workflow(text)
                values = workflow.dispatch_inputs(given)
            except WorkflowRefused as exc:
                return self._send(422, {"message": str(exc)})
            o.dispatches.append({"workflow": m["wf"], "ref": ref, "inputs": dict(inputs)})
            o.runs.append(
                Run(
                    id=o._next_id,
                    workflow=m["wf"],
                    ref=ref,
                    head_sha=sha,
                    inputs=values,
                    created=time.time(),
                    behaviour=o.workflow(m["wf"]),
                    actor=o.login,
                    title=workflow.title(values, ref=ref, actor=o.login) or m["wf"],
                )
            )
            o._next_id += 1
            delay = o.dispatch_answer_delay
        if delay:
            time.sleep(delay)
        return self._send(204)


#: where the hook of :func:`record_pushes` writes, inside the bare repository
PUSH_LOG = "pushes.log"
_HOOK = """#!/bin/sh
# written by shipcaptain's GitHub double: GitHub's record of pushes, for the activity API
while read old new ref; do
  echo "$(date -u +%s.%N) $old $new $ref ${SANDBOX_PUSHER:-developer}" >> pushes.log
done
"""


def record_pushes(git_dir: Path) -> None:
    """Make the bare repository ``git_dir`` record every push (time, before, after, ref,
    pusher) as GitHub does, for the double's activity API."""
    hook = git_dir / "hooks" / "post-receive"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(_HOOK)
    hook.chmod(0o755)


def _activity(git_dir: Path | None, repo: str, query: dict[str, str]) -> list[dict[str, Any]]:
    """The recorded pushes as GitHub's activity API lists them, newest first."""
    log = git_dir / PUSH_LOG if git_dir is not None else None
    if log is None or not log.exists():
        return []
    ref = query.get("ref")
    if ref and not ref.startswith("refs/"):
        ref = f"refs/heads/{ref}"
    out = []
    for n, line in enumerate(log.read_text().splitlines(), 1):
        stamp, before, after, name, actor = [*line.split(), ""][:5]
        kind = "branch_creation" if set(before) == {"0"} else "push"
        kind = "branch_deletion" if set(after) == {"0"} else kind
        if (ref and name != ref) or query.get("activity_type") not in (None, kind):
            continue
        when = datetime.fromtimestamp(float(stamp), UTC)
        out.append(
            {
                "id": n,
                "before": before,
                "after": after,
                "ref": name,
                "timestamp": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "activity_type": kind,
                "actor": {"login": actor},
                "repository": repo,
            }
        )
    return out[::-1]


def _created_filter(spec: str | None) -> Callable[[int], bool] | None:
    """GitHub's ``created`` filter of run lists (``>=T``, ``<=T``, ``>T``, ``<T``, ``A..B``,
    ``T`` for that day) as a test of a run's creation time; None if it does not parse."""
    if not spec:
        return lambda _t: True
    try:
        if ".." in spec:
            low, high = (_when(part) for part in spec.split("..", 1))
            return lambda t: low <= t <= high
        for op, test in (
            (">=", int.__ge__),
            ("<=", int.__le__),
            (">", int.__gt__),
            ("<", int.__lt__),
        ):
            if spec.startswith(op):
                bound = _when(spec[len(op) :])
                return lambda t: bool(test(t, bound))
        day = _when(spec)
        return lambda t: day <= t < day + 86400
    except ValueError:
        return None


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _when(text: str) -> int:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())
