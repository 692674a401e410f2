"""Which commands in a Markdown runbook become which steps.

``NATIVE`` is the one table of commands that have (or will have) a native action. A
mapping whose action is not installed yet (``shipcaptain actions`` does not list it) is
imported as a ``shell`` step running the original command, with the native action and its
parameters recorded in the step's description; once the action exists the importer emits
it instead, with no other change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Native:
    """A command pattern and the native action (with parameters) it stands for. ``params``
    gets the match and the text around the command (the item's title); it returns None
    when the native action needs something neither says (the command stays a shell step)."""

    name: str
    pattern: re.Pattern[str]
    action: str
    params: Callable[[re.Match[str], str], Params | None]


def _rollout(m: re.Match[str], _context: str) -> Params:
    params: Params = {"deployments": [m.group("name")]}
    if m.group("timeout"):
        params["timeout"] = m.group("timeout")
    return _namespace(m, params)


def _tag(m: re.Match[str], _context: str) -> Params:
    params: Params = {"tag": m.group("tag")}
    if m.group("message"):
        params["message"] = m.group("message")
    params["push"] = bool(m.group("push"))
    return params


#: words saying which phase a migration belongs to; the expand words are looked for first
#: ("non-breaking" is expand, not breaking)
_EXPAND_WORDS = re.compile(
    r"\b(backwards?[- ]compatible|expand|additive|non[- ]breaking|add(s|ing)?|create)\b", re.I
)
_CONTRACT_WORDS = re.compile(r"\b(breaking|contract|destructive|drop(s|ping)?|remove)\b", re.I)


def migration_phase(text: str) -> str | None:
    """'Apply backward-compatible migrations first' -> 'expand'; None when it does not say."""
    if _EXPAND_WORDS.search(text):
        return "expand"
    if _CONTRACT_WORDS.search(text):
        return "contract"
    return None


def _supabase_push(m: re.Match[str], context: str) -> Params | None:
    """``supabase db push [--file F]``: the native step applies every pending migration of
    the phase the text names, from the file's directory (``supabase`` without a file)."""
    file = m.group("file")
    phase = migration_phase(f"{context} {file or ''}")
    if phase is None:
        return None
    directory = str(PurePosixPath(file).parent) if file else "supabase"
    return {"directory": directory, "phase": phase}


_NS = r"(?:\s+(?:-n|--namespace)[ =](?P<ns>\S+))?"
_NS_AFTER = r"(?:\s+(?:-n|--namespace)[ =](?P<ns2>\S+))?"
_DEPLOYMENT = r"(?P<ref>(?:deploy|deployment|deployments)/(?P<name>[\w.\x00-]+))"


def _namespace(m: re.Match[str], params: Params) -> Params:
    ns = next(
        (m.group(g) for g in ("ns", "ns2", "ns3") if g in m.re.groupindex and m.group(g)), None
    )
    return {**params, "namespace": ns} if ns else params


def _set_image(m: re.Match[str], _context: str) -> Params | None:
    """``kubectl set image deployment/api api=ghcr.io/acme/api:1.4 [-n ns]``."""
    images: Params = {}
    for pair in m.group("pairs").split():
        container, _, image = pair.partition("=")
        if not container or not image:
            return None
        images[container] = image
    return _namespace(m, {"deployment": m.group("ref"), "images": images})


def _apply_k(m: re.Match[str], _context: str) -> Params:
    """``kubectl apply -k DIR [-n ns]``: the overlay (its history namespace is the
    importer's to find: the kustomization's ``namespace:``, else a parameter)."""
    return _namespace(m, {"overlay": m.group("dir").rstrip("/") or "."})


def _undo(m: re.Match[str], _context: str) -> Params:
    """``kubectl rollout undo deployment/api [-n ns]`` (no --to-revision)."""
    return _namespace(m, {"deployments": [m.group("ref")]})


NATIVE: tuple[Native, ...] = (
    Native(
        "kubectl rollout status",
        re.compile(
            r"^kubectl" + _NS + r"\s+rollout\s+status\s+(?:deploy|deployment|deployments)/"
            r"(?P<name>[\w.\x00-]+)"
            + _NS_AFTER
            + r"(?:\s+--timeout[ =](?P<timeout>\w+))?"
            + _NS_AFTER.replace("ns2", "ns3")
            + r"\s*$"
        ),
        "k8s_rollout",
        _rollout,
    ),
    Native(
        "kubectl set image",
        re.compile(
            r"^kubectl"
            + _NS
            + r"\s+set\s+image\s+"
            + _DEPLOYMENT
            + _NS_AFTER
            + r"\s+(?P<pairs>(?:[\w*.-]+=[^\s=]+\s*)+?)"
            + _NS_AFTER.replace("ns2", "ns3")
            + r"\s*$"
        ),
        "k8s_set_image",
        _set_image,
    ),
    Native(
        "kubectl rollout undo",
        re.compile(r"^kubectl" + _NS + r"\s+rollout\s+undo\s+" + _DEPLOYMENT + _NS_AFTER + r"\s*$"),
        "k8s_rollback",
        _undo,
    ),
    Native(
        "kubectl apply -k",
        re.compile(
            r"^kubectl"
            + _NS
            + r"\s+apply"
            + _NS_AFTER
            + r"\s+(?:-k\s*|--kustomize[ =])(?P<dir>[^\s|;&]+)"
            + _NS_AFTER.replace("ns2", "ns3")
            + r"\s*$"
        ),
        "k8s_apply",
        _apply_k,
    ),
    Native(
        "git tag",
        re.compile(
            r"^git\s+tag\s+(?:-a\s+|-s\s+)?(?P<tag>\S+)(?:\s+-m\s+(?:\"(?P<message>[^\"]*)\"|'[^']*'))?"
            r"(?P<push>\s*&&\s*git\s+push\s+\S+\s+\S+)?\s*$"
        ),
        "git_tag",
        _tag,
    ),
    Native(
        "supabase db push",
        re.compile(r"^supabase\s+db\s+push(?:\s+--file[ =](?P<file>\S+))?\s*$"),
        "migrate",
        _supabase_push,
    ),
)

#: A fenced block in one of these languages holds shell commands.
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh", ""})
#: A fenced ``sql`` block is a check on the database: this native action (parameter
#: ``query``) once it is installed, else ``psql`` run by a shell step.
SQL_ACTION = "sql_check"

_NUMBER = r"`?(-?\d+(?:\.\d+)?)`?"
#: What the text around a ``sql`` block says its result must be, in the words runbooks
#: use: "should return no rows", "expect 0", "2 rows", "below 5", "more than 100".
_SQL_EXPECTATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "no_rows",
        re.compile(
            r"\b(?:no|zero|0)\s+rows?\b|\b(?:returns?|return|be)\s+(?:nothing|empty)\b"
            r"|\bis\s+empty\b",
            re.I,
        ),
    ),
    ("below", re.compile(r"\b(?:below|under|less than|fewer than)\s+" + _NUMBER, re.I)),
    ("above", re.compile(r"\b(?:above|over|more than|greater than|at least)\s+" + _NUMBER, re.I)),
    ("rows", re.compile(r"\b(\d+)\s+rows?\b", re.I)),
    (
        "equals",
        re.compile(
            r"\b(?:expect(?:ed|s)?|should\s+(?:be|return|equal)|must\s+(?:be|return|equal)"
            r"|equals?)\s*(?:to\s+)?(?::\s*)?" + _NUMBER,
            re.I,
        ),
    ),
)

