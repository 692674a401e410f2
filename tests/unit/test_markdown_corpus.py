"""Real operations documents (tests/data/markdown/corpus, sources and licences in its
SOURCES.md): each imports to the runbook checked in beside it, validates, plans, and its
export imports back to the same runbook. Export then import also holds for a list of any
length (items 10. and up are indented as CommonMark needs).

After a change to the importer: ``python tests/unit/test_markdown_corpus.py`` rewrites the
expected ``.yaml`` files; read the diff before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from shipcaptain.actions.registry import registry
from shipcaptain.markdown.export import export_markdown
from shipcaptain.markdown.importer import import_markdown
from shipcaptain.plan import make_plan
from shipcaptain.runbook.loader import load_runbook
from shipcaptain.runbook.model import Runbook

CORPUS = Path(__file__).parent.parent / "data" / "markdown" / "corpus"
DOCUMENTS = sorted(p.stem for p in CORPUS.glob("*.md") if p.name != "SOURCES.md")


def imported_yaml(name: str) -> str:
    doc = CORPUS / f"{name}.md"
    return import_markdown(doc.read_text(encoding="utf-8"), doc.name).yaml_text()


def shape(rb: Runbook) -> dict[str, Any]:
    """The runbook without where each step came from and the wording of descriptions
    (which cite source lines)."""
    data = rb.model_dump()
    for phase in data["phases"]:
        phase.pop("description")
        phase["steps"] = [
            {k: v for k, v in s.items() if k not in ("source", "description")}
            for s in phase["steps"]
        ]
    data["rollback"] = [
        {k: v for k, v in s.items() if k not in ("source", "description")} for s in data["rollback"]
    ]
    return data


def test_every_document_is_listed_with_its_source_and_licence() -> None:
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert DOCUMENTS
    for name in DOCUMENTS:
        row = next(ln for ln in sources.splitlines() if ln.startswith(f"| `{name}.md`"))
        repo, path, commit, licence = [c.strip() for c in row.split("|")[2:6]]
        assert repo.startswith("[")
        assert "github.com" in repo
        assert path.startswith("`")
        assert len(commit.strip("`")) == 40
        assert licence in {"Apache-2.0", "CC-BY-4.0", "MIT"}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_import_matches_the_expected_runbook(name: str) -> None:
    expected = (CORPUS / f"{name}.yaml").read_text(encoding="utf-8")
    assert YAML(typ="safe").load(imported_yaml(name)) == YAML(typ="safe").load(expected)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_it_validates_plans_and_round_trips(name: str, tmp_path: Path) -> None:
    rb = load_runbook(CORPUS / f"{name}.md")
    values = {p: "x" for p, spec in rb.parameters.items() if spec.required}
    plan = make_plan(rb, values, registry, workdir=tmp_path)
    assert [s.id for s in plan.steps] == list(rb.steps)
    assert all(s.description for s in plan.steps)
    exported = tmp_path / "RUNBOOK.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    assert shape(load_runbook(exported)) == shape(rb)


def test_a_long_list_round_trips(tmp_path: Path) -> None:
    """Twelve steps with parameters and settings: item 10's blocks stay in item 10."""
    steps = "\n".join(
        f"      - id: s{k}\n        title: 'Step {k}:'\n        action: wait\n"
        f"        with: {{duration: {k}s, reason: 'r {k}'}}\n"
        f"        retry: {{attempts: 2, backoff: 1s}}"
        for k in range(1, 13)
    )
    source = tmp_path / "runbook.yaml"
    source.write_text(
        f"name: long\ntitle: Long\nphases:\n  - id: go\n    title: Go\n    steps:\n{steps}\n",
        encoding="utf-8",
    )
    rb = load_runbook(source)
    exported = tmp_path / "RUNBOOK.md"
    exported.write_text(export_markdown(rb), encoding="utf-8")
    again = load_runbook(exported)
    assert shape(again) == shape(rb)
    assert [s.title for s in again.steps.values()][9:] == ["Step 10:", "Step 11:", "Step 12:"]


if __name__ == "__main__":  # rewrite the expected runbooks
    for doc in DOCUMENTS:
        (CORPUS / f"{doc}.yaml").write_text(imported_yaml(doc), encoding="utf-8")
        print(f"wrote {CORPUS / doc}.yaml", file=sys.stderr)
