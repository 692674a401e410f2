"""validate refuses what could never run or would run code: templates the sandbox refuses,
values a shell command cannot quote, steps that wait for themselves, quorums nobody can
reach, absurd durations and nesting; each with the file, the line and the field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipcaptain.cli.main import cli
from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.loader import parse_runbook


def problems(body: str) -> list[str]:
    with pytest.raises(InvalidRunbook) as info:
        parse_runbook(textwrap.dedent(body), "rb.yaml")
    return [str(p) for p in info.value.problems]


def one_step(command: str, action: str = "shell", key: str = "command") -> str:
    return f"""
        name: t
        parameters:
          tag: {{default: v1}}
        phases:
          - id: p
            steps:
              - id: a
                action: {action}
                with:
                  {key}: {json.dumps(command)}
    """


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("echo {{ ('x' * 10**10)|length }}", "the repeated value would be 10,000,000,000 long"),
        ("echo {{ range(10**9)|length }}", "range() of 1,000,000,000 numbers"),
        ("echo {{ 2 ** (10**9) }}", "more than 100,000 bits"),
        ("echo {{ 'x'|center(10**9) }}", "the text of the center filter would be"),
        ("echo {{ ''.__class__ }}", "attribute '__class__' is not allowed"),
        ("echo {{ tag['__class__'] }}", "attribute '__class__' is not allowed"),
        ("echo {{ self }}", "'self' is not available"),
        ("echo {{ tag ~ self }}", "'self' is not available"),
        ("echo {% for t in [tag] %}{{ t ~ loop }}{% endfor %}", "'loop' is not a value"),
        ("echo {% include 'x' %}", "{% include %} is not allowed"),
        ("echo {% import 'x' as y %}", "{% import %} is not allowed"),
        ("echo {% extends 'x' %}", "{% extends %} is not allowed"),
        ("echo {{ tag.ljust(9) }}", "calling .ljust() is not allowed in a template"),
        ("echo {{ tag.format(1) }}", "calling .format() is not allowed"),
        ("echo {{ lipsum }}", "unknown name 'lipsum' in template"),
        ("echo {{ tag|nosuch }}", "No filter named 'nosuch'"),
        ("echo ${{ tag }}", "in a shell command: a template value right after '$'"),
        ("echo `{{ tag }}`", "in a shell command: a template value inside backticks"),
        ("echo \\{{ tag }}", "in a shell command: a template value right after a backslash"),
    ],
)
def test_a_template_the_sandbox_refuses_is_refused_at_validate(command: str, says: str) -> None:
    found = problems(one_step(command))
    assert len(found) >= 1
    assert any(says in p for p in found), found
    assert all(p.startswith("rb.yaml:11: phases[0].steps[0].with.command: ") for p in found), found


def test_shell_quoting_is_checked_only_in_shell_command_lines() -> None:
    # a message may say ${{ }}: it is text, not a command line
    parse_runbook(textwrap.dedent(one_step("costs ${{ tag }}", "approval", "prompt")), "rb.yaml")
    assert problems(one_step("echo {{ tag }} $(echo `{{ tag }}`)", "smoke"))
    # opting out is allowed where quoting is not possible
    parse_runbook(textwrap.dedent(one_step("echo ${{ tag | raw }}")), "rb.yaml")


def test_the_example_runbook_and_the_imported_markdown_are_valid() -> None:
    root = Path(__file__).parents[2]
    runner = CliRunner()
    for path in [
        root / "examples/valuecanvas/runbook.yaml",
        *root.glob("tests/data/markdown/*.md"),
    ]:
        done = runner.invoke(cli, ["validate", str(path)])
        assert done.exit_code == 0, (path, done.output)


def test_a_step_that_needs_itself_is_refused() -> None:
    found = problems("""
        name: t
        phases:
          - id: p
            steps:
              - {id: a, action: shell, needs: [a], with: {command: "true"}}
    """)
    assert found == [
        "rb.yaml:6: phases[0].steps[0].needs[0]: a step cannot need itself; remove 'a' from needs"
    ]


def test_a_guard_waiting_for_its_own_step_or_a_later_phase_is_refused() -> None:
    found = problems("""
        name: t
        guards:
          own: {after_steps: [a]}
          later: {after_steps: [c]}
        phases:
          - id: p
            steps:
              - {id: a, action: shell, guards: [own], with: {command: "true"}}
              - {id: b, action: shell, guards: [later], with: {command: "true"}}
          - id: q
            steps:
              - {id: c, action: shell, with: {command: "true"}}
    """)
    assert (
        "rb.yaml:9: phases[0].steps[0].guards[0]: guard 'own' waits for step 'a' itself, and "
        "a guard is checked before its step starts: it could never pass; guard another step"
    ) in found
    assert (
        "rb.yaml:10: phases[0].steps[1].guards[0]: guard 'later' waits for step 'c' of phase "
        "'q', which runs after this step's phase 'p': the step could never start"
    ) in found


def test_a_guard_may_wait_for_an_earlier_step() -> None:
    parse_runbook(
        textwrap.dedent("""
        name: t
        guards:
          built: {after_steps: [a]}
        phases:
          - id: p
            steps:
              - {id: a, action: shell, with: {command: "true"}}
          - id: q
            steps:
              - {id: b, action: shell, guards: [built], with: {command: "true"}}
        """),
        "rb.yaml",
    )


QUORUM = """
    name: t
    roles:
      sre: {title: SRE, members: [sam]}
      captain: {title: Captain}
    phases:
      - id: p
        steps:
          - id: go
            action: approval
            with: {prompt: ok?, roles: [sre], quorum: 2}
          - id: open
            action: approval
            with: {prompt: ok?, roles: [captain], quorum: 2}