_COMMAND_START = re.compile(r"^(?:\./|\$\s+)?[a-z][a-z0-9_.+-]*(?:/[\w.+-]+)*$")
_WAIT = re.compile(
    r"\bwait\s+(?:for\s+)?(?:about\s+)?(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.I,
)
_UNITS = {"s": "s", "m": "m", "h": "h"}


def recognise(command: str, context: str = "") -> tuple[Native, Params | None] | None:
    """The native mapping of one command line, if the table has one (its parameters are
    None when the command and ``context`` do not say enough)."""
    # a template ("<version>" became "{{ version }}") is one word of the command
    spans: list[str] = []

    def hide(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00"

    hidden = re.sub(r"\{\{.*?\}\}", hide, command.strip())
    for native in NATIVE:
        match = native.pattern.match(hidden)
        if match:
            params = native.params(match, context)
            return native, None if params is None else _shown(params, spans)
    return None


def _shown(value: Any, spans: list[str]) -> Any:
    """``value`` with the hidden templates back in place."""
    if isinstance(value, str):
        return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], value)
    if isinstance(value, dict):
        return {_shown(k, spans): _shown(v, spans) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, spans) for v in value]
    return value


#: Programs and shell builtins a runbook's command line starts with. A fixed list, not
#: what this machine has installed, so an import means the same everywhere. A line whose
#: first word is none of these (``rowsecurity = t``, ``deployment "api" successfully
#: rolled out``, ``queued → running → completed``) is output, not a command.
_PROGRAMS = """
    alembic ansible ansible-playbook apt apt-get argocd aws az bash bundle bundler cargo cat cd
    chmod chown cp createdb curl cut date deno df dig diff dnf docker docker-compose doctl
    dotnet dropdb du echo eksctl env exit export find firebase fly flyctl gcloud gh git go
    gradle grep gsutil gzip head helm helmfile heroku htop http istioctl java jq journalctl
    k9s kill kind kubectl kubectx kubens kustomize linkerd ln ls make minikube mkdir mongosh
    mongodump mongorestore mv mvn mysql mysqldump nc netlify nslookup node npm npx nc oc
    openssl php pg_dump pg_dumpall pg_isready pg_restore ping pip pip3 pnpm poetry printf
    promtool psql pulumi python python3 rails rake read redis-cli rm rsync ruby scp sed serverless
    set sh skaffold sleep source sqlite3 ssh stern sudo supabase systemctl tail tar tee terraform
    terragrunt test tilt timeout top touch tr true false unset unzip uv vacuumdb vault velero
    vercel watch wget wrangler xargs yarn yq zip cf flux kubeseal crane cosign skopeo mc rclone
    sops age gpg az aws-vault consul nomad packer vagrant podman buildah ctr crictl etcdctl
    sentry-cli datadog-ci newrelic pd pagerduty kcat kafka-topics rabbitmqctl mongo cqlsh
    clickhouse-client influx nginx apachectl service chkconfig sysctl ufw iptables
    bun just mise nx turbo goreleaser bazel tox nox pytest jest vitest npx playwright cypress
    k6 grpcurl s3cmd argo kubeadm kubelet etcdutl etcdctl helmsman sqlcmd mysqladmin gunzip zcat
    """
