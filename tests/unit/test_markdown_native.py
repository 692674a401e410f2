"""Markdown import of the team's own commands as native actions, and what a runbook says
around them: ``kubectl apply -k`` (its history namespace), a health check with the build
hash, a restore behind a decision, placeholders in titles, incident rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shipcaptain.markdown.export import export_markdown
from shipcaptain.markdown.importer import import_markdown
from shipcaptain.markdown.incidents import incident_rule
from shipcaptain.runbook.loader import load_runbook
from shipcaptain.runbook.templating import render_text

INSTALLED = ("k8s_apply", "k8s_rollout", "http", "approval", "shell", "checklist")

APPLY = """\
# Deploy the shop

## Deploy

1. Apply the production overlay (this also updates the ConfigMaps):

   ```bash
   kubectl apply -k deploy/overlays/production
   ```

2. Wait for it: `kubectl rollout status deployment/api -n shop --timeout=5m`
"""


def _step(data: dict, action: str) -> dict:
    return next(s for p in data["phases"] for s in p["steps"] if s["action"] == action)


def test_apply_k_takes_the_history_namespace_from_the_kustomization(tmp_path: Path) -> None:
    overlay = tmp_path / "deploy" / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "namespace: shop\nresources:\n  - ../../base\n", encoding="utf-8"
    )
    (tmp_path / "deploy.md").write_text(APPLY, encoding="utf-8")
    data = import_markdown(APPLY, "deploy.md", INSTALLED, base=tmp_path).data
    step = _step(data, "k8s_apply")
    assert step["with"] == {"overlay": "deploy/overlays/production", "history_namespace": "shop"}
    assert "`kubectl apply -k deploy/overlays/production`" in step["description"]
    assert "kustomization.yaml" in step["description"]
    assert "namespace" not in data.get("parameters", {})
    # the file loads as a runbook (the loader reads the kustomization beside it)
    loaded = load_runbook(tmp_path / "deploy.md")
    applied = next(s for p in loaded.phases for s in p.steps if s.action == "k8s_apply")
    assert applied.with_["history_namespace"] == "shop"


def test_apply_k_without_a_kustomization_asks_for_the_namespace(tmp_path: Path) -> None:
    for base in (tmp_path, None):  # no file beside the runbook; no runbook file at all
        data = import_markdown(APPLY, "deploy.md", INSTALLED, base=base).data
        step = _step(data, "k8s_apply")
        assert step["with"]["history_namespace"] == "{{ namespace }}"
        assert data["parameters"]["namespace"]["required"] is True
        assert "default" not in data["parameters"]["namespace"]
        assert "kubectl apply -k deploy/overlays/production" in step["description"]


def test_apply_k_of_a_kustomization_without_namespace_asks_for_it(tmp_path: Path) -> None:
    overlay = tmp_path / "deploy" / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: [../../base]\n", encoding="utf-8")
    data = import_markdown(APPLY, "deploy.md", INSTALLED, base=tmp_path).data
    step = _step(data, "k8s_apply")
    assert step["with"]["history_namespace"] == "{{ namespace }}"
    assert "sets no namespace" in step["description"]
    assert data["parameters"]["namespace"]["required"] is True


def test_apply_k_of_an_overlay_named_by_a_placeholder(tmp_path: Path) -> None:
    text = "# Deploy\n\n## Deploy\n\n1. Apply: `kubectl apply -k deploy/overlays/<env>`\n"
    data = import_markdown(text, "deploy.md", INSTALLED, base=tmp_path).data
    step = _step(data, "k8s_apply")
    assert step["with"]["overlay"] == "deploy/overlays/{{ env }}"
    assert step["with"]["history_namespace"] == "{{ namespace }}"
    assert {"env", "namespace"} <= set(data["parameters"])


HEALTH = """\
# Release the API

## Deploy

1. Deploy: `kubectl set image deployment/api api=ghcr.io/acme/api:<commit>`

## Verify

