"""The Markdown runbook as a source format of the loader (``shipcaptain.runbook.formats``).

Registered by the ``shipcaptain.runbook_formats`` entry points ``md`` and ``markdown``, so
``load_runbook_file`` runs a ``.md`` runbook directly: it is imported in memory, checked,
and its problems point at the Markdown's lines.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from shipcaptain.errors import InvalidRunbook, Location, RunbookProblem
from shipcaptain.markdown.importer import ImportResult, import_markdown
from shipcaptain.runbook.catalogue import ActionCatalogue
from shipcaptain.runbook.catalogue import registry as default_registry
from shipcaptain.runbook.formats import SourceDocument
from shipcaptain.runbook.loader import LoadedRunbook, load_document, read_runbook_text


def _document(imported: ImportResult, filename: str) -> SourceDocument:
    if imported.problems:
        raise InvalidRunbook(
            [
                RunbookProblem(msg, location=Location(filename, line))
                for line, msg in imported.problems
            ]
        )
    return SourceDocument(imported.data, imported.lines, imported.yaml_text())


class MarkdownFormat:
    """Reads a Markdown runbook (the importer's mapping of headings, lists and code)."""

    def read(
        self, text: str, filename: str, *, base: Path | None, installed: Collection[str]
    ) -> SourceDocument:
        return _document(import_markdown(text, filename, installed=installed, base=base), filename)


def load_markdown_file(
    path: str | Path, *, registry: ActionCatalogue | None = None
) -> tuple[LoadedRunbook, ImportResult]:
    """Import and check the Markdown runbook at ``path``; also returns what was imported
    (with the items it could not map). Raises InvalidRunbook."""
    path = Path(path)
    reg = registry if registry is not None else default_registry
    imported = import_markdown(
        read_runbook_text(path), str(path), installed=reg.names(), base=path.parent
    )
    document = _document(imported, str(path))
    return load_document(document, str(path), path=path, registry=registry), imported