KNOWN_PROGRAMS = frozenset(_PROGRAMS.split())
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = frozenset({"sudo", "time", "env", "nohup", "exec", "command"})


def command_word(line: str) -> str | None:
    """The program a command line runs (after a ``$ `` prompt, ``VAR=value`` words and
    ``sudo``/``env``/``time``), or None for a blank or comment line."""
    words = strip_prompt(line.strip()).split()
    while words and (_ASSIGNMENT.match(words[0]) or words[0] in _WRAPPERS):
        if words[0] in ("export", "set") or (len(words) == 1 and _ASSIGNMENT.match(words[0])):
            break
        words = words[1:]
    if not words or words[0].startswith("#"):
        return None
    if _ASSIGNMENT.match(words[0]):
        return "export"  # a bare assignment sets a variable, like export
    return words[0]


def is_command_line(line: str) -> bool:
    """Does the line run a known program, a script (``./deploy.sh``, ``scripts/x.sh``) or
    a shell builtin? Lines of output, values and prose do not."""
    word = command_word(line)
    if word is None:
        return False
    return (
        word in KNOWN_PROGRAMS
        or word.startswith(("./", "~/", "/usr/", "/opt/", "bin/", "scripts/"))
        or bool(re.fullmatch(r"(?:[\w.-]+/)*[\w.-]+\.(?:sh|py|rb|pl|ps1)", word))
    )


def logical_lines(content: str, first_line: int) -> list[tuple[int, str]]:
    """The lines of a block, each with its line number, a line ending in ``\\`` joined
    with the next (one command)."""
    out: list[tuple[int, str]] = []
    carry: tuple[int, str] | None = None
    for k, raw in enumerate(content.splitlines()):
        line = raw.rstrip()
        if carry is not None:
            line_no, text = carry[0], carry[1] + "\n" + line
        else:
            line_no, text = first_line + k, line
        if line.endswith("\\"):
            carry = (line_no, text)
            continue
        carry = None
        out.append((line_no, text))
    if carry is not None:
        out.append(carry)
    return out


