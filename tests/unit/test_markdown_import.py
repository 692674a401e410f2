"""Markdown runbooks: import against expected YAML, annotations, export round trip, errors
at Markdown lines, and the CLI commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from shipcaptain.cli.main import cli
from shipcaptain.errors import InvalidRunbook
from shipcaptain.markdown.export import export_markdown
from shipcaptain.markdown.importer import import_markdown
from shipcaptain.markdown.recognisers import sql_expectation
from shipcaptain.runbook.loader import load_runbook, load_runbook_file
from shipcaptain.runbook.model import Runbook

DATA = Path(__file__).parent.parent / "data" / "markdown"
RUNBOOKS = sorted(p.stem for p in DATA.glob("*.md"))


@pytest.mark.parametrize("name", RUNBOOKS)
def test_import_matches_expected_yaml(name: str) -> None:
    markdown = DATA / f"{name}.md"
    imported = import_markdown(markdown.read_text(encoding="utf-8"), f"{name}.md")
    expected = YAML(typ="safe").load((DATA / f"{name}.yaml").read_text(encoding="utf-8"))
    assert YAML(typ="safe").load(imported.yaml_text()) == expected


@pytest.mark.parametrize("name", RUNBOOKS)
def test_imported_runbook_is_valid_and_every_step_has_its_line(name: str) -> None:
    loaded = load_runbook_file(DATA / f"{name}.md")
    lines = (DATA / f"{name}.md").read_text(encoding="utf-8").splitlines()
    for step in [*loaded.runbook.steps.values(), *loaded.runbook.rollback]:
        assert step.source is not None
        assert step.source.line is not None
        assert lines[step.source.line - 1].strip(), step.id


def test_seed_maps_commands_roles_slas_and_templates() -> None:
    rb = load_runbook(DATA / "seed.md")
    assert set(rb.roles) == {"release_captain", "on_call_sre", "feature_owners"}
    assert rb.slas["P1"].acknowledge == 300
    assert rb.slas["P2"].mitigate == 7200
    assert rb.parameters["version"].required
    assert "{{ release.reason }}" in rb.comms.templates["rollback"]
    assert rb.comms.channel == "#releases"
    # kubectl rollout status lines become the native watch (installed here)
    rollout = [s for s in rb.steps.values() if s.action == "k8s_rollout"]
    assert [s.with_["deployments"] for s in rollout] == [["api"], ["web"], ["worker"]]
    ui = rb.steps["ui"]  # the health check's "+ build hash": the commit the release tagged
    assert ui.with_["expect_status"] == 200
    tag = next(s.id for s in rb.steps.values() if s.action == "git_tag")
    assert ui.with_["body_pattern"] == "{{ steps." + tag + ".commit[:7] | regex_escape }}"
    assert "the commit it tagged (the build hash the runbook expects)" in ui.description
    confirm = next(s for s in rb.steps.values() if s.title.startswith("Confirm changelog"))
    # each feature owner confirms the part of the changelog touching their surfaces
    assert confirm.action == "changelog_sign_off"
    assert confirm.with_["owners"] == "feature_owners"
    assert confirm.with_["unassigned_to"] == "release_captain"
    assert confirm.with_["tag"] == "HEAD"
    assert [p.id for p in rb.phases][:3] == [
        "pre_flight_checklist",
        "tag_and_build",
        "database_migrations_ordered",
    ]


def test_annotation_sets_id_and_unmapped_items_are_listed() -> None:
    imported = import_markdown((DATA / "checklist.md").read_text(encoding="utf-8"), "c.md")
    ids = [s["id"] for p in imported.data["phases"] for s in p["steps"]]
    assert "full-rollout" in ids
    wait = next(s for p in imported.data["phases"] for s in p["steps"] if s["action"] == "wait")
    assert wait["with"]["duration"] == "10m"
    assert len(imported.data["rollback"]) == 2
    table = import_markdown((DATA / "table.md").read_text(encoding="utf-8"), "t.md")
    assert [u.line for u in table.unmapped] == [17]


def test_errors_point_at_markdown_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text(
        "# Bad\n\n## Go\n\n- Build: `make all` <!-- shipcaptain: needs=nowhere -->\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert f"{path}:5" in str(caught.value)
    assert "nowhere" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "examples/valuecanvas/runbook.yaml",
        "tests/data/markdown/queries.md",
        *(f"tests/data/markdown/{name}.md" for name in RUNBOOKS),
    ],
)
def test_export_then_import_gives_the_same_runbook(source: str, tmp_path: Path) -> None:
    root = Path(__file__).parent.parent.parent
    rb = load_runbook(root / source)
    exported = tmp_path / "RUNBOOK.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    again = load_runbook(exported)
    # guards, defaults, retries and undo travel in shipcaptain blocks; only where each
    # step came from, and the wording of descriptions, differ
    lossy: dict[str, object] = {}
    step_lossy = {"source", "description"}

    def shape(r: object) -> dict[str, object]:
        data = r.model_dump(exclude=lossy)  # type: ignore[attr-defined]
        for phase in data["phases"]:
            phase.pop("description")
            phase["steps"] = [
                {k: v for k, v in s.items() if k not in step_lossy} for s in phase["steps"]
            ]
        data["rollback"] = [
            {k: v for k, v in s.items() if k not in step_lossy} for s in data["rollback"]
        ]
        for role in data["roles"].values():
            role.pop("surfaces")
        return data

    assert shape(again) == shape(rb)


def test_cli_import_check_and_export(tmp_path: Path) -> None:
    runner = CliRunner()
    seed = str(DATA / "seed.md")
    out = tmp_path / "runbook.yaml"
    result = runner.invoke(cli, ["import", seed, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["import", seed, "--check", "-o", str(out)]).exit_code == 0
    out.write_text(out.read_text().replace("--timeout=5m", "--timeout=9m"), encoding="utf-8")
    stale = runner.invoke(cli, ["import", seed, "--check", "-o", str(out)])
    assert stale.exit_code == 2
    assert "timeout=9m" in stale.output
    md = tmp_path / "RUNBOOK.md"
    assert runner.invoke(cli, ["export", str(out), "-o", str(md)]).exit_code == 0
    assert "kubectl rollout status deploy/api --timeout=9m" in md.read_text()


def test_an_unknown_annotation_word_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "typo.md"
    path.write_text("# T\n\n## Go\n\n- Build: `make all` <!-- shipcaptain: neds=x -->\n")
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert f"{path}:5" in str(caught.value)
    assert "unknown neds" in str(caught.value)


def test_a_native_action_is_used_once_it_is_installed() -> None:
    text = "# R\n\n## Roll out\n\n- Watch: `kubectl rollout status deploy/api --timeout=5m`\n"
    later = import_markdown(text, "r.md", installed={"shell", "k8s_rollout"})
    step = later.data["phases"][0]["steps"][0]
    assert (step["action"], step["with"]) == (
        "k8s_rollout",
        {"deployments": ["api"], "timeout": "5m"},
    )
    now = import_markdown(text, "r.md", installed={"shell"})
    assert now.data["phases"][0]["steps"][0]["action"] == "shell"


def test_seed_migrations_become_native_steps_with_contract_after_the_rollout() -> None:
    """With the actions installed (as ``release start RUNBOOK.md`` loads it), the seed's
    ``supabase db push`` lines are migrate steps whose phase the text names, the schema
    query is verify_schema, and the breaking migrations move after the rollout."""
    rb = load_runbook(DATA / "seed.md")
    migrations = {s.id: s for s in rb.steps.values() if s.action == "migrate"}
    assert {s.with_["phase"]: s.with_["directory"] for s in migrations.values()} == {
        "expand": "migrations",
        "contract": "migrations",
    }
    contract = next(s for s in migrations.values() if s.with_["phase"] == "contract")
    assert contract.source is not None
    assert contract.source.line == 29
    verify = next(s for s in rb.steps.values() if s.action == "verify_schema")
    assert verify.with_ == {"directory": "migrations"}
    phases = [p.id for p in rb.phases]
    assert phases.index("database_migrations_ordered_after_rollout") == (
        phases.index("application_rollout") + 1
    )
    rollouts = [s.id for s in rb.steps.values() if s.action == "k8s_rollout"]
    assert len(rollouts) == 3
    assert set(rollouts) <= _all_before(rb, contract.id)


def _all_before(rb: Runbook, step: str) -> set[str]:
    seen: set[str] = set()
    todo = list(rb.dependencies[step])
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo += rb.dependencies.get(dep, [])
    return seen


def test_a_push_without_a_phase_stays_a_shell_step_and_says_why() -> None:
    text = "# R\n\n## Database\n\n- Push: `supabase db push`\n"
    step = import_markdown(text, "r.md", installed={"shell", "migrate"}).data["phases"][0]
    assert step["steps"][0]["action"] == "shell"
    assert "once the text says which phase" in step["steps"][0]["description"]
    named = "# R\n\n## Database\n\n- Push the additive changes: `supabase db push`\n"
    step = import_markdown(named, "r.md", installed={"shell", "migrate"}).data["phases"][0]
    assert (step["steps"][0]["action"], step["steps"][0]["with"]) == (
        "migrate",
        {"directory": "supabase", "phase": "expand"},
    )


def test_the_demo_asset_is_the_seed_runbook() -> None:
    from shipcaptain.sandbox.markdown_demo import SEED

    assert SEED.read_text(encoding="utf-8") == (DATA / "seed.md").read_text(encoding="utf-8")


def test_a_markdown_file_without_steps_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Just notes\n\nNothing to run here.\n", encoding="utf-8")
    with pytest.raises(InvalidRunbook, match="found no steps") as caught:
        load_runbook(path)
    assert f"{path}:1" in str(caught.value)


SETTINGS_RUNBOOK = """\
# Settings

