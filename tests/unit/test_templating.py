"""Rendering step parameters and messages, and resolving a release's parameter values."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.errors import Location, RunbookProblem, UsageError
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import (
    CONTEXT_ROOTS,
    RELEASE_FIELDS,
    ReleaseInfo,
    build_context,
    has_template,
    inspect_template,
    render_params,
    render_text,
    resolve_parameters,
)


def make_runbook(**parameters: dict[str, Any]) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "demo",
            "roles": {"feature_owner": {"title": "Feature Owner", "members": ["fola", "dev"]}},
            "parameters": parameters,
            "phases": [{"id": "build", "steps": [{"id": "tag", "action": "shell"}]}],
            "comms": {"expected_duration": 1800},
        }
    )


RELEASE = ReleaseInfo(id="rel-7", started_by="casey", environment="production")


def test_render_text_uses_values_and_leaves_plain_text_alone() -> None:
    assert render_text("v{{ version }}", {"version": "1.4.0"}) == "v1.4.0"
    assert render_text("no braces\n", {}) == "no braces\n"
    assert render_text("keep\n{{ x }}\n", {"x": 1}) == "keep\n1\n"


def test_an_undefined_name_is_an_error_not_an_empty_string() -> None:
    where = Location("runbook.yaml", 12, "phases[0].steps[0].with.command")
    with pytest.raises(RunbookProblem) as info:
        render_text("git tag v{{ versoin }}", {"version": "1"}, location=where)
    assert info.value.message == "cannot render 'git tag v{{ versoin }}': 'versoin' is undefined"
    assert info.value.location == where


def test_a_missing_step_output_is_an_error() -> None:
    with pytest.raises(RunbookProblem, match="has no attribute 'digest'"):
        render_text("{{ steps.tag.digest }}", {"steps": {"tag": {"commit": "abc"}}})


def test_templates_run_in_a_sandbox() -> None:
    with pytest.raises(RunbookProblem, match="unsafe"):
        render_text("{{ x.__class__.__mro__ }}", {"x": "text"})


def test_a_syntax_error_is_a_runbook_problem() -> None:
    with pytest.raises(RunbookProblem) as info:
        render_text("{{ version", {"version": "1"})
    assert info.value.message.startswith("template syntax error: unexpected end of template")


def test_shell_quote_filter() -> None:
    assert render_text("echo {{ msg | shell_quote }}", {"msg": "it's done"}) == (
        "echo 'it'\"'\"'s done'"
    )


def test_render_params_renders_every_string_and_keeps_other_values() -> None:
    params = {
        "command": "deploy v{{ version }}",
        "env": {"TAG": "v{{ version }}"},
        "roles": ["captain", "{{ who }}"],
        "quorum": 2,
        "dry": False,
        "nothing": None,
    }
    assert render_params(params, {"version": "2.0.0", "who": "sre"}) == {
        "command": "deploy v2.0.0",
        "env": {"TAG": "v2.0.0"},
        "roles": ["captain", "sre"],
        "quorum": 2,
        "dry": False,
        "nothing": None,
    }


def test_render_params_names_the_nested_field_of_an_error() -> None:
    where = Location("runbook.yaml", 9, "phases[0].steps[0].with")
    with pytest.raises(RunbookProblem) as info:
        render_params({"env": {"TAG": "ok"}, "roles": ["a", "{{ nope }}"]}, {}, location=where)
    assert info.value.location == Location("runbook.yaml", 9, "phases[0].steps[0].with.roles[1]")


def test_has_template() -> None:
    assert has_template("v{{ version }}")
    assert has_template("{% if x %}y{% endif %}")
    assert has_template("{# note #}")
    assert not has_template("${HOME} {single} braces")


def test_inspect_template_finds_names_and_step_outputs() -> None:
    use = inspect_template("{{ version }} {{ steps.tag.commit }} {{ steps['build'].image }}")
    assert use.names == {"version", "steps"}
    assert use.steps == {"tag", "build"}
    with pytest.raises(RunbookProblem, match="template syntax error"):
        inspect_template("{% if %}")


def test_build_context_has_the_parameters_and_the_release_values() -> None:
    rb = make_runbook(version={"required": True})
    context = build_context(rb, {"version": "1.4.0"}, RELEASE, {"tag": {"commit": "abc123"}})
    assert set(context) == {"version", *CONTEXT_ROOTS}
    assert context["release"] == {
        "id": "rel-7",
        "started_by": "casey",
        "environment": "production",
        "reason": "",
        "started_at": "",
        "captain": "casey",
        "captain_mention": "casey",  # the engine's has the Slack id when the team gives one
        "url": "",  # the engine's has the release's page (SHIPCAPTAIN_PUBLIC_URL)
        "expected_duration": "30 minutes",
        "smoke_tests_passed": [],
        "workflow_run_url": "",
        "tag": "",
    }
    assert set(context["release"]) == set(RELEASE_FIELDS)
    text = (
        "v{{ version }} by {{ release.started_by }} at {{ steps.tag.commit }}, "
        "{{ runbook.comms.expected_duration }}, "
        "owners {{ roles.feature_owner.members | join('+') }}"
    )
    assert render_text(text, context) == "v1.4.0 by casey at abc123, 30m, owners fola+dev"


def test_resolve_parameters_applies_defaults_and_types() -> None:
    rb = make_runbook(
        version={"required": True, "pattern": r"\d+\.\d+\.\d+"},
        environment={"default": "production", "choices": ["staging", "production"]},
        replicas={"type": "integer", "default": 3},
        dry_run={"type": "boolean", "default": False},
        note={},
    )
    values = resolve_parameters(rb, {"version": "1.4.0", "replicas": "5", "dry_run": "yes"})
    assert values == {
        "version": "1.4.0",
        "environment": "production",
        "replicas": 5,
        "dry_run": True,
        "note": None,
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "parameter 'version' is required (Release version); give it as version=<value>"),
        ({"version": "1.4"}, r"parameter 'version' must match /\d+\.\d+\.\d+/, not '1.4'"),
        (
            {"version": "1.4.0", "environment": "prod"},
            "parameter 'environment' must be one of staging, production, not 'prod'",
        ),
        ({"version": "1.4.0", "replicas": "three"}, "parameter 'replicas' must be a whole number"),
        ({"version": "1.4.0", "dry_run": "maybe"}, "parameter 'dry_run' must be true or false"),
        ({"version": "1.4.0", "verison": "x"}, "unknown parameter 'verison'; this runbook takes"),
    ],
)
def test_resolve_parameters_names_the_bad_parameter(given: dict[str, str], message: str) -> None:
    rb = make_runbook(
        version={"required": True, "description": "Release version", "pattern": r"\d+\.\d+\.\d+"},
        environment={"default": "production", "choices": ["staging", "production"]},
        replicas={"type": "integer", "default": 3},
        dry_run={"type": "boolean", "default": False},
    )
    with pytest.raises(UsageError) as info:
        resolve_parameters(rb, given)
    assert info.value.message.startswith(message)


def test_integer_choices_compare_as_numbers() -> None:
    rb = make_runbook(shards={"type": "integer", "choices": [1, 2, 4], "default": 1})
    assert resolve_parameters(rb, {"shards": "4"}) == {"shards": 4}
    with pytest.raises(UsageError, match="must be one of 1, 2, 4"):
        resolve_parameters(rb, {"shards": "3"})


def test_jinja_is_imported_only_when_a_runbook_has_a_template(tmp_path: Path) -> None:
    """A runbook without a template is checked, and its texts rendered, without Jinja or
    the sandbox; the first template imports them, is checked (a sandbox refusal is still
    found) and renders. In a fresh interpreter: this one has imported Jinja already."""
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        "name: plain\nphases:\n  - id: build\n    steps:\n"
        '      - {id: a, action: shell, with: {command: "echo a"}}\n'
    )
    templated = tmp_path / "templated.yaml"
    templated.write_text(
        "name: templated\nparameters: {version: {required: true}}\nphases:\n"
        "  - id: build\n    steps:\n"
        '      - {id: a, action: shell, with: {command: "echo {{ version }}"}}\n'
    )
    refused = tmp_path / "refused.yaml"
    refused.write_text(
        "name: refused\nphases:\n  - id: build\n    steps:\n"
        "      - {id: a, action: shell, with: {command: \"{% include 'x' %}\"}}\n"
    )
    code = textwrap.dedent(
        """
        import json, sys
        from shipcaptain.errors import InvalidRunbook
        from shipcaptain.runbook.loader import load_runbook_file
        from shipcaptain.runbook.templating import render_params, render_text
        MACHINERY = ("template_sandbox", "template_checks", "references")
        def jinja():
            return any(
                m.split(".")[0] == "jinja2" or m.endswith(MACHINERY) for m in sys.modules
            )
        plain = load_runbook_file(sys.argv[1]).runbook
        rendered = render_params(dict(plain.steps["a"].with_), {}, shell_fields=("command",))
        before = jinja()
        templated = load_runbook_file(sys.argv[2]).runbook
        after = jinja()
        try:
            load_runbook_file(sys.argv[3])
            refusal = ""
        except InvalidRunbook as exc:
            refusal = str(exc)
        shell = render_text(templated.steps["a"].with_["command"], {"version": "1 2"}, shell=True)
        print(json.dumps({
            "plain": [rendered, before],
            "templated": after,
            "refused": "include" in refusal,
            "shell": shell,
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(plain), str(templated), str(refused)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "plain": [{"command": "echo a"}, False],
        "templated": True,
        "refused": True,
        "shell": "echo '1 2'",
    }
