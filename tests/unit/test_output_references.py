"""Actions declare their outputs; validate and plan refuse references to outputs that do
not exist (with file, line and the spelling that works) instead of failing mid-release."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shipcaptain.actions.registry import registry
from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.runbook.references import OutputRef, output_references

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "valuecanvas" / "runbook.yaml"
CLI = [sys.executable, "-m", "shipcaptain.cli.main"]


def test_every_builtin_action_declares_its_outputs() -> None:
    undeclared = [n for n in registry.names() if registry.get(n).Outputs is None]
    assert undeclared == []


@pytest.mark.parametrize(
    ("source", "refs"),
    [
        ("{{ steps.tag.commit[:7] }}", [OutputRef("tag", "commit")]),
        ("{{ steps['tag']['commit'] }}", [OutputRef("tag", "commit")]),
        ("{{ steps.tag.outputs.commit }}", [OutputRef("tag", "outputs", "commit")]),
        ("{{ steps.deploy.outputs.images.api }}", [OutputRef("deploy", "outputs", "images")]),
        ("{{ steps.a.x }} {{ steps.a.x.y }}", [OutputRef("a", "x", "y")]),
        ("{{ steps.a }} {{ version }} {{ steps[name].x }}", []),
        ("{{ steps.a.x ", []),  # a syntax error is reported by the template check
    ],
)
def test_output_references(source: str, refs: list[OutputRef]) -> None:
    assert output_references(source) == refs


def _with_typo(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "runbook.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_github_actions_spelling_is_refused_with_the_right_one(tmp_path: Path) -> None:
    path = _with_typo(
        tmp_path, "steps.tag_release.commit[:7]", "steps.tag_release.outputs.commit[:7]"
    )
    with pytest.raises(InvalidRunbook) as err:
        load_runbook_file(path)
    text = str(err.value)
    line = _line_of(path, "steps.tag_release.outputs.commit")
    assert f"{path}:{line}: phases[4].steps[2].with.build" in text
    assert "GitHub Actions spelling" in text
    assert "did you mean steps.tag_release.commit?" in text


def test_misspelt_output_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = _with_typo(tmp_path, "steps.tag_release.commit[:7]", "steps.tag_release.comit[:7]")
    with pytest.raises(InvalidRunbook) as err:
        load_runbook_file(path)
    assert "step 'tag_release' (git_tag) has no output 'comit': did you mean " in str(err.value)
    assert "steps.tag_release.commit?" in str(err.value)


def test_outputs_inside_an_output_and_open_ended_actions_pass(tmp_path: Path) -> None:
    # github_workflow has an output named `outputs` (the run's artifact): not the habit
    loaded = load_runbook_file(EXAMPLE)
    assert "steps.trigger_deploy.outputs.images.api" in loaded.text
    # a shell step's ::output lines are named in the runbook: any name is accepted
    path = _with_typo(
        tmp_path, "command: npm run lint:policies", "command: echo {{ steps.verify_env.missing }}"
    )
    path.write_text(
        path.read_text().replace(
            "Completion of v{{ version }} announced",
            "Completion of v{{ version }} ({{ steps.policy_lint.anything }}) announced",
        )
    )
    text = path.read_text().replace(
        "needs: [metrics_analysis, rls_logs_checked]",
        "needs: [metrics_analysis, rls_logs_checked, policy_lint]",
    )
    path.write_text(text)
    load_runbook_file(path)


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_typo_that_would_have_rolled_back_is_refused_before_the_release(
    tmp_path: Path, command: str
) -> None:
    """smoke_ui_health (on_failure: rollback) compares the build with the tag's commit: with
    the GitHub Actions spelling it used to fail when rendered, after the rollout, and roll a
    good deploy back. Now neither validate nor plan accepts the runbook."""
    path = _with_typo(
        tmp_path, "steps.tag_release.commit[:7]", "steps.tag_release.outputs.commit[:7]"
    )
    args = [*CLI, command, str(path)] + (["-p", "version=1.4.0"] if command == "plan" else [])
    proc = subprocess.run(args, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _line_of(path, "steps.tag_release.outputs.commit")
    assert f"runbook.yaml:{line}: phases[4].steps[2].with.build" in proc.stderr
    assert "did you mean steps.tag_release.commit?" in proc.stderr
    assert "Traceback" not in proc.stderr