```shipcaptain
defaults: {timeout: 10m, retry: {attempts: 3}}
guards:
  quiet: {description: Nobody else deploys, after_steps: [build]}
```

## Go

1. Build: `make all` <!-- shipcaptain: id=build -->
2. Ship: `make ship` <!-- shipcaptain: id=ship needs=build -->

   ```shipcaptain
   guards: [quiet]
   retry: {attempts: 2, backoff: 1s}
   undo: {action: shell, with: {command: make unship}}
   ```
"""


def test_shipcaptain_blocks_carry_guards_retries_undo_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.md"
    path.write_text(SETTINGS_RUNBOOK, encoding="utf-8")
    rb = load_runbook(path)
    assert rb.defaults.timeout == 600
    assert rb.defaults.retry.attempts == 3
    assert rb.guards["quiet"].after_steps == ["build"]
    ship = rb.steps["ship"]
    assert ship.guards == ["quiet"]
    assert ship.retry is not None
    assert (ship.retry.attempts, ship.retry.backoff) == (2, 1.0)
    assert ship.undo is not None
    assert ship.undo.with_ == {"command": "make unship"}
    assert "shipcaptain" not in rb.steps["ship"].with_["command"]  # not taken for a command

    bad = tmp_path / "bad.md"
    bad.write_text(SETTINGS_RUNBOOK.replace("retry: {attempts: 2", "retries: {attempts: 2"))
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(bad)
    assert f"{bad}:16" in str(caught.value)  # the line of the unknown key
    assert "shipcaptain block: unknown retries; known here: guards, retry, undo" in str(
        caught.value
    )


SQL_RUNBOOK = (DATA / "queries.md").read_text(encoding="utf-8")


def test_sql_blocks_become_read_only_sql_checks() -> None:
    """A ``sql`` block is a sql_check: judged when the text says what to expect, else
    recording its rows; each keeps the line of its block."""
    steps = import_markdown(SQL_RUNBOOK, "r.md", installed={"shell", "sql_check"}).data["phases"][0]
    got = [(s["action"], s["with"], s["source"]["line"]) for s in steps["steps"]]
    assert got == [
        ("sql_check", {"query": "select id from canvases where owner_id is null;", "rows": 0}, 6),
        (
            "sql_check",
            {
                "query": "select count(*) from logs where message ilike '%row-level security%';",
                "equals": 0,
            },
            10,
        ),
        (
            "sql_check",
            {"query": "select email, created_at from users order by created_at desc limit 5;"},
            14,
        ),
    ]
    assert "records the rows" in steps["steps"][2]["description"]
    shell = import_markdown(SQL_RUNBOOK, "r.md", installed={"shell"}).data["phases"][0]
    assert [s["action"] for s in shell["steps"]] == ["shell"] * 3
    assert shell["steps"][0]["with"]["command"].startswith('psql "$DATABASE_URL"')


def test_an_imported_sql_runbook_validates() -> None:
    """What the importer makes of sql blocks passes the runbook checks as it is."""
    rb = load_runbook(DATA / "queries.md")
    assert [s.action for s in rb.steps.values()] == ["sql_check"] * 3


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Verify schema versions:", {}),
        ("Check RLS errors (expect 0):", {"equals": 0}),
        ("Should return no rows", {"rows": 0}),
        ("Orphans: the query returns nothing", {"rows": 0}),
        ("expect 2 rows", {"rows": 2}),
        ("Replica lag must be below 10", {"below": 10}),
        ("Error ratio under 0.5", {"below": 0.5}),
        ("More than 100 signups", {"above": 100}),
        ("At least 3 workers", {"above": 2}),
        ("At least 0.5 of the traffic", {}),
        ("should be `0`", {"equals": 0}),
    ],
)
def test_the_expectation_a_sentence_states(sentence: str, expected: dict[str, float]) -> None:
    assert sql_expectation(sentence) == expected


CORPUS = DATA / "corpus"


def test_announce_items_become_announce_steps_with_their_message() -> None:
    """'Announce completion ...' sends the runbook's complete template (the captain posts
    it by hand if no channel takes it); the sign-off it asks for is an approval after it."""
    rb = load_runbook(DATA / "seed.md")
    announce = next(s for s in rb.steps.values() if s.action == "announce")
    assert announce.title.startswith("Announce completion")
    assert announce.with_ == {"template": "complete", "confirm_by": "release_captain"}
    assert rb.comms.templates["complete"].startswith("v{{ version }} deployed.")
    sign_off = next(s for s in rb.steps.values() if s.needs == [announce.id])
    assert sign_off.action == "approval"
    assert sign_off.with_["roles"] == ["feature_owners"]
    # a real release guide (Grafana Alloy): its example message is the template, and no
    # step runs the message as a shell command
    alloy = CORPUS / "grafana-alloy-announce-release.md"
    imported = import_markdown(alloy.read_text(encoding="utf-8"), alloy.name)
    steps = [s for p in imported.data["phases"] for s in p["steps"]]
    assert [(s["action"], s["with"]) for s in steps] == [("announce", {"template": "complete"})]
    message = imported.data["comms"]["templates"]["complete"]
    assert message.startswith(":alloy: Grafana Alloy RELEASE_VERSION is now available!")
    assert "Full changelog: https://github.com/grafana/alloy/blob/RELEASE_VERSION" in message
    assert imported.unmapped == []
    assert load_runbook(alloy).comms.channel == "#alloy"


def test_foreign_template_markup_is_kept_verbatim() -> None:
    """kubectl go-templates and Hugo shortcodes are not shipcaptain's: escaped, they reach
    the command (and the checklist text) exactly as the document wrote them."""
    from shipcaptain.runbook.templating import render_text

    doc = CORPUS / "kubernetes-rolling-update.md"
    source = doc.read_text(encoding="utf-8").splitlines()
    rb = load_runbook(doc)
    shell = [s for s in [*rb.steps.values(), *rb.rollback] if s.action == "shell"]
    templated = [s for s in shell if "{{" in s.with_["command"]]
    assert len(templated) == 2
    for step in templated:
        assert step.source is not None
        assert step.source.line is not None
        command = str(step.with_["command"])
        first = render_text(command, {}, shell=True).splitlines()[0]
        assert first == source[step.source.line - 1]
    alert = next(s for s in rb.steps.values() if "alert" in s.with_.get("item", ""))
    rendered = render_text(str(alert.with_["item"]), {})
    assert rendered.startswith("{{% alert %}} Rolling updates allow")


def test_validate_with_the_team_names_each_gate_nobody_can_answer(tmp_path: Path) -> None:
    """The seed's roles come from its headings (release_captain, feature_owners); a team
    file that calls them captain and feature_owner leaves its gates with nobody to answer:
    validate names each, at its Markdown line and field, with the team's closest role."""
    team = tmp_path / "team.yaml"
    team.write_text(
        "people:\n"
        "  casey: {admin: true, roles: {production: [captain]}}\n"
        "  sam: {roles: [on_call_sre]}\n"
        "  fran: {roles: [feature_owner], surfaces: [billing]}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    seed = str(DATA / "seed.md")
    refused = runner.invoke(cli, ["validate", seed, "--team", str(team)])
    assert refused.exit_code == 2, refused.output
    said = [ln.strip() for ln in refused.output.splitlines() if "nobody can answer" in ln]
    assert said == [
        f"{seed}:14: phases[0].steps[2].with.owners: nobody can answer the gate "
        f"'confirm_changelog_and_migration_list_with': no one in {team} holds the role "
        "'feature_owners'; did you mean 'feature_owner' (held by fran)?",
        f"{seed}:14: phases[0].steps[2].with.unassigned_to: nobody can answer the gate "
        f"'confirm_changelog_and_migration_list_with': no one in {team} holds the role "
        "'release_captain'; did you mean 'captain' (held by casey)?",
        f"{seed}:51: phases[6].steps[2].with.confirm_by: nobody can answer the gate "
        f"'announce_completion_with_a_link_to': no one in {team} holds the role "
        "'release_captain'; did you mean 'captain' (held by casey)?",
        f"{seed}:51: phases[6].steps[3].with.roles[0]: nobody can answer the gate "
        f"'feature_owners_final_sign_off': no one in {team} holds the role "
        "'feature_owners'; did you mean 'feature_owner' (held by fran)?",
    ]
    assert "quorum" not in refused.output  # the same gates: said once
    # the team that holds the runbook's roles: valid
    team.write_text(
        "people:\n"
        "  casey: {admin: true, roles: {production: [release_captain]}}\n"
        "  fran: {roles: [feature_owners], surfaces: [billing]}\n",
        encoding="utf-8",
    )
    valid = runner.invoke(cli, ["validate", seed, "--team", str(team)])
    assert valid.exit_code == 0, valid.output


def _seed_with(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "RUNBOOK.md"
    seed = (DATA / "seed.md").read_text(encoding="utf-8")
    path.write_text(seed + "\n" + section, encoding="utf-8")
    return path


def test_a_severity_rule_on_failed_checks_becomes_the_incident_rules(tmp_path: Path) -> None:
    path = _seed_with(
        tmp_path,
        "## Triggers\n\n"
        "- If the deployment fails, declare a P1 incident and page the On-Call SRE.\n"
        "- Schedule a postmortem if Sev1/Sev2.\n",
    )
    rule_line = len(path.read_text(encoding="utf-8").splitlines()) - 1
    loaded = load_runbook_file(path)
    rb = loaded.runbook
    assert rb.incidents.severity == "P1"
    # the phases after the rollout that check it: their failures open the P1
    assert rb.incidents.post_deploy_phases == ["smoke_tests", "post_deploy_validation"]
    assert rb.incidents.owners == ["on_call_sre"]  # reminded before each SLA deadline
    assert loaded.locate(("incidents", "severity")).line == rule_line
    assert not any("declare" in s.title for s in rb.steps.values())  # not a step
    # a sentence that only mentions severities is not a rule: under "Triggers" it is
    # reference, kept in the description, never a step or a confirmation
    assert not any(s.title.startswith("Schedule a postmortem") for s in rb.steps.values())
    assert "Schedule a postmortem if Sev1/Sev2." in rb.description
    exported = tmp_path / "EXPORTED.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    assert load_runbook(exported).incidents == rb.incidents


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        (
            # the example: a metric threshold shipcaptain cannot watch as written
            "If error rate > 5% for 5 minutes, declare a SEV1/P1.",
            "incident rule not imported: 'error rate > 5% for 5 minutes' is not something "
            "shipcaptain watches (it opens a P1 incident itself only when a post-deploy check "
            "of a customer-facing release fails); make the condition a check under the "
            "post-deploy heading (e.g. a metrics step",
        ),
        (
            "If smoke tests fail, declare a SEV1.",
            "incident rule not imported: severity SEV1 is not in the runbook's SLA table "
            "(P1, P2); did you mean 'P1' (the same level)?",
        ),
        (
            "When customers report errors, page the on-call and open a P2.",
            "incident rule not imported: 'customers report errors' is not something "
            "shipcaptain watches",
        ),
    ],
)
def test_a_severity_rule_that_cannot_be_mapped_is_refused_at_its_line(
    tmp_path: Path, sentence: str, said: str
) -> None:
    path = _seed_with(tmp_path, f"## Triggers\n\n- {sentence}\n")
    line = len(path.read_text(encoding="utf-8").splitlines())
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert f"{path}:{line}: {said}" in str(caught.value)
    runner = CliRunner()
    refused = runner.invoke(cli, ["import", str(path), "-o", str(tmp_path / "rb.yaml")])
    assert refused.exit_code != 0
    assert not (tmp_path / "rb.yaml").exists()  # nothing half-written