1. Health: `curl -s https://api.example.com/health` → 200 + build hash
2. Verify the health endpoint returns the new build hash.
"""


def test_a_health_check_with_its_build_hash_checks_the_hash(tmp_path: Path) -> None:
    data = import_markdown(HEALTH, "r.md", (*INSTALLED, "k8s_set_image")).data
    curl, endpoint = [s for s in data["phases"][1]["steps"]]
    assert curl["action"] == "http"
    assert curl["with"] == {
        "url": "https://api.example.com/health",
        "expect_status": 200,
        "body_pattern": "{{ commit | regex_escape }}",
    }
    assert "commit" in curl["description"]
    # no URL: the health endpoint is a parameter, checked the same way
    assert endpoint["action"] == "http"
    assert endpoint["with"]["url"] == "{{ health_url }}"
    assert endpoint["with"]["body_pattern"] == "{{ commit | regex_escape }}"
    assert data["parameters"]["health_url"]["required"] is True
    path = tmp_path / "r.md"
    path.write_text(HEALTH, encoding="utf-8")
    assert load_runbook(path).parameters["commit"].required


def test_the_hash_pattern_matches_the_value_literally() -> None:
    pattern = render_text("{{ v | regex_escape }}", {"v": "1.4.0+build.7"})
    assert re.search(pattern, '{"build": "1.4.0+build.7"}')
    assert not re.search(pattern, '{"build": "1x4y0+build.7"}')


def test_a_build_hash_with_no_parameter_to_compare_says_why_not() -> None:
    text = (
        "# Check\n\n## Verify\n\n"
        "1. Hit `https://x.example/health` and confirm `200` + build hash.\n"
    )
    step = import_markdown(text, "r.md", INSTALLED).data["phases"][0]["steps"][0]
    assert step["action"] == "http"
    assert "body_pattern" not in step["with"]
    assert "no commit or version parameter" in step["description"]


def test_a_build_hash_is_the_tagged_commit_before_the_version() -> None:
    text = (
        "# Release\n\n## Tag\n\n1. Tag: `git tag v<version> && git push origin v<version>`\n\n"
        "## Verify\n\n1. Hit `https://x.example/health` and confirm `200` + build hash.\n"
    )
    with_tag = import_markdown(text, "r.md", (*INSTALLED, "git_tag")).data
    check = _step(with_tag, "http")
    tag = _step(with_tag, "git_tag")["id"]
    assert check["with"]["body_pattern"] == "{{ steps." + tag + ".commit[:7] | regex_escape }}"
    # without the native git_tag (a shell step), the version parameter is what it has
    shell = import_markdown(text, "r.md", INSTALLED).data
    assert _step(shell, "http")["with"]["body_pattern"] == "{{ version | regex_escape }}"


RESTORE = """\
# Database incident

## Deploy

1. Migrate: `psql "$DATABASE_URL" -f migrations/next.sql`

## Rollback Procedure

1. Stop the writers: `kubectl scale deployment/api --replicas=0`
2. Restore the last backup:

   ```bash
   pg_restore --clean --if-exists -d "$DATABASE_URL" backups/latest.dump
   ```

