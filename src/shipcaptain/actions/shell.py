"""The ``shell`` action: run a command of the runbook with bash, as the captain would.

The command runs with ``bash -e -o pipefail -c`` (as GitHub Actions' bash does: a
failing line of a multi-line command, or of a pipeline, fails the step), in its own
process group, with the release's environment; ``errexit: false`` runs it with
``bash -o pipefail -c`` instead, where only the last line's exit code counts.
Its output (stdout and stderr interleaved) streams line by line
to the live view, with secrets replaced by ``***``; the last lines are kept in the
step's detail. A line ``::output name=value`` printed by the command becomes the step
output ``name`` (every step also gets ``exit_code``), so later steps can use it.

A command that exits with a code outside ``success_exit_codes`` is a failed try, not
an error. A command that runs longer than its limit is stopped with its whole process
group: SIGTERM, then SIGKILL after five seconds.

Release values reach the command two ways. A template value in ``command`` or ``check``
(``git tag v{{ version }}``) is quoted for where it lands in the command line, so it is
always one value, never shell code (``{{ x | raw }}`` opts out for one use: the value is
then shell code the runbook's author vouches for). And every release parameter is in the
command's environment as ``SC_PARAM_<NAME>`` (upper case, ``-`` as ``_``; true/false for
booleans), so a script reads ``"$SC_PARAM_VERSION"`` without any template at all.

A shell command may change the world, so the action is not idempotent. Give it a
``check`` command (exit 0 = the work is already done) so a resumed release does not
run it twice: ``check: git rev-parse -q --verify refs/tags/v{{ version }}``.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, Field, field_validator

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.errors import ActionError
from shipcaptain.runbook.durations import Duration, format_duration

#: ``::output name=value`` lines become step outputs.
#: If the engine process dies (kill -9, OOM), the command's shell dies with it, so the
#: step cannot go on in the background while the recovered engine runs it again. The
#: kernel's parent-death signal, set by util-linux's setpriv (no preexec_fn, which is unsafe
#: in a threaded process). Processes the shell already started are not covered.
_DIE_WITH_ENGINE: list[str] = (
    ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
)

OUTPUT_LINE = re.compile(r"^::output ([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$")

TAIL_LINES = 200
TAIL_CHARS = 16 * 1024
#: A line longer than this is cut into pieces (a progress bar without newlines, a binary dump).
MAX_LINE_BYTES = 16 * 1024
#: After the command exits, how long to keep reading output that its background
#: processes may still write before the step ends without them.
DRAIN_SECONDS = 0.5
#: Secrets shorter than this are not redacted (they would blank out ordinary text).
MIN_SECRET_LENGTH = 4


class ShellParams(ActionParams):
    """Parameters of the ``shell`` action."""

    command: str = Field(
        min_length=1,
        description="Command line, run with `bash -e -o pipefail -c` (see `errexit`).",
    )
    errexit: bool = Field(
        default=True,
        description="Stop at the first failing line (bash -e), as GitHub Actions does; false: "
        "run every line and only the last line's exit code counts (pipefail still applies).",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set for the command (over the release's environment).",
    )
    cwd: str | None = Field(
        default=None, description="Working directory, relative to the release's work directory."
    )
    timeout: Duration | None = Field(
        default=None, description="Limit for the command; the step's own timeout still applies."
    )
    check: str | None = Field(
        default=None,
        description="Command whose exit code 0 means the work is already done; "
        "then the step is skipped. Its `::output` lines become the step's outputs.",
    )
    secrets: list[str] = Field(
        default_factory=list,
        description="Names of environment variables whose values are replaced by *** in output.",
    )
    success_exit_codes: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="Exit codes that count as success."
    )

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("timeout must be more than 0 seconds")
        return value


@dataclass
class _Run:
    """What one command produced."""

    exit_code: int | None  # None: stopped because it ran out of time
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lines_seen: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    left_running: bool = False  # background processes still held the output when it exited
    signal_name: str | None = None  # the signal that killed the command, if one did

    @property
    def last_line(self) -> str:
        for line in reversed(self.tail):
            if line.strip():
                return line.strip()
        return ""

    def detail(self) -> str:
        lines = list(self.tail)
        text = "\n".join(lines)
        while len(text) > TAIL_CHARS and len(lines) > 1:
            lines.pop(0)
            text = "\n".join(lines)
        if len(text) > TAIL_CHARS:
            text = text[-TAIL_CHARS:]
        hidden = self.lines_seen - len(lines)
        if hidden > 0:
            text = f"... ({hidden} earlier lines not shown)\n{text}"
        if self.left_running:
            text += (
                "\n... (the command exited while processes it started in the background"
                " still held its output; their later output is not shown)"
            )
        return text


def parameter_env(values: Mapping[str, object]) -> dict[str, str]:
    """The release's parameters as environment variables: ``SC_PARAM_<NAME>``."""
    env: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if "\x00" not in text:  # the environment cannot hold a NUL; templates refuse it too
            env["SC_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()] = text
    return env


def _redactor(secrets: list[str]) -> Callable[[str], str]:
    """Replace every secret (and every line of a multi-line secret) by ``***``."""
    values: set[str] = set()
    for secret in secrets:
        values.add(secret)
        values.update(line.strip() for line in secret.splitlines())
    ordered = sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def redact(text: str) -> str:
        for value in ordered:
            text = text.replace(value, "***")
        return text

    return redact


class ShellOutputs(ActionOutputs):
    """Outputs of the ``shell`` action, and one per ``::output name=value`` line."""

    model_config = ConfigDict(extra="allow")

    exit_code: int | None = Field(description="The command's exit code.")


class ShellAction(Action[ShellParams]):
    """Run a shell command, stream its output, and stop it (and its children) on timeout.

    Exit codes in ``success_exit_codes`` succeed; others are a failed try that names the
    code and the last line printed. Lines ``::output name=value`` become step outputs.
    Not idempotent: give it a ``check`` command to make re-runs after a crash safe.

    Release values are data, never shell code: a template value in ``command`` or
    ``check`` is quoted for where it lands (a word, double or single quotes, ``$( )``, a
    here-document), so ``-p 'tag=$(touch x)'`` gives the command the text ``$(touch x)``;
    ``{{ x | raw }}`` is the explicit opt-out for one use. A value that cannot be quoted
    where it is (right after ``$`` or ``\\``, inside backticks) is refused by ``validate``.
    Every release parameter is also in the environment as ``SC_PARAM_<NAME>``.
    """

    name = "shell"
    summary = "Run a shell command with a timeout, redacted output and an 'already done' check."
    Params = ShellParams
    Outputs = ShellOutputs
    idempotent = False
    shell_params = ("command", "check")

    #: Seconds between SIGTERM and SIGKILL when a command runs out of time.
    kill_grace: ClassVar[float] = 5.0

    # ---- plan ----

    def describe(self, params: ShellParams, ctx: PlanContext) -> str:
        env = {**os.environ, **params.env}
        redact = _redactor([env[n] for n in params.secrets if n in env])
        where = ctx.workdir / params.cwd if params.cwd else ctx.workdir
        text = f"run `{params.command}` in {where}"
        if params.check:
            text += f", unless `{params.check}` shows it is already done"
        return redact(text)

    # ---- run ----

    def already_done(self, params: ShellParams, ctx: StepContext) -> Outcome | None:
        if not params.check:
            return None
        env, cwd, redact, limit = self._prepare(params, ctx)
        ctx.progress(redact(f"check: $ {params.check}"))
        run = self._execute(
            params.check,
            errexit=params.errexit,
            env=env,
            cwd=cwd,
            limit=limit,
            redact=redact,
            progress=ctx.progress,
            prefix="check: ",
        )
        if run.exit_code != 0:
            reason = "timed out" if run.exit_code is None else f"exited {run.exit_code}"
            ctx.progress(f"check: {reason}, the work is not done yet")
            return None
        return Outcome.success(
            "already done: the check command exited 0",
            already_done=True,
            detail=run.detail(),
            outputs={**run.outputs, "exit_code": 0},
        )

    def run(self, params: ShellParams, ctx: StepContext) -> Outcome:
        env, cwd, redact, limit = self._prepare(params, ctx)
        ctx.progress(redact(f"$ {params.command}"))
        run = self._execute(
            params.command,
            errexit=params.errexit,
            env=env,
            cwd=cwd,
            limit=limit,
            redact=redact,
            progress=ctx.progress,
        )
        outputs: dict[str, object] = {**run.outputs, "exit_code": run.exit_code}
        if run.exit_code is None:
            return Outcome.failure(
                f"timed out after {format_duration(limit)}; the command and its child "
                "processes were stopped",
                detail=run.detail(),
                outputs=outputs,
            )
        summary = f"exit {run.exit_code}"
        if run.exit_code >= 128 and run.signal_name:
            summary += f" (killed by {run.signal_name})"
        if run.exit_code in params.success_exit_codes:
            return Outcome.success(summary, detail=run.detail(), outputs=outputs)
        if run.last_line:
            summary += f": {_shorten(run.last_line, 200)}"
        return Outcome.failure(summary, detail=run.detail(), outputs=outputs)

    # ---- helpers ----

    def _prepare(
        self, params: ShellParams, ctx: StepContext
    ) -> tuple[dict[str, str], Path, Callable[[str], str], float]:
        env = {**os.environ, **parameter_env(ctx.release_values), **ctx.env, **params.env}
        redact = _redactor([*ctx.secrets, *(env[n] for n in params.secrets if n in env)])
        cwd = Path(ctx.workdir) / params.cwd if params.cwd else Path(ctx.workdir)
        if not cwd.is_dir():
            problem = "is not a directory" if cwd.exists() else "does not exist"
            raise ActionError(redact(f"cannot run the command: working directory {cwd} {problem}"))
        limit = ctx.timeout if params.timeout is None else min(params.timeout, ctx.timeout)
        return env, cwd, redact, limit

    def _execute(
        self,
        command: str,
        *,
        errexit: bool = True,
        env: Mapping[str, str],
        cwd: Path,
        limit: float,
        redact: Callable[[str], str],
        progress: Callable[[str], None],
        prefix: str = "",
    ) -> _Run:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*_DIE_WITH_ENGINE, "bash", *_flags(errexit), "-c", command],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionError(redact(f"cannot start the command in {cwd}: {exc}")) from exc

        run = _Run(exit_code=None)

        def line_out(raw: bytes) -> None:
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            match = OUTPUT_LINE.match(text)
            if match:
                run.outputs[match.group(1)] = redact(match.group(2))
            shown = redact(text)
            run.tail.append(shown)
            run.lines_seen += 1
            progress(prefix + shown)

        assert proc.stdout is not None
        with proc, proc.stdout:
            reader = _LineReader(proc.stdout.fileno(), line_out)
            deadline = started + limit
            exited_at: float | None = None
            while not reader.eof:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > DRAIN_SECONDS:
                    run.left_running = True
                    break
                if exited_at is None and now >= deadline:
                    self._stop_group(proc, reader)
                    reader.drain(DRAIN_SECONDS)
                    reader.flush()
                    return run
                reader.read(min(0.1, max(deadline - now, 0.0)))
            reader.flush()
            code = proc.wait()
        # like a shell: a command killed by signal N exits 128 + N
        run.exit_code = code if code >= 0 else 128 - code
        if code < 0:
            run.signal_name = signal.Signals(-code).name
        return run

    def _stop_group(self, proc: subprocess.Popen[bytes], reader: _LineReader) -> None:
        """SIGTERM the command's process group, SIGKILL what is left after ``kill_grace``."""
        pgid = proc.pid  # start_new_session: the command leads its own group
        _signal_group(pgid, signal.SIGTERM)
        give_up = time.monotonic() + self.kill_grace
        while time.monotonic() < give_up:
            proc.poll()  # reap bash so it does not count as alive
            if not _group_alive(pgid):
                break
            reader.read(0.05)  # keep the pipe flowing so nobody blocks on a full pipe
        else:
            _signal_group(pgid, signal.SIGKILL)
            # SIGKILL cannot be ignored, but dying takes a moment: wait so that nothing
            # of the command is left running when the step's outcome is recorded.
            gone_by = time.monotonic() + 2.0
            while time.monotonic() < gone_by:
                proc.poll()
                if not _group_alive(pgid):
                    break
                reader.read(0.02)
        proc.wait()