def test_a_severity_rule_needs_a_phase_that_checks_the_release(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# Deploy\n\n## Ship\n\n- Deploy: `make deploy`\n\n"
        "## Escalation\n\n- If the deployment fails, declare a SEV-2.\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert f"{path}:9: incident rule not imported: no phase checks the release" in str(caught.value)
    fixed = path.read_text(encoding="utf-8").replace(
        "## Escalation\n", "## Verification\n\n- Verify: `make verify`\n\n## Escalation\n"
    )
    path.write_text(fixed, encoding="utf-8")
    rb = load_runbook(path)
    assert (rb.incidents.severity, rb.incidents.post_deploy_phases) == ("SEV-2", ["verification"])


def test_kubectl_set_image_and_rollout_undo_become_native_steps() -> None:
    """The Kubernetes tutorial's commands: set image -> k8s_set_image (watches the rollout,
    keeps the images before), rollout status -> k8s_rollout, and under "Roll back an
    update", rollout undo -> k8s_rollback setting back what the release set."""
    rb = load_runbook(CORPUS / "kubernetes-rolling-update.md")
    forward = [s for s in rb.steps.values() if s.action.startswith("k8s_")]
    assert [(s.action, s.with_) for s in forward] == [
        (
            "k8s_set_image",
            {
                "deployment": "deployments/kubernetes-bootcamp",
                "images": {"kubernetes-bootcamp": "docker.io/jocatalin/kubernetes-bootcamp:v2"},
            },
        ),
        ("k8s_rollout", {"deployments": ["kubernetes-bootcamp"]}),
    ]
    back = [s for s in rb.rollback if s.action.startswith("k8s_")]
    assert [(s.action, s.with_) for s in back] == [
        (
            "k8s_set_image",
            {
                "deployment": "deployments/kubernetes-bootcamp",
                "images": {"kubernetes-bootcamp": "gcr.io/google-samples/kubernetes-bootcamp:v10"},
            },
        ),
        ("k8s_rollback", {"deployments": ["deployments/kubernetes-bootcamp"]}),
    ]
    assert not any("kubectl set image" in str(s.with_) for s in [*rb.steps.values(), *rb.rollback])


def test_a_rollout_undo_of_what_the_runbook_did_not_set_stays_the_command(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# Deploy\n\n## Ship\n\n- Deploy: `./deploy.sh api`\n"
        "- Pin: `kubectl set image deployment/web web=ghcr.io/acme/web:2 --record`\n\n"
        "## Rollback\n\n- Undo: `kubectl rollout undo deployment/api -n prod`\n"
        "- Back: `kubectl rollout undo deployment/web --to-revision=3`\n",
        encoding="utf-8",
    )
    rb = load_runbook(path)
    # --record is a flag k8s_set_image does not know: the command runs as written
    assert [s.action for s in rb.steps.values()] == ["shell", "shell"]
    undo, back = rb.rollback
    assert undo.action == "shell"
    assert undo.with_ == {"command": "kubectl rollout undo deployment/api -n prod"}
    assert undo.description.startswith("maps to native action k8s_rollback (sets back the images")
    assert back.with_ == {"command": "kubectl rollout undo deployment/web --to-revision=3"}


def test_a_quoted_message_is_the_announcement_and_post_deploy_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# Deploy\n\n## Go\n\n"
        '- Post in `#deployments`: "Starting production deployment of v<version>"\n'
        "- Deploy: `./deploy.sh <version>`\n\n"
        "## Post-deploy validation\n\n- Post-deploy checks: confirm the team dashboard is green\n",
        encoding="utf-8",
    )
    rb = load_runbook(path)
    post, deploy, check = rb.steps.values()
    assert (post.action, post.with_) == ("announce", {"template": "start"})
    assert rb.comms.templates == {"start": "Starting production deployment of v{{ version }}"}
    assert rb.comms.channel == "#deployments"
    assert (deploy.action, check.action) == ("shell", "checklist")