"""


def test_a_quorum_larger_than_the_roles_members_is_refused() -> None:
    assert problems(QUORUM) == [
        "rb.yaml:11: phases[0].steps[0].with.quorum: quorum 2 can never be reached: only 1 "
        "person can approve (sam); lower the quorum or add people to the role"
    ]  # the captain role has no members in the runbook: the team decides


def test_validate_with_a_team_file_checks_the_teams_holders(tmp_path: Path) -> None:
    runbook = tmp_path / "rb.yaml"
    runbook.write_text(textwrap.dedent(QUORUM).replace("roles: [sre], quorum: 2", "roles: [sre]"))
    team = tmp_path / "team.yaml"
    team.write_text("people:\n  casey: {admin: true, roles: {production: [captain]}}\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", str(runbook)]).exit_code == 0
    done = runner.invoke(cli, ["validate", str(runbook), "--team", str(team)])
    assert done.exit_code == 2, done.output
    assert (
        "rb.yaml:14: phases[0].steps[1].with.quorum: quorum 2 can never be reached: only 1 "
        "person can approve (casey)"
    ) in done.output
    team.write_text(
        "people:\n  casey: {admin: true, roles: [captain]}\n"
        "  sam: {roles: {staging: [captain, sre]}}\n"
    )
    assert runner.invoke(cli, ["validate", str(runbook), "--team", str(team)]).exit_code == 0


@pytest.mark.parametrize("timeout", ["1e400", "-1e400", "99999999999d", "367d"])
def test_an_absurd_duration_is_a_clean_error(timeout: str) -> None:
    found = problems(f"""
        name: t
        phases:
          - id: p
            steps:
              - {{id: a, action: shell, timeout: {timeout}, with: {{command: "true"}}}}
    """)
    assert len(found) == 1
    assert found[0].startswith("rb.yaml:6: phases[0].steps[0].timeout: "), found
    assert "366 days" in found[0] or "cannot be negative" in found[0], found


@pytest.mark.parametrize(
    "nested",
    [
        "phases: " + "[" * 5000 + "]" * 5000,
        "phases: " + "{a: " * 5000 + "1" + "}" * 5000,
        "phases:\n" + "".join("  " * i + "- \n" for i in range(1, 3000)),
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200)),
    ],
    ids=["flow lists", "flow mappings", "block lists", "aliases"],
)
def test_deep_nesting_is_a_clean_error(nested: str) -> None:
    found = problems("name: t\n" + nested)
    assert any("nested more than 50 levels deep" in p for p in found), found
    assert all(p.startswith("rb.yaml:") for p in found), found