class _LineReader:
    """Read a pipe without blocking for longer than asked, and hand out whole lines."""

    def __init__(self, fd: int, on_line: Callable[[bytes], None]) -> None:
        self.fd = fd
        self.on_line = on_line
        self.buffer = b""
        self.eof = False

    def read(self, wait: float) -> None:
        if self.eof:
            time.sleep(wait)
            return
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.on_line(line)
        while len(self.buffer) > MAX_LINE_BYTES:
            self.on_line(self.buffer[:MAX_LINE_BYTES])
            self.buffer = self.buffer[MAX_LINE_BYTES:]

    def drain(self, seconds: float) -> None:
        """Read what is left, for at most ``seconds``."""
        until = time.monotonic() + seconds
        while not self.eof and time.monotonic() < until:
            self.read(0.05)

    def flush(self) -> None:
        if self.buffer:
            self.on_line(self.buffer)
            self.buffer = b""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # everyone in the group has already exited
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is still running (exited zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # killpg also reaches zombies that nobody has reaped yet; look closer where /proc exists.
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return True
    for stat in proc_dir.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _flags(errexit: bool) -> list[str]:
    """bash's options: errexit (unless the step opts out) and pipefail."""
    return ["-e", "-o", "pipefail"] if errexit else ["-o", "pipefail"]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