3. Or from the plain dump: `psql "$DATABASE_URL" < backups/latest.sql`
"""


def test_a_restore_under_a_rollback_heading_waits_for_a_decision(tmp_path: Path) -> None:
    imported = import_markdown(RESTORE, "r.md", INSTALLED)
    assert not imported.problems
    rollback = imported.data["rollback"]
    assert [s["action"] for s in rollback] == ["shell", "approval", "shell", "approval", "shell"]
    scale, decide, restore, decide2, plain = rollback
    assert "pg_restore --clean" in restore["with"]["command"]
    assert restore["needs"] == [decide["id"]]
    assert decide["needs"] == [scale["id"]]
    assert "overwrites the database" in decide["with"]["prompt"]
    assert "stop the rollback" in decide["with"]["prompt"]
    assert plain["needs"] == [decide2["id"]]
    assert "< backups/latest.sql" in plain["with"]["command"]
    # the forward psql -f (a migration, not a restore) has no decision
    assert [s["action"] for s in imported.data["phases"][0]["steps"]] == ["shell"]
    explained = dict((n, what) for n, _, what in imported.explain(RESTORE))
    assert explained[13].startswith(f"restore from a backup: decision {decide['id']}")
    path = tmp_path / "r.md"
    path.write_text(RESTORE, encoding="utf-8")
    loaded = load_runbook(path)  # valid, and the lines point at the Markdown
    assert [s.source.line for s in loaded.rollback] == [9, 13, 13, 16, 16]


def test_a_restore_runbook_decides_before_restoring_even_when_conditional() -> None:
    text = (
        "# Restore the database\n\n## Restore (critical only)\n\n"
        '1. Restore: `gunzip -c backup.sql.gz | psql "$DATABASE_URL"`\n'
    )
    steps = import_markdown(text, "r.md", INSTALLED).data["phases"][0]["steps"]
    decide, restore = steps
    assert decide["action"] == "approval"
    assert restore["needs"] == [decide["id"]]
    # the condition holds for both: the decision is not asked when the restore is skipped
    assert decide["when"] == restore["when"] == "restore_critical_only"
    assert "stop the release" in decide["with"]["prompt"]


def test_a_title_with_underscores_around_a_placeholder_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "r.yaml"
    source.write_text(
        "name: r\nphases:\n  - id: go\n    steps:\n"
        "      - {id: a, title: 'Set _<PLACEHOLDER>_ in the vault', action: checklist,"
        " with: {item: x}}\n"
        "      - {id: b, title: 'Export DB_<ENV>_URL and __<NAME>__', action: checklist,"
        " with: {item: y}, description: 'Read _<ENV>_ first; feature_owners confirm'}\n",
        encoding="utf-8",
    )
    rb = load_runbook(source)
    exported = tmp_path / "EXPORTED.md"
    text = export_markdown(rb)
    assert "feature_owners confirm" in text  # an underscore inside a word stays as it is
    exported.write_text(text, encoding="utf-8")
    again = load_runbook(exported)
    assert [s.title for s in again.steps.values()] == [
        "Set _<PLACEHOLDER>_ in the vault",
        "Export DB_<ENV>_URL and __<NAME>__",
    ]
    assert again.steps["b"].description == "Read _<ENV>_ first; feature_owners confirm"


@pytest.mark.parametrize(
    ("sentence", "severity"),
    [
        ("If the deployment fails, declare a P1 incident and page the On-Call SRE.", "P1"),
        ("When customers report errors, page the on-call and open a P2.", "P2"),
        ("If smoke tests fail, a SEV-2 is declared.", "SEV-2"),
        ("If the rollout fails: treat it as a P1. Then tell support.", "P1"),
        # names severities but declares, opens or pages nothing on its condition
        (
            "If you are on-call for your team, there are certain expectations of you as that "
            "on-call. This applies to both the primary and secondary on-calls. Getting paged "
            "about a SEV-3 or SEV-4 in your system comes with different expectations than "
            "getting paged with a major SEV-2.",
            None,
        ),
        ("If you get paged for a SEV-1, join the incident call.", None),
        ("If a SEV-1 was triggered last week, read its postmortem.", None),
    ],
)
def test_only_a_sentence_declaring_an_incident_is_an_incident_rule(
    sentence: str, severity: str | None
) -> None:
    rule = incident_rule(sentence, 1)
    assert (rule.severity if rule else None) == severity


@pytest.mark.parametrize(
    "command",
    [
        "kubectl -n shop rollout status deployment/api --timeout=5m",
        "kubectl rollout status deployment/api -n shop --timeout=5m",
        "kubectl rollout status deployment/api --timeout=5m --namespace=shop",
    ],
)
def test_a_rollout_watch_takes_its_namespace_wherever_it_is_written(command: str) -> None:
    text = f"# R\n\n## Deploy\n\n1. Watch: `{command}`\n"
    step = import_markdown(text, "r.md", INSTALLED).data["phases"][0]["steps"][0]
    assert step["action"] == "k8s_rollout"
    assert step["with"] == {"deployments": ["api"], "timeout": "5m", "namespace": "shop"}
