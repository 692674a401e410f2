"""Runbook source formats: the loader finds a reader by the file's suffix through a registry
the runbook floor defines; the Markdown importer is one such reader, found by entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.formats import FormatRegistry, SourceDocument, formats
from shipcaptain.runbook.loader import load_runbook_file

DATA = Path(__file__).parent.parent / "data" / "markdown"

RUNBOOK: dict[str, Any] = {
    "name": "from-json",
    "phases": [
        {"id": "only", "steps": [{"id": "hello", "action": "shell", "with": {"command": "true"}}]}
    ],
}


class JsonFormat:
    """A third-party format: a runbook written as JSON (line 1 for every field)."""

    def __init__(self) -> None:
        self.installed: Collection[str] = ()

    def read(
        self, text: str, filename: str, *, base: Path | None, installed: Collection[str]
    ) -> SourceDocument:
        self.installed = installed
        data = json.loads(text)
        return SourceDocument(data, {(): 1}, json.dumps(data, indent=2))


def test_a_format_registered_in_code_reads_files_of_its_suffix(tmp_path: Path) -> None:
    registry = FormatRegistry()
    registry.register(JsonFormat, "jsonrb")
    reader = registry.for_path(tmp_path / "release.JSONRB")
    assert isinstance(reader, JsonFormat)
    assert registry.for_path(tmp_path / "other.jsonrb") is reader, "one instance"
    assert registry.for_path(tmp_path / "release.yaml") is None
    assert registry.for_path(tmp_path / "no-suffix") is None
    assert ".jsonrb" in registry.suffixes()


def test_the_loader_checks_what_a_format_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "_classes", dict(formats._classes))
    monkeypatch.setattr(formats, "_instances", dict(formats._instances))
    formats.register(JsonFormat, "jsonrb")
    path = tmp_path / "release.jsonrb"
    path.write_text(json.dumps(RUNBOOK), encoding="utf-8")
    loaded = load_runbook_file(path)
    assert loaded.runbook.name == "from-json"
    assert loaded.text == json.dumps(RUNBOOK, indent=2)  # what a release records
    reader = formats.for_path(path)
    assert isinstance(reader, JsonFormat)
    assert "shell" in reader.installed
    bad = tmp_path / "bad.jsonrb"
    bad.write_text(json.dumps({**RUNBOOK, "phases": "none"}), encoding="utf-8")
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook_file(bad)
    assert f"{bad}:1: phases" in str(caught.value)


def test_markdown_is_found_by_its_entry_points() -> None:
    assert {".md", ".markdown"} <= set(formats.suffixes())
    reader = formats.for_path(DATA / "seed.md")
    assert type(reader).__module__ == "shipcaptain.markdown.source"


def test_loading_a_yaml_runbook_imports_no_markdown(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: r\nphases:\n  - id: p\n    steps:\n      - id: s\n        action: shell\n"
        "        with: {command: 'true'}\n",
        encoding="utf-8",
    )
    script = (
        "import sys\nfrom shipcaptain.runbook.loader import load_runbook_file\n"
        f"load_runbook_file({str(path)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('shipcaptain.markdown')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
