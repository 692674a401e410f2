"""Markdown import by meaning: the kind of a section (procedure, conditional procedure,
rollback, troubleshooting, reference) is inherited by its subsections, and decides whether
its blocks run, run only when a condition holds, go to the rollback plan, or are kept as
reference in the runbook's description."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shipcaptain.cli.main import cli
from shipcaptain.errors import InvalidRunbook
from shipcaptain.markdown.export import export_markdown
from shipcaptain.markdown.importer import import_markdown
from shipcaptain.runbook.loader import load_runbook

INSTALLED = ("k8s_set_image", "k8s_rollback", "k8s_rollout", "approval")

KINDS = """\
# Deploy API

## Deploy

1. Deploy: `kubectl set image deployment/api api=ghcr.io/acme/api:<version>`
2. Watch: `kubectl rollout status deployment/api`

## Run migrations (if applicable)

```bash
psql "$DATABASE_URL" -f migrations/next.sql
```

## Troubleshooting

### Issue: High Latency

- Check logs: `kubectl logs -f deploy/api`
- Forward: `kubectl port-forward svc/api 8080:80`

## Rollback Procedure

### If Deployment Fails

```bash
kubectl rollout undo deployment/api
```

### If Database Issues

```bash
pg_restore --clean -d "$DATABASE_URL" backup.dump
```

## References

