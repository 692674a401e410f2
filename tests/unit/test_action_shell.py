"""The shell action runs real bash commands in a temporary work directory."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.actions.base import PlanContext, StepContext
from shipcaptain.actions.registry import registry
from shipcaptain.actions.shell import ShellAction, ShellParams
from shipcaptain.errors import ActionError

action = ShellAction()


def make_ctx(workdir: Path, progress: list[str] | None = None, **kw: Any) -> StepContext:
    sink = progress if progress is not None else []
    return StepContext(
        release_id="rel-1",
        step_id="tag",
        attempt=1,
        timeout=kw.pop("timeout", 30.0),
        workdir=workdir,
        progress=sink.append,
        **kw,
    )


def params(**raw: Any) -> ShellParams:
    return action.parse_params(raw)


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Running processes whose process group is ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def pids_in(lines: list[str], label: str) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(rf"{label} (\d+)", line))]


def test_registered_under_its_name() -> None:
    assert isinstance(registry.get("shell"), ShellAction)
    assert ShellAction.idempotent is False


def test_exit_zero_succeeds_with_output_in_detail(tmp_path: Path) -> None:
    lines: list[str] = []
    outcome = action.run(params(command="echo hello; echo oops >&2"), make_ctx(tmp_path, lines))
    assert outcome.ok
    assert outcome.summary == "exit 0"
    assert outcome.outputs["exit_code"] == 0
    assert outcome.detail == "hello\noops"
    assert lines == ["$ echo hello; echo oops >&2", "hello", "oops"]


def test_non_zero_exit_is_a_failed_outcome_naming_the_last_line(tmp_path: Path) -> None:
    outcome = action.run(
        params(command="echo starting; echo boom; echo; exit 3"), make_ctx(tmp_path)
    )
    assert not outcome.ok
    assert outcome.summary == "exit 3: boom"
    assert outcome.outputs["exit_code"] == 3
    assert outcome.retryable


def test_a_failing_middle_line_fails_the_step(tmp_path: Path) -> None:
    """errexit by default, as GitHub Actions' bash: `helm: command not found` then a
    succeeding last line is a failed step, and the lines after the failure do not run."""
    lines: list[str] = []
    command = "echo first\nno-such-tool-xyz --version\necho last > after.txt"
    outcome = action.run(params(command=command), make_ctx(tmp_path, lines))
    assert not outcome.ok
    assert outcome.summary.startswith("exit 127:")
    assert "no-such-tool-xyz" in outcome.summary
    assert not (tmp_path / "after.txt").exists()


def test_errexit_false_runs_every_line_and_the_last_one_decides(tmp_path: Path) -> None:
    command = "false\necho last > after.txt"
    outcome = action.run(params(command=command, errexit=False), make_ctx(tmp_path))
    assert outcome.ok
    assert (tmp_path / "after.txt").read_text() == "last\n"
    failing = action.run(params(command="false | cat", errexit=False), make_ctx(tmp_path))
    assert not failing.ok  # pipefail still applies


def test_the_check_command_runs_with_errexit_too(tmp_path: Path) -> None:
    """A check whose middle line fails does not say the work is done."""
    outcome = action.already_done(params(command="true", check="false\ntrue"), make_ctx(tmp_path))
    assert outcome is None


def test_success_exit_codes(tmp_path: Path) -> None:
    outcome = action.run(params(command="exit 3", success_exit_codes=[0, 3]), make_ctx(tmp_path))
    assert outcome.ok
    assert outcome.summary == "exit 3"


def test_pipefail_makes_a_failing_pipeline_fail(tmp_path: Path) -> None:
    outcome = action.run(params(command="false | cat"), make_ctx(tmp_path))
    assert outcome.summary == "exit 1"
    assert not outcome.ok


def test_killed_by_a_signal_exits_like_a_shell(tmp_path: Path) -> None:
    outcome = action.run(params(command="kill -9 $$"), make_ctx(tmp_path))
    assert not outcome.ok
    assert outcome.outputs["exit_code"] == 137
    assert outcome.summary == "exit 137 (killed by SIGKILL)"


def test_output_lines_become_outputs(tmp_path: Path) -> None:
    command = (
        'echo "::output version=1.4.0"; echo "::output digest=sha256:ab=cd"; '
        'echo "::output empty="; echo "say ::output nope=1"; echo "::output exit_code=99"'
    )
    outcome = action.run(params(command=command), make_ctx(tmp_path))
    assert outcome.outputs == {
        "version": "1.4.0",
        "digest": "sha256:ab=cd",
        "empty": "",
        "exit_code": 0,  # the real exit code wins
    }


def test_environment_layers_params_over_context_over_process(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, env={"RELEASE": "ctx", "TARGET": "ctx"})
    p = params(command='echo "$RELEASE $TARGET $HOME"', env={"TARGET": "param"})
    assert action.run(p, ctx).detail == f"ctx param {os.environ['HOME']}"


def test_cwd_is_relative_to_the_workdir(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    outcome = action.run(params(command="pwd", cwd="app"), make_ctx(tmp_path))
    assert outcome.detail == str(tmp_path / "app")


def test_missing_cwd_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"working directory .*nowhere does not exist"):
        action.run(params(command="true", cwd="nowhere"), make_ctx(tmp_path))


def test_cwd_that_is_a_file_cannot_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ActionError, match="is not a directory"):
        action.run(params(command="true", cwd="file"), make_ctx(tmp_path))


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    lines: list[str] = []
    command = 'echo "group $$"; sleep 30 & echo "child $!"; sleep 30'
    started = time.monotonic()
    outcome = action.run(params(command=command, timeout="1s"), make_ctx(tmp_path, lines))
    took = time.monotonic() - started

    assert not outcome.ok
    assert outcome.summary.startswith("timed out after 1s")
    assert outcome.outputs["exit_code"] is None
    assert took < 4
    [pgid] = pids_in(lines, "group")
    [child] = pids_in(lines, "child")
    assert not alive(child)
    assert group_members(pgid) == []


def test_a_command_that_ignores_sigterm_gets_sigkill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ShellAction, "kill_grace", 0.5)
    lines: list[str] = []
    command = 'trap "" TERM; echo "group $$"; sleep 30 & echo "child $!"; sleep 30'
    started = time.monotonic()
    outcome = action.run(params(command=command), make_ctx(tmp_path, lines, timeout=0.5))
    assert time.monotonic() - started < 4
    assert outcome.summary.startswith("timed out after 0.5s")
    [pgid] = pids_in(lines, "group")
    assert group_members(pgid) == []


def test_the_shorter_of_step_and_param_timeout_wins(tmp_path: Path) -> None:
    outcome = action.run(params(command="sleep 10", timeout="1h"), make_ctx(tmp_path, timeout=0.3))
    assert outcome.summary.startswith("timed out after 0.3s")


def test_background_process_holding_the_output_does_not_hold_the_step(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    outcome = action.run(
        params(command='sleep 20 & echo "child $!"; echo done'), make_ctx(tmp_path, lines)
    )
    [child] = pids_in(lines, "child")
    try:
        assert time.monotonic() - started < 3
        assert outcome.ok
        assert "done" in outcome.detail
        assert "in the background" in outcome.detail
    finally:
        os.kill(child, signal.SIGKILL)


def test_secrets_are_redacted_everywhere(tmp_path: Path) -> None:
    lines: list[str] = []
    ctx = make_ctx(tmp_path, lines, secrets=["vault-s3cr3t"])
    p = params(
        command=(
            'echo "token=$API_TOKEN"; echo "db=vault-s3cr3t"; '
            'echo "::output token=$API_TOKEN"; echo "$API_TOKEN failed"; exit 4'
        ),
        env={"API_TOKEN": "tok-123456"},
        secrets=["API_TOKEN", "NOT_SET_ANYWHERE"],
    )
    outcome = action.run(p, ctx)
    everything = "\n".join([*lines, outcome.summary, outcome.detail, str(outcome.outputs)])
    assert "tok-123456" not in everything
    assert "vault-s3cr3t" not in everything
    assert "token=***" in lines
    assert "db=***" in outcome.detail
    assert outcome.outputs["token"] == "***"
    assert outcome.summary == "exit 4: *** failed"


def test_multi_line_secrets_are_redacted_line_by_line(tmp_path: Path) -> None:
    key = "-----BEGIN KEY-----\nAAAAsecretline1\nBBBBsecretline2\n-----END KEY-----"
    ctx = make_ctx(tmp_path, env={"KEY": key})
    outcome = action.run(params(command='echo "$KEY"', secrets=["KEY"]), ctx)
    assert "secretline" not in outcome.detail


def test_describe_names_command_and_directory_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-from-env")
    p = params(
        command="curl -H 'Authorization: tok-from-env' https://example.test",
        cwd="app",
        secrets=["DEPLOY_TOKEN"],
    )
    text = action.describe(p, PlanContext(workdir=tmp_path))
    assert text == (
        f"run `curl -H 'Authorization: ***' https://example.test` in {tmp_path / 'app'}"
    )
    p = params(command="git push origin v1", check="git ls-remote --exit-code origin v1")
    assert action.describe(p, PlanContext(workdir=tmp_path)) == (
        f"run `git push origin v1` in {tmp_path}, "
        "unless `git ls-remote --exit-code origin v1` shows it is already done"
    )


def test_check_exit_zero_means_already_done(tmp_path: Path) -> None:
    (tmp_path / "tagged").write_text("v1.4.0")
    p = params(command="exit 1", check='test -f tagged && echo "::output tag=$(cat tagged)"')
    outcome = action.already_done(p, make_ctx(tmp_path))
    assert outcome is not None
    assert outcome.ok
    assert outcome.already_done
    assert outcome.outputs == {"tag": "v1.4.0", "exit_code": 0}


def test_check_non_zero_means_not_done(tmp_path: Path) -> None:
    lines: list[str] = []
    p = params(command="touch tagged", check="test -f tagged")
    assert action.already_done(p, make_ctx(tmp_path, lines)) is None
    assert lines[-1] == "check: exited 1, the work is not done yet"


def test_no_check_cannot_tell(tmp_path: Path) -> None:
    assert action.already_done(params(command="true"), make_ctx(tmp_path)) is None


def test_detail_keeps_the_last_lines(tmp_path: Path) -> None:
    outcome = action.run(params(command="seq 1 1000"), make_ctx(tmp_path))
    lines = outcome.detail.splitlines()
    assert lines[0] == "... (800 earlier lines not shown)"
    assert lines[1] == "801"
    assert lines[-1] == "1000"


def test_detail_stays_under_16_kib(tmp_path: Path) -> None:
    command = "for i in $(seq 1 100); do printf 'x%.0s' $(seq 1 500); echo; done; echo end"
    outcome = action.run(params(command=command), make_ctx(tmp_path))
    assert len(outcome.detail) <= 16 * 1024 + 100
    assert outcome.detail.endswith("end")
    assert outcome.detail.startswith("... (")


def test_a_line_without_newline_is_cut(tmp_path: Path) -> None:
    lines: list[str] = []
    action.run(params(command="head -c 40000 /dev/zero | tr '\\0' x"), make_ctx(tmp_path, lines))
    assert [len(line) for line in lines[1:]] == [16384, 16384, 40000 - 2 * 16384]


@pytest.mark.parametrize(
    "raw",
    [{}, {"command": ""}, {"command": "true", "timeout": 0}, {"command": "true", "shell": "zsh"}],
)
def test_bad_params_are_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        params(**raw)
