"""Values rendered into shell command lines: quoted for where they land, checked by bash
itself (the command prints the value back, exactly, and runs nothing of it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipcaptain.actions.base import StepContext
from shipcaptain.actions.shell import ShellAction, ShellParams, parameter_env
from shipcaptain.errors import RunbookProblem
from shipcaptain.runbook.shell_quoting import ARITHMETIC_CODE
from shipcaptain.runbook.templating import render_params, render_text

#: command lines that print the value ``v`` back; each puts it in another place
PRINTING = {
    "a word": "printf '%s' {{ v }}",
    "part of a word": "printf '%s' x{{ v }}y",
    "double quotes": "printf '%s' \"{{ v }}\"",
    "double quotes, twice": "printf '%s' \"a{{ v }}b{{ v }}\"",
    "single quotes": "printf '%s' '{{ v }}'",
    "ANSI-C quotes": "printf '%s' $'{{ v }}'",
    "command substitution": "printf '%s' \"$(printf '%s' {{ v }})\"",
    "nested substitution": "printf '%s' \"$(printf '%s' \"$(printf '%s' {{ v }})\")\"",
    "a case inside a substitution": ("printf '%s' \"$(case a in a) printf '%s' {{ v }};; esac)\""),
    "after a comment": "# {{ v }}\nprintf '%s' {{ v }}",
    "after a shift, which is no here-document": "x=$(( 1 << 2 ))\nprintf '%s' {{ v }}",
    "after an arithmetic command": "(( x = 1 << 2 ))\nprintf '%s' {{ v }}",
    "after the word case in $( )": "printf '%s' \"$(echo case)\"{{ v }}",
}
#: here-documents print the value and a line break (values with line breaks are refused)
HEREDOCS = {
    "here-document": "cat <<EOF\n{{ v }}\nEOF",
    "quoted here-document": "cat <<'EOF'\n{{ v }}\nEOF",
    "indented here-document": "cat <<-EOF\n\t{{ v }}\n\tEOF",
}
CANARY = '$(touch pwned)`touch pwned`;touch pwned;\'";touch pwned;"\\'


def bash(command: str, cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout.decode("utf-8", errors="surrogateescape")


def shell_line(template: str, value: str) -> str:
    return render_text(template, {"v": value}, shell=True)


def printed_by(where: str, value: str) -> str:
    """What the command of ``PRINTING[where]`` prints for ``value``."""
    if "substitution" in where:
        return value.rstrip("\n")  # $( ) drops trailing line breaks, quoted or not
    if where == "part of a word":
        return f"x{value}y"
    if where == "after the word case in $( )":
        return f"case{value}"
    if where == "double quotes, twice":
        return f"a{value}b{value}"
    return value


@pytest.mark.parametrize("where", list(PRINTING))
def test_a_value_is_never_run(where: str, tmp_path: Path) -> None:
    command = shell_line(PRINTING[where], CANARY)
    assert bash(command, tmp_path) == printed_by(where, CANARY)
    assert not (tmp_path / "pwned").exists(), command


@pytest.mark.parametrize("where", list(HEREDOCS))
def test_a_value_in_a_here_document_is_never_run(where: str, tmp_path: Path) -> None:
    command = shell_line(HEREDOCS[where], CANARY)
    assert bash(command, tmp_path) == CANARY + "\n"
    assert not (tmp_path / "pwned").exists(), command


def test_plain_values_read_as_written() -> None:
    line = 'git tag -a v{{ v }} -m "Release v{{ v }}" && git push origin v{{ v }}'
    assert shell_line(line, "1.4.0") == (
        'git tag -a v1.4.0 -m "Release v1.4.0" && git push origin v1.4.0'
    )
    assert shell_line("deploy {{ v }}", "a b") == "deploy 'a b'"
    assert shell_line("deploy {{ v }}", "") == "deploy ''"


def test_raw_is_the_explicit_opt_out_and_shell_quote_is_not_quoted_twice(tmp_path: Path) -> None:
    assert shell_line("{{ v | raw }}", "echo a; echo b") == "echo a; echo b"
    assert bash(shell_line("{{ v | raw }}", "echo a; echo b"), tmp_path) == "a\nb\n"
    assert shell_line("echo {{ v | shell_quote }}", "a b") == "echo 'a b'"
    # raw applies to the whole value: anything after it is a value again
    assert shell_line("echo {{ (v | raw) ~ '' }}", "a b") == "echo 'a b'"


@pytest.mark.parametrize(
    ("template", "value", "says"),
    [
        ("echo ${{ v }}", "HOME", "right after '$'"),
        ('echo "${{ v }}"', "(touch pwned)", "right after '$'"),
        ("echo \\{{ v }}", "a b", "right after a backslash"),
        ("echo `echo {{ v }}`", "a", "inside backticks"),
        ('echo "`echo {{ v }}`"', "a", "inside backticks"),
        ("cat <<EOF\n{{ v }}\nEOF", "a\nEOF\ntouch pwned", "line break cannot go into a here"),
        ("cat <<EOF\n{{ v }}\nEOF\necho after", "EOF", "would end the here-document EOF early"),
        ('cat <<E"O"F\n{{ v }}\nEOF', "a", "whose end cannot be told"),
        ("cat <<$(echo E)\nx\nE\necho {{ v }}", "a", "whose end cannot be told"),
        ("echo {{ v }}", "a\x00b", "NUL"),
        ("echo ${x:-{{ v }}}", "a", "inside ${ } cannot be quoted safely"),
        ('echo "${x:-{{ v }}}"', "a", "inside ${ } cannot be quoted safely"),
        ("cat <<EOF\n$(date) {{ v }}\nEOF", "a", "here-document that also runs commands"),
        ("echo $(( {{ v }} + 1 ))", "x", "must be a whole number"),
        ("(( {{ v }} > 1 ))", "SC_PARAM_OTHER", "must be a whole number"),
        ('x="{{ v }}"; [[ $x -eq 1 ]]', "a[$(touch pwned)]", "wherever bash reads it as a number"),
        ("declare -i n={{ v }}", "a[`touch pwned`]", "wherever bash reads it as a number"),
        ("{% filter upper %}echo {{ v }}{% endfilter %}", "a", "a filter changed a value"),
        ("{% set c %}echo {{ v }}{% endset %}{{ c }}", "a", "made of the command's own text"),
    ],
)
def test_what_cannot_be_quoted_is_refused(template: str, value: str, says: str) -> None:
    with pytest.raises(RunbookProblem) as info:
        shell_line(template, value)
    assert says in info.value.message


def test_a_whole_number_goes_into_arithmetic(tmp_path: Path) -> None:
    assert bash(shell_line("echo $(( {{ v }} + 1 ))", "41"), tmp_path) == "42\n"
    assert bash(shell_line("(( {{ v }} > 1 )) || echo small", "-7"), tmp_path) == "small\n"


def test_bash_does_run_code_in_arithmetic_which_is_why_such_values_are_refused(
    tmp_path: Path,
) -> None:
    # what the refusals above guard against: no quoting keeps bash's arithmetic from it
    command = "x='a[$(touch pwned)]'; [[ $x -eq 1 ]]"
    subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, check=False)
    assert (tmp_path / "pwned").exists()


def test_a_parameter_that_arithmetic_would_run_is_refused_at_start() -> None:
    from shipcaptain.errors import UsageError
    from shipcaptain.runbook.model import Runbook
    from shipcaptain.runbook.templating import resolve_parameters

    rb = Runbook.model_validate(
        {
            "name": "t",
            "parameters": {"tag": {"required": True}},
            "phases": [{"id": "p", "steps": [{"id": "a", "action": "shell"}]}],
        }
    )
    assert resolve_parameters(rb, {"tag": "v1.4.0 $(before) [rc]"})["tag"]
    with pytest.raises(UsageError, match="bash runs that as a command"):
        resolve_parameters(rb, {"tag": "a[$(touch pwned)]"})


def test_only_an_actions_shell_parameters_are_quoted() -> None:
    rendered = render_params(
        {"command": "echo {{ v }}", "check": "test -e {{ v }}", "env": {"V": "{{ v }}"}},
        {"v": "a b"},
        shell_fields=("command",),
    )
    assert rendered == {"command": "echo 'a b'", "check": "test -e a b", "env": {"V": "a b"}}


def test_release_parameters_are_in_the_commands_environment(tmp_path: Path) -> None:
    assert parameter_env({"tag": "v1", "dry-run": True, "count": 3, "none": None}) == {
        "SC_PARAM_TAG": "v1",
        "SC_PARAM_DRY_RUN": "true",
        "SC_PARAM_COUNT": "3",
    }
    ctx = StepContext(
        release_id="rel-1",
        step_id="s",
        attempt=1,
        timeout=10,
        workdir=tmp_path,
        release_values={"tag": CANARY},
    )
    outcome = ShellAction().run(
        ShellParams(command="printf '::output tag=%s\\n' \"$SC_PARAM_TAG\""), ctx
    )
    assert outcome.ok, outcome.detail
    assert outcome.outputs["tag"] == CANARY
    assert not (tmp_path / "pwned").exists()


# ---- property: any value, any place ---------------------------------------------------------

_NASTY = st.sampled_from([*"abc $`\"'\\;|&(){}[]<>*?#~!%=\t\n", "$(touch pwned)", "EOF"])
_VALUES = st.one_of(
    st.lists(_NASTY, max_size=12).map("".join),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20),
)


@given(value=_VALUES)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_bash_reads_back_any_value_from_any_place(
    value: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cwd = tmp_path_factory.mktemp("bash")
    if ARITHMETIC_CODE.search(value):  # code to bash's arithmetic, however it is quoted
        for template in [*PRINTING.values(), *HEREDOCS.values()]:
            with pytest.raises(RunbookProblem, match="reads it as a number"):
                shell_line(template, value)
        return
    for where, template in PRINTING.items():
        command = shell_line(template, value)
        assert bash(command, cwd) == printed_by(where, value), (where, command)
    for where, template in HEREDOCS.items():
        try:
            command = shell_line(template, value)
        except RunbookProblem:
            assert "\n" in value or value.lstrip("\t") == "EOF"
            continue
        # bash strips the leading tabs of every line of a <<- here-document, values' too
        want = value.lstrip("\t") if where == "indented here-document" else value
        assert bash(command, cwd) == want + "\n", command
    assert not (cwd / "pwned").exists()
