"""Markdown import by meaning: the kind of a section (procedure, conditional procedure,
rollback, troubleshooting, reference) is inherited by its subsections, and decides whether
its blocks run, run only when a condition holds, go to the rollback plan, or are kept as
reference in the runbook's description."""

from __future__ import annotations

from pathlib import Path

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
