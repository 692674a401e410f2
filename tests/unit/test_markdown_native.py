"""Markdown import of the team's own commands as native actions, and what a runbook says
around them: ``kubectl apply -k`` (its history namespace), a health check with the build
hash, a restore behind a decision, placeholders in titles, incident rules."""

from __future__ import annotations

from pathlib import Path

from shipcaptain.markdown.importer import import_markdown
from shipcaptain.runbook.loader import load_runbook

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