- [Runbook index](https://example.com/runbooks)
- Escalation: page the on-call via #oncall
"""


def test_each_section_kind_becomes_what_it_means(tmp_path: Path) -> None:
    imported = import_markdown(KINDS, "kinds.md", installed=INSTALLED)
    assert not imported.problems
    data = imported.data
    # procedure: forward steps; the conditional procedure: the same, only when it holds
    assert [p["id"] for p in data["phases"]] == ["deploy", "run_migrations_if_applicable"]
    migrate = data["phases"][1]["steps"][0]
    assert migrate["when"] == "run_migrations_if_applicable"
    param = data["parameters"]["run_migrations_if_applicable"]
    assert param["type"] == "boolean"
    assert param["default"] is False
    # troubleshooting is never run: no step runs `kubectl logs -f` or `port-forward`
    forward = [s for p in data["phases"] for s in p["steps"]]
    assert not any("logs -f" in str(s["with"]) or "port-forward" in str(s["with"]) for s in forward)
    assert "Issue: High Latency (troubleshooting, not run)" in data["description"]
    assert "kubectl port-forward svc/api 8080:80" in data["description"]
    # "If Deployment Fails" under "Rollback Procedure" is the rollback plan, as it is;
    # "If Database Issues" (inherited: rollback) needs a decision before it runs
    rollback = data["rollback"]
    assert [s["action"] for s in rollback] == ["k8s_rollback", "approval", "shell"]
    assert rollback[1]["title"] == "Decide: If Database Issues"
    assert rollback[2]["needs"] == [rollback[1]["id"]]
    assert "pg_restore --clean" in rollback[2]["with"]["command"]
    # references: links and contacts kept as data, not confirmations
    assert "Runbook index (https://example.com/runbooks)" in data["description"]
    assert "Escalation: page the on-call via #oncall" in data["description"]
    assert not any(s["action"] == "checklist" for s in forward)


def test_the_kinds_survive_export_and_import(tmp_path: Path) -> None:
    source = tmp_path / "kinds.md"
    source.write_text(KINDS, encoding="utf-8")
    rb = load_runbook(source)
    exported = tmp_path / "EXPORTED.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    again = load_runbook(exported)
    assert again.description == rb.description
    assert again.parameters == rb.parameters
    assert [s.when for s in again.steps.values()] == [s.when for s in rb.steps.values()]
    assert [s.action for s in again.rollback] == [s.action for s in rb.rollback]


def test_a_conditional_subsection_inherits_the_condition() -> None:
    text = (
        "# R\n\n## Deploy\n\n- Run `make deploy`\n\n"
        "## Restore (critical only)\n\n### Database\n\n- Run `make restore-db`\n\n"
        "## Notes\n\n- Run `make nothing` here is only an example.\n"
    )
    data = import_markdown(text, "r.md").data
    restore = data["phases"][1]
    assert restore["title"] == "Database"
    assert restore["steps"][0]["when"] == "restore_critical_only"
    assert len(data["phases"]) == 2  # notes are not run
    assert "make nothing" in data["description"]


# ---- commands vs output ----

OUTPUT = """\
# Enable row security

## Apply

1. Apply the policy:

    ```console
    $ psql "$DATABASE_URL" -f policies/rls.sql
    ALTER TABLE
    CREATE POLICY
    ```

2. Check it is on:

    ```
    rowsecurity = t
    ```

3. Watch the queue drain: `queued → running → completed`

4. Roll it out:

    ```
    kubectl rollout status deployment/api
    deployment "api" successfully rolled out
    ```

5. Restart the worker:

    ```
    kubectl rollout restart deployment/worker
    ```
"""


def test_only_commands_run_and_output_is_kept_as_the_expectation() -> None:
    imported = import_markdown(OUTPUT, "output.md")
    assert not imported.problems
    steps = [s for p in imported.data["phases"] for s in p["steps"]]
    shell = [s["with"]["command"] for s in steps if s["action"] == "shell"]
    # the prompt is stripped, the output under it is not run
    assert shell == [
        'psql "$DATABASE_URL" -f policies/rls.sql',
        "kubectl rollout restart deployment/worker",
    ]
    apply = steps[0]
    assert "Expected output (lines 9-10): ALTER TABLE / CREATE POLICY" in apply["description"]
    # an untyped block of output after a command: a note on that command's step
    assert "Expected output (line 16): rowsecurity = t" in apply["description"]
    # inline output, and an untyped block that is not all commands, run nothing
    assert not any("queued" in str(s["with"]) for s in steps if s["action"] != "checklist")
    assert not any("successfully rolled out" in str(s["with"]) for s in steps)


ALTERNATIVES = """\
# Secrets

## Install

1. Apply the secret store:

    ```bash
    kubectl apply -f external-secrets/vault.yaml  # for Vault
    # OR for AWS
    kubectl apply -f external-secrets/aws.yaml
    ```
"""


def test_alternatives_are_a_choice_never_both(tmp_path: Path) -> None:
    imported = import_markdown(ALTERNATIVES, "alt.md")
    assert not imported.problems
    steps = imported.data["phases"][0]["steps"]
    assert [s["with"]["command"] for s in steps] == [
        "kubectl apply -f external-secrets/vault.yaml",
        "kubectl apply -f external-secrets/aws.yaml",
    ]
    choice = imported.data["parameters"]["apply_the_secret_store_choice"]
    assert choice["choices"] == ["vault", "aws"]
    assert choice["required"] is True
    assert [s["when"] for s in steps] == [
        "apply_the_secret_store_choice == 'vault'",
        "apply_the_secret_store_choice == 'aws'",
    ]
    source = tmp_path / "alt.md"
    source.write_text(ALTERNATIVES, encoding="utf-8")
    rb = load_runbook(source)  # validates: the condition names a parameter
    assert rb.parameters["apply_the_secret_store_choice"].choices == ["vault", "aws"]


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("kubectl logs -f deploy/api", "drop the follow/watch flag"),
        ("kubectl -n prod get pods -w", "drop the follow/watch flag"),
        ("kubectl port-forward svc/api 8080:80", "wrap it in `timeout 60 ...`"),
        ("tail -f /var/log/app.log", "drop -f"),
        ("watch kubectl get pods", "check once"),
        ("docker compose up", "detach them"),
        ("kubectl -n prod edit pvc data", "waits for a person"),
        ("kubectl exec -it api-0 -- sh", "waits for a person"),
    ],
)
def test_a_command_that_never_exits_is_refused_at_its_line(
    tmp_path: Path, command: str, hint: str
) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(f"# R\n\n## Go\n\n- Run `make deploy`\n- Then `{command}`\n", encoding="utf-8")
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(path)
    said = str(caught.value)
    assert f"{path}:6: `{command}` never exits by itself" in said
    assert hint in said
    runner = CliRunner()
    out = tmp_path / "rb.yaml"
    refused = runner.invoke(cli, ["import", str(path), "-o", str(out)])
    assert refused.exit_code != 0
    assert not out.exists()  # nothing half-written
    # under a Troubleshooting heading it is reference, not run: imported
    fine = path.read_text(encoding="utf-8").replace(
        f"- Then `{command}`", f"## Troubleshooting\n\n- Then `{command}`"
    )
    path.write_text(fine, encoding="utf-8")
    assert command in load_runbook(path).description


# ---- import --explain ----


def test_import_explain_lists_every_line_and_what_it_became(tmp_path: Path) -> None:
    path = tmp_path / "kinds.md"
    path.write_text(KINDS + "\n## SLAs\n\n- P1: we try hard\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "--explain", str(path)])
    assert result.exit_code == 0, result.output
    said = {
        int(line.split(":")[1]): line.split(": ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith(str(path))
    }
    non_empty = [n for n, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    assert sorted(said) == non_empty
    assert not any("UNACCOUNTED" in what for what in said.values())
    assert said[1].startswith("title")
    assert said[5].startswith("step deploy (k8s_set_image)")
    assert said[8].startswith(
        "condition 'Run migrations (if applicable)': its steps run only when parameter "
        "run_migrations_if_applicable is true"
    )
    assert said[18].startswith("note in the description (troubleshooting, not run)")
    assert said[26].startswith("rollback step ")
    assert said[29].startswith("condition 'If Database Issues': rollback decision")
    assert said[37].startswith("link in the description (reference, not run)")
    assert said[42].startswith("note in the description (not an SLA")
    assert not (tmp_path / "kinds.yaml").exists()  # --explain writes nothing
    # what the import would say it kept is true: the SLA sentence is in the description
    assert "SLAs: P1: we try hard" in load_runbook(path).description


def test_import_explain_names_a_refused_line_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text("# R\n\n## Go\n\n- Tail: `kubectl logs -f deploy/api`\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", "--explain", str(path)])
    assert result.exit_code == 1
    assert f"{path}:5: refused: `kubectl logs -f deploy/api` never exits" in result.stdout


def test_backticks_around_a_placeholder_become_a_command_substitution(tmp_path: Path) -> None:
    """A value cannot be quoted inside backticks: `...<ns>...` runs as $( ... )."""
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# R\n\n## Go\n\n```shell\n$ kubectl get sc `kubectl -n <ns> get pvc x -o name`\n"
        "NAME   PROVISIONER\n```\n",
        encoding="utf-8",
    )
    step = next(iter(load_runbook(path).steps.values()))
    assert step.with_["command"] == "kubectl get sc $(kubectl -n {{ ns }} get pvc x -o name)"
    assert "Expected output (line 7): NAME   PROVISIONER" in step.description


def test_a_title_with_a_placeholder_or_html_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# R\n\n## Go\n\n- `<version>`: the version to ship\n"
        "- **Done.<br/>Tell support** — then close it\n"
        "- Audit `prometheus.*` and the prometheus.* components\n",
        encoding="utf-8",
    )
    rb = load_runbook(path)
    exported = tmp_path / "EXPORTED.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    again = load_runbook(exported)
    assert [s.title for s in again.steps.values()] == [s.title for s in rb.steps.values()]
    assert next(s.title for s in rb.steps.values()) == "<version>: the version to ship"


def test_a_rollback_runbook_runs_its_procedure_when_started() -> None:
    """A runbook whose title says it is a rollback (or restore) is that procedure: its
    steps are forward phases, its conditions `when:` parameters; run as a release it runs
    the commands instead of asking for confirmations and running nothing."""
    text = (
        "# Database Restore Runbook\n\n## When to use\n\n- The primary is corrupt\n\n"
        "## Restore Procedure\n\n"
        '```bash\npg_restore --clean -d "$DATABASE_URL" backup.dump\n```\n\n'
        "### If the restore fails\n\n```bash\n./scripts/promote-replica.sh\n```\n"
    )
    data = import_markdown(text, "restore.md").data
    assert "rollback" not in data
    decide, *steps = [s for p in data["phases"] for s in p["steps"]]
    assert [s["with"]["command"] for s in steps] == [
        'pg_restore --clean -d "$DATABASE_URL" backup.dump',
        "./scripts/promote-replica.sh",
    ]
    # the restore overwrites the database: a decision first (see test_markdown_native)
    assert decide["action"] == "approval"
    assert steps[0]["needs"] == [decide["id"]]
    assert "when" not in steps[0]
    assert steps[1]["when"] == "if_the_restore_fails"
    assert "The primary is corrupt" in data["description"]


def test_option_sections_are_a_choice_never_both(tmp_path: Path) -> None:
    source = tmp_path / "opt.md"
    source.write_text(
        "# Deploy\n\n## Ship\n\n- Run `make build`\n\n### 2. Initiate deploy (1 min)\n\n"
        "#### Option A: Quick deploy\n\n```bash\nkubectl apply -k overlays/prod\n```\n\n"
        "#### Option B: Helm\n\n```bash\nhelm upgrade app ./chart\n```\n",
        encoding="utf-8",
    )
    rb = load_runbook(source)
    choice = rb.parameters["initiate_deploy_option"]
    assert choice.required
    assert choice.choices == ["quick_deploy", "helm"]
    assert [s.when for s in rb.steps.values()] == [
        None,
        "initiate_deploy_option == 'quick_deploy'",
        "initiate_deploy_option == 'helm'",
    ]
    exported = tmp_path / "EXPORTED.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    again = load_runbook(exported)
    assert [s.when for s in again.steps.values()] == [s.when for s in rb.steps.values()]
    # in the rollback plan (which always runs) alternatives are refused at the heading
    rollback = source.read_text(encoding="utf-8").replace("## Ship", "## Rollback")
    source.write_text(rollback, encoding="utf-8")
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook(source)
    assert f"{source}:9: 'Option A: Quick deploy' is one of alternatives" in str(caught.value)


CURLS = """\
# Check

## Verify

1. Health:

    ```console
    $ curl -s https://api.example.com/health
    {"status": "ok", "build": "4f2a9c"}
    ```

2. Headers:

    ```console
    $ curl -sI https://app.example.com/
    HTTP/2 200
    content-type: text/html
    ```

3. Status code:

    ```bash
    $ curl -s -o /dev/null -w '%{http_code}' https://api.example.com/ready
    204
    ```
"""


def test_a_curl_with_its_answer_becomes_an_http_check_of_that_answer() -> None:
    imported = import_markdown(CURLS, "curls.md")
    assert not imported.problems
    steps = imported.data["phases"][0]["steps"]
    assert [s["action"] for s in steps] == ["http", "http", "http"]
    assert steps[0]["with"] == {
        "url": "https://api.example.com/health",
        "json_field": "status",
        "body_pattern": "^ok$",
    }
    assert steps[1]["with"] == {
        "url": "https://app.example.com/",
        "method": "HEAD",
        "expect_status": 200,
    }
    assert steps[2]["with"] == {"url": "https://api.example.com/ready", "expect_status": 204}
    assert "From `curl -s https://api.example.com/health`" in steps[0]["description"]


def test_an_item_that_applies_only_sometimes_is_never_unconditional(tmp_path: Path) -> None:
    """'(critical only)' and '(if reversible)' are not lost: a forward item runs only when
    its boolean parameter says so; in the rollback plan a decision comes first."""
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# Deploy\n\n## Ship\n\n- Deploy: `make deploy`\n"
        "- Run policy checks: `npm run lint:policies` if applicable.\n\n"
        "## Rollback\n\n- Revert: `make revert`\n"
        '- Restore the database (if reversible): `pg_restore --clean -d "$DATABASE_URL" db.dump`\n',
        encoding="utf-8",
    )
    rb = load_runbook(path)
    policy = rb.steps["run_policy_checks"]
    assert policy.when == "run_policy_checks_if_applicable"
    assert rb.parameters["run_policy_checks_if_applicable"].default is False
    assert [s.action for s in rb.rollback] == ["shell", "approval", "shell"]
    decide, restore = rb.rollback[1], rb.rollback[2]
    assert decide.title == "Decide: Restore the database (if reversible)"
    assert restore.needs == [decide.id]
    assert "pg_restore --clean" in restore.with_["command"]


def test_the_audience_line_names_roles(tmp_path: Path) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text(
        "# R\n\n**Audience:** Release Captain (primary), On-Call SRE (executor), "
        "Database Owner (consulted).\n**Goal:** ship.\n\n## Roles\n\n"
        "- **Release Captain:** owns it\n\n## Ship\n\n- Database Owner confirms the backup\n",
        encoding="utf-8",
    )
    rb = load_runbook(path)
    assert list(rb.roles) == ["release_captain", "on_call_sre", "database_owner"]
    assert rb.roles["database_owner"].responsibilities == ["consulted"]
    assert rb.roles["release_captain"].responsibilities == ["owns it"]  # defined: kept
    # a gate the audience's role answers
    assert next(iter(rb.steps.values())).owner == "database_owner"
    exported = tmp_path / "EXPORTED.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    assert load_runbook(exported).roles == rb.roles


def test_an_sla_in_words_is_an_sla() -> None:
    text = (
        "# R\n\n## Ship\n\n- Run `make deploy`\n\n## SLAs\n\n"
        "- **P1:** rollback decision within 10 minutes of detection; service restored in "
        "≤30 minutes.\n- P2: respond within 1 hour, resolve within 8 hours\n"
    )
    imported = import_markdown(text, "r.md")
    assert imported.data["slas"] == {
        "P1": {"acknowledge": "10m", "mitigate": "30m"},
        "P2": {"acknowledge": "1h", "mitigate": "8h"},
    }
    assert imported.unmapped == []


def test_explain_accounts_for_link_definitions_setext_headings_and_comment_blocks() -> None:
    text = (
        "# R\n\nShip\n----\n\n- Run `make deploy`, see [the guide][guide]\n\n"
        "```bash\n# run this only on Tuesdays\n```\n\n"
        "[guide]:\n  https://example.com/guide\n"
    )
    imported = import_markdown(text, "r.md")
    said = {n: what for n, _, what in imported.explain(text)}
    assert said[3] == said[4] == "heading: a phase (forward steps)"
    assert said[9].startswith("note: comments of step")
    assert said[12] == said[13] == "link definition: the links that name it keep its target"
    step = imported.data["phases"][0]["steps"][0]
    assert "Comments (line 9): # run this only on Tuesdays" in step["description"]
