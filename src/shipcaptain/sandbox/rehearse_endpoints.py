"""Before a rehearsal starts: would any step reach an endpoint outside the sandbox?

A rehearsal maps the runbook's integrations onto the sandbox: the parameters the sandbox
gives values of its own (:data:`MAPPED`: the app, Prometheus, the image registry), the
environment variables it sets (the production database and its replica, the logs
database, the kube context, GitHub), Slack through its settings. What is left must not
name a host: every URL (``scheme://host``) in a step's parameters after the parameters are
put in, every hostname in an ``env`` mapping or a ``host=`` connection string, and every
environment variable a step reads (``$NAME``, ``*_env: NAME``) that the sandbox does not
set while the caller's environment points it at a host. Each finding names the step, the
field, the host and how to map it; the rehearsal then refuses to start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shipcaptain.runbook.loader import LoadedRunbook
from shipcaptain.runbook.model import Runbook

#: parameters the sandbox gives a value of its own, and what it maps them onto
MAPPED = {
    "app_url": "the sandbox app (its /health and metrics)",
    "prometheus_url": "the sandbox's Prometheus",
    "registry_url": "the sandbox image registry",
}
#: environment variables the sandbox sets for the steps
SANDBOX_ENV = frozenset(
    {
        "DATABASE_URL", "REPLICA_URL", "LOGS_DATABASE_URL", "KUBECONFIG", "GITHUB_API_URL",
        "GITHUB_TOKEN", "SUPABASE_PROJECT_REF", "SHIPCAPTAIN_SANDBOX_STATE", "PATH", "HOME",
    }
)  # fmt: skip
#: (action, field): links for people in messages, never requested by the step
LINK_ONLY = frozenset({("metrics", "grafana")})
LOCAL = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"})

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^/\s@'\"]*@)?(\[[^\]]*\]|[^/\s:'\"?#]+)", re.I)
_HOST = re.compile(r"^(?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?$", re.I)
_HOST_KV = re.compile(r"\bhost=([^\s'\"]+)")
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_PARAM = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_HOW = {
    "http": "use {{ app_url }} (the sandbox maps it onto its app)",
    "health": "use {{ app_url }} (the sandbox maps it onto its app)",
    "metrics": "use {{ prometheus_url }} (the sandbox maps it onto its Prometheus)",
}
_HOW_ANY = (
    "take it from a parameter the sandbox maps ({{ app_url }}, {{ prometheus_url }}, "
    "{{ registry_url }}) or an environment variable it sets (DATABASE_URL, REPLICA_URL, "
    "LOGS_DATABASE_URL, KUBECONFIG, GITHUB_API_URL)"
)


@dataclass(frozen=True)
class Endpoint:
    """A step's field that would reach ``host``, outside the sandbox."""

    step: str  # "step smoke_ui_health", "guard read_replicas_healthy"
    location: str  # "runbook.yaml:403: phases[4].steps[2].with.url"
    host: str
    value: str
    how: str

    def __str__(self) -> str:
        return (
            f"{self.location}: {self.step} would reach {self.host} ({self.value!r}), outside "
            f"the sandbox; map it: {self.how}"
        )

    def as_json(self) -> dict[str, str]:
        return {"step": self.step, "location": self.location, "host": self.host,
                "value": self.value, "how": self.how}  # fmt: skip


def is_local(host: str) -> bool:
    return host.lower() in LOCAL or host.startswith("127.")


DocPath = tuple[str | int, ...]


def _calls(rb: Runbook) -> Iterator[tuple[str, str, Mapping[str, Any], DocPath]]:
    """(what, action, with, where in the document) of every action a release may run."""
    for i, phase in enumerate(rb.phases):
        for j, step in enumerate(phase.steps):
            yield f"step {step.id}", step.action, step.with_, ("phases", i, "steps", j, "with")
            if step.undo is not None:
                where: DocPath = ("phases", i, "steps", j, "undo", "with")
                yield f"step {step.id} (its undo)", step.undo.action, step.undo.with_, where
    for k, step in enumerate(rb.rollback):
        yield f"rollback step {step.id}", step.action, step.with_, ("rollback", k, "with")
    for name, guard in rb.guards.items():
        if guard.check is not None:
            where = ("guards", name, "check", "with")
            yield f"guard {name}", guard.check.action, guard.check.with_, where


def _strings(value: Any, path: DocPath) -> Iterator[tuple[DocPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def fill_params(text: str, params: Mapping[str, Any]) -> str:
    """Put the parameters into ``{{ name }}``; other templates stay as they are."""
    return _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)


def _hosts(text: str, *, env_value: bool) -> list[str]:
    found = [m.group(2) for m in _URL.finditer(text)]
    found += [m.group(1) for m in _HOST_KV.finditer(text)]
    if env_value and _HOST.match(text.strip()):
        found.append(text.strip().rsplit(":", 1)[0])
    return [h for h in found if not is_local(h) and "{" not in h]


def outside_endpoints(
    loaded: LoadedRunbook,
    params: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> list[Endpoint]:
    """Every field of the runbook that would reach a host outside the sandbox, with
    ``params`` (the sandbox's mapped ones included) put in."""
    environ = os.environ if environ is None else environ
    unset = ", ".join(sorted(SANDBOX_ENV - {"PATH", "HOME"}))
    found: list[Endpoint] = []
    for what, action, with_, base in _calls(loaded.runbook):
        for path, raw in _strings(dict(with_), base):
            field = path[len(base) :]
            if (action, field[0]) in LINK_ONLY:
                continue
            where = str(loaded.locate(path))
            text = fill_params(raw, params)
            key = str(field[-1])
            in_env = "env" in field[:-1] or key.endswith("_env")
            how = _HOW.get(action, _HOW_ANY)
            for host in _hosts(text, env_value=in_env):
                found.append(Endpoint(what, where, host, text, how))
            names = [m.group(1) for m in _VAR.finditer(text)]
            if key.endswith("_env"):
                names.append(text.strip())
            for name in names:
                if name in SANDBOX_ENV or name not in environ:
                    continue
                for host in _hosts(environ[name], env_value=True):
                    how = (
                        f"the sandbox does not set {name} and yours points at {host}: unset "
                        f"it, or read one the sandbox sets ({unset})"
                    )
                    found.append(Endpoint(what, where, host, f"${name}", how))
    return found