def test_validate_with_the_team_refuses_members_who_do_not_hold_the_role(tmp_path: Path) -> None:
    """The runbook narrows a role to people (members); if none of them holds it in the
    team file, its gate has nobody to answer either."""
    runbook = tmp_path / "RUNBOOK.md"
    runbook.write_text(
        "# Deploy\n\n## Roles\n\n"
        "- **Release Captain:** runs the release <!-- shipcaptain: members=sam -->\n\n"
        "## Go\n\n- Deploy: `./deploy.sh`\n- Release Captain signs off the release\n",
        encoding="utf-8",
    )
    team = tmp_path / "team.yaml"
    team.write_text("people:\n  casey: {admin: true, roles: [release_captain]}\n", encoding="utf-8")
    refused = CliRunner().invoke(cli, ["validate", str(runbook), "--team", str(team)])
    assert refused.exit_code == 2, refused.output
    assert (
        f"{runbook}:10: phases[0].steps[1].with.roles[0]: nobody can answer the gate "
        "'release_captain_signs_off_the_release': the runbook narrows the role "
        f"'release_captain' to sam, and none of them holds it in {team} (it holds: casey)"
    ) in " ".join(refused.output.split())


def test_a_paragraph_after_a_groups_items_is_kept() -> None:
    """Grafana Alloy's "2. After a tag has been pushed ..." holds two sub-items and then a
    paragraph: the paragraph is a step of that phase too, not dropped."""
    doc = CORPUS / "grafana-alloy-tag-release.md"
    imported = import_markdown(doc.read_text(encoding="utf-8"), doc.name)
    phase = imported.data["phases"][-1]
    assert phase["title"].startswith("After a tag has been pushed")
    lines = [s["source"]["line"] for s in phase["steps"]]
    assert lines == [50, 51, 53]
    assert phase["steps"][-1]["with"]["item"].startswith("If the Homebrew Formula fails")


