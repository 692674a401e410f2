"""A small GitHub REST client on httpx.

The base URL is configurable (``https://api.github.com`` or a GitHub Enterprise
``https://ghe.example.com/api/v3``); the token comes from ``GITHUB_TOKEN`` or whichever
environment variable the step names.

Retries follow one explicit policy (tenacity runs it):

* a rate limit (403/429 with ``x-ratelimit-remaining: 0`` or ``retry-after``) waits until
  the reset, up to a limit, whatever the method: GitHub refused the request;
* a connection that could not be made (connect error or timeout) is retried with back-off
  whatever the method: nothing was sent;
* a read (GET, HEAD) is also retried after any other transport error and after a 5xx;
* a write (POST, PATCH, PUT, DELETE) that was sent is never sent again: a transport error
  after sending, or a 5xx, raises :class:`GitHubUncertain`, and the caller finds out what
  happened (``github_workflow`` looks for the run its dispatch may have started).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import tenacity

from shipcaptain import tls
from shipcaptain.errors import ActionError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
#: the longest we wait for a rate limit to reset before giving up
MAX_RATE_LIMIT_WAIT = 300.0
#: methods that change nothing: sent again after any transport error or 5xx
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: transport errors raised before any byte of the request left: safe to send again
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class GitHubError(ActionError):
    """GitHub answered with an error, or could not be reached."""

    code = "SC410"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubUncertain(GitHubError):
    """A write was sent but no clear answer came back (a timeout, a dropped connection, a
    5xx): GitHub may or may not have acted on it. Never sent again blindly."""


class _Again(Exception):
    """An answer or a transport error the policy retries; ``wait``: how long, if the
    answer says (a rate limit)."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def _backoff(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, _Again) and error.wait is not None:
        return error.wait
    return min(2.0 ** (state.attempt_number - 1), 30.0)


class GitHub:
    """Just the REST calls a release needs, for one repository ``owner/name``."""

    def __init__(
        self,
        repo: str,
        token: str | None,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 15.0,
        retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise GitHubError(f"repository must be written owner/name, got {repo!r}")
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.retries = retries
        self._sleep = sleep
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "shipcaptain",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.api_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls.verify(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ----

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One call under the retry policy (see the module's documentation)."""
        url = path if path.startswith("/") else f"/repos/{self.repo}/{path}"
        safe = method.upper() in SAFE_METHODS

        def attempt() -> httpx.Response:
            try:
                response = self._http.request(method, url, params=params, json=json)
            except NOTHING_SENT as exc:
                raise _Again(f"cannot reach GitHub at {self.api_url}: {exc}") from exc
            except httpx.TransportError as exc:
                if safe:
                    raise _Again(f"no answer from GitHub to {method} {url}: {exc}") from exc
                raise GitHubUncertain(
                    f"{method} {url} was sent but GitHub's answer was lost ({exc!r}): it may "
                    "or may not have been done"
                ) from exc
            wait = _rate_limit_wait(response)
            if wait is not None:
                if wait > MAX_RATE_LIMIT_WAIT:
                    raise GitHubError(
                        f"GitHub rate limit reached; it resets in {wait:.0f}s",
                        status=response.status_code,
                    )
                raise _Again(f"GitHub rate limit reached (HTTP {response.status_code})", wait)
            if response.status_code >= 500:
                message = f"GitHub answered HTTP {response.status_code} to {method} {url}"
                if safe:
                    raise _Again(message)
                raise GitHubUncertain(
                    f"{message}: {_message(response)}; it may or may not have been done",
                    status=response.status_code,
                )
            if response.status_code >= 400:
                raise GitHubError(
                    f"GitHub answered HTTP {response.status_code} to {method} {url}: "
                    f"{_message(response)}",
                    status=response.status_code,
                )
            return response

        policy = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Again),
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=_backoff,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return policy(attempt)
        except _Again as exc:
            raise GitHubError(f"{exc} (gave up after {self.retries + 1} tries)") from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    # ---- the calls ----

    def commit_sha(self, ref: str) -> str:
        return str(self.get(f"commits/{ref}")["sha"])

    def check_runs(self, sha: str) -> list[dict[str, Any]]:
        return list(self.get(f"commits/{sha}/check-runs", per_page=100)["check_runs"])

    def combined_status(self, sha: str) -> dict[str, Any]:
        return dict(self.get(f"commits/{sha}/status", per_page=100))

    def login(self) -> str | None:
        """The login the token acts as, or None when GitHub does not say (an app's
        installation token may not read ``/user``)."""
        try:
            return str(self.get("/user")["login"])
        except (GitHubError, KeyError, TypeError):
            return None

    def workflow_runs(self, workflow: str, **filters: Any) -> list[dict[str, Any]]:
        data = self.get(f"actions/workflows/{workflow}/runs", per_page=50, **filters)
        return list(data["workflow_runs"])

    def dispatch(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> None:
        self.request(
            "POST",
            f"actions/workflows/{workflow}/dispatches",
            json={"ref": ref, "inputs": dict(inputs)},
        )

    def pushes(self, branch: str) -> list[dict[str, Any]]:
        """GitHub's record of what reached ``branch`` (the activity API: pushes, force
        pushes, merges), newest first: ``before``, ``after``, ``timestamp``, ``actor``."""
        data = self.get("activity", ref=f"refs/heads/{branch}", per_page=100)
        return [a for a in data if a.get("activity_type") != "branch_deletion"]

    def run(self, run_id: int) -> dict[str, Any]:
        return dict(self.get(f"actions/runs/{run_id}"))

    def jobs(self, run_id: int) -> list[dict[str, Any]]:
        return list(self.get(f"actions/runs/{run_id}/jobs", per_page=100)["jobs"])

    def artifacts(self, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"per_page": 100, **({"name": name} if name else {})}
        return list(self.get(f"actions/runs/{run_id}/artifacts", **filters)["artifacts"])

    def download_artifact(self, artifact_id: int) -> bytes:
        """An artifact's zip archive. GitHub answers with a link to it that expires within a
        minute (302); the link is fetched without the token, which is not for its host."""
        response = self.request("GET", f"actions/artifacts/{artifact_id}/zip")
        location = response.headers.get("location")
        if response.status_code != 302 or not location:
            raise GitHubError(
                f"GitHub gave no download link for artifact {artifact_id} "
                f"(HTTP {response.status_code})",
                status=response.status_code,
            )
        try:
            blob = httpx.get(
                location,
                timeout=self._http.timeout,
                follow_redirects=True,
                verify=tls.verify(),
            )
        except httpx.HTTPError as exc:
            raise GitHubError(f"cannot download artifact {artifact_id}: {exc}") from exc
        if blob.status_code != 200:
            raise GitHubError(
                f"downloading artifact {artifact_id} answered HTTP {blob.status_code}",
                status=blob.status_code,
            )
        return blob.content


def _rate_limit_wait(response: httpx.Response) -> float | None:
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return 60.0
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset")
        try:
            return max(float(reset or 0) - time.time(), 0.0) + 1.0
        except ValueError:
            return 60.0
    return None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text[:200]))
    except ValueError:
        return response.text[:200]