#: Commands that never exit by themselves: a step running one never finishes.
_NEVER_EXITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b(?:kubectl|oc)\s+(?:-\S+\s+\S+\s+)*logs\b[^|;&]*\s(?:-\w*f|--follow)(?:[\s=]|$)"
            r"|\b(?:kubectl|oc)\s+(?:-\S+\s+\S+\s+)*(?:get|events)\b[^|;&]*\s(?:-w|--watch\S*)"
            r"(?:[\s=]|$)|^stern\b"
        ),
        "drop the follow/watch flag (`kubectl logs --since=10m ...`, `kubectl rollout status "
        "...` to wait for a rollout)",
    ),
    (
        re.compile(
            r"\b(?:docker|podman)(?:\s+compose|-compose)?\s+logs\b[^|;&]*\s(?:-f|--follow)\b"
        ),
        "drop -f (`docker logs --since 10m ...`)",
    ),
    (
        re.compile(r"\b(?:tail|journalctl)\b[^|;&]*\s(?:-\w*[fF]\w*|--follow)\b"),
        "drop -f (`tail -n 100 ...`, `journalctl --since -10m ...`)",
    ),
    (
        re.compile(r"\bport-forward\b|\bkubectl\s+proxy\b|\bminikube\s+(?:dashboard|tunnel)\b"),
        "wrap it in `timeout 60 ...` with the command that uses it, or move it under a "
        "Troubleshooting heading",
    ),
    (
        re.compile(
            r"^(?:vi|vim|nano|emacs|less|more)\b|\b(?:kubectl|oc)\s+(?:-\S+\s+\S+\s+)*edit\b"
            r"|\b(?:kubectl|oc|docker|podman)\s+(?:-\S+\s+\S+\s+)*exec\b"
            r"(?:(?!\s--(?:\s|$))[^|;&])*\s-\w*t\w*\b"
        ),
        "it waits for a person at a terminal or an editor: use `kubectl patch`/`kubectl apply` "
        "(or exec without -t), or make it a checklist item for the person",
    ),
    (
        re.compile(r"^(?:watch|top|htop|k9s)\b"),
        "check once (`kubectl get pods`), or use a wait step / `kubectl rollout status`",
    ),
    (
        re.compile(
            r"^(?:npm\s+(?:start|run\s+(?:dev|serve|start))|yarn\s+(?:start|dev)|"
            r"python3?\s+-m\s+http\.server|flask\s+run|uvicorn|gunicorn|rails\s+s(?:erver)?\b|"
            r"(?:docker|podman)(?:\s+compose|-compose)\s+up(?![^|;&]*\s(?:-d|--detach)\b))"
        ),
        "run servers outside the runbook, or detach them (`docker compose up -d`)",
    ),
)


def never_exits(command: str) -> str | None:
    """A suggestion when a line of ``command`` runs something that never exits (follows
    logs, forwards a port, watches, serves); None when every line ends by itself."""
    for raw in command.splitlines():
        line = strip_prompt(raw.strip())
        if line.startswith(("timeout ", "#")) or line.endswith("&"):
            continue
        for pattern, suggestion in _NEVER_EXITS:
            if pattern.search(line):
                return suggestion
    return None


def is_command(code: str) -> bool:
    """Does an inline code span look like a command line (not a file, channel, value or
    output)? Its first word must be a known program or a script."""
    code = code.strip()
    if not code or code.startswith(("#", "http://", "https://")):
        return False
    first = code.split()[0]
    if first == "$":
        return True
    if not _COMMAND_START.match(first):
        return False
    if first.startswith("./"):
        return True
    return (
        " " in code
        and "/" not in first
        and not first.endswith((".md", ".sql", ".yml"))
        and is_command_line(code)
    )


def strip_prompt(line: str) -> str:
    return line[2:] if line.startswith("$ ") else line


def is_url(code: str) -> bool:
    return code.startswith(("http://", "https://")) and " " not in code


def wait_duration(text: str) -> str | None:
    """ "wait 10 minutes" -> '10m'."""
    match = _WAIT.search(text)
    if match is None:
        return None
    return match.group(1) + _UNITS[match.group(2)[0].lower()]


def sql_expectation(text: str) -> Params:
    """The ``sql_check`` expectation the text states (``{"rows": 0}``, ``{"below": 5.0}``
    ...), or nothing when it states none. "at least N" is above N - 1, for whole numbers
    (counts) only."""
    for kind, pattern in _SQL_EXPECTATIONS:
        match = pattern.search(text)
        if match is None:
            continue
        if kind == "no_rows":
            return {"rows": 0}
        if kind == "rows":
            return {"rows": int(match.group(1))}
        number = float(match.group(1))
        value: float | int = int(number) if number.is_integer() else number
        if kind == "above" and match.group(0).lower().startswith("at least"):
            if not isinstance(value, int):
                return {}  # "at least 0.5" has no strict bound to give: record, do not judge
            value = value - 1
        return {kind: value}
    return {}


def native_or_shell(
    command: str, installed: Collection[str], context: str = ""
) -> tuple[str, Params, str | None]:
    """The action, its parameters and the note for a command: the native action when it is
    installed and the text says enough, else ``shell`` with the mapping recorded as a note."""
    found = recognise(command, context)
    if found is None:
        return "shell", {"command": command}, None
    native, params = found
    if params is None:
        return (
            "shell",
            {"command": command},
            (
                f"maps to native action {native.action} once the text says which phase "
                "(backward-compatible/expand or breaking/contract)"
            ),
        )
    if native.action in installed:
        return native.action, params, None
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return "shell", {"command": command}, f"maps to native action {native.action} ({shown})"