def test_telling_one_person_or_a_call_is_not_an_announce_step() -> None:
    doc = CORPUS / "pagerduty-during-an-incident.md"
    rb = load_runbook(doc)
    told = [s for s in rb.steps.values() if s.title.startswith("Announce")]
    assert [s.title[:40] for s in told] == [
        "Announce on the call and in Slack that y",
        "Announce all suggestions for resolution ",
    ]
    assert {s.action for s in told} == {"checklist"}
    assert not [s for s in rb.steps.values() if s.action == "announce"]
    assert rb.comms.templates == {}


def test_a_misspelt_parameter_is_still_a_template_and_validate_names_it(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# T\n\n## Go\n\n- Tag: `git tag v<version> && echo {{ verison }} {{.Names}}`\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert f"{path}:5: phases[0].steps[0].with.command: unknown name 'verison'" in str(caught.value)


def test_two_severities_for_failed_checks_are_refused(tmp_path: Path) -> None:
    path = _seed_with(
        tmp_path,
        "## Triggers\n\n- If the deployment fails, declare a P1.\n"
        "- If smoke tests fail, declare a P2.\n",
    )
    line = len(path.read_text(encoding="utf-8").splitlines())
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    assert (
        f"{path}:{line}: incident rule not imported: a runbook's failed post-deploy checks "
        f"open incidents of one severity; line {line - 1} already says P1"
    ) in str(caught.value)
