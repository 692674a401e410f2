"""Runbook source formats: how the loader reads a runbook written in something other than YAML.

The runbook model is the bottom floor: it imports no reader of another format. It defines
what it needs of one (:class:`SourceFormat`: text in, the plain runbook data, the line of
each field and the YAML text a release records out) and finds the formats by the file's
suffix through the ``shipcaptain.runbook_formats`` entry-point group (:data:`GROUP`; the
entry point's name is the suffix without its dot). The Markdown importer registers itself
there (``md``, ``markdown``); code that embeds shipcaptain can call
:meth:`FormatRegistry.register` (the action catalogue's registry, keyed by suffix). A
format is imported only when a file with its suffix is first read, so loading a YAML
runbook imports no other reader.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shipcaptain.runbook.catalogue import Registry
from shipcaptain.runbook.checks import DocPath

#: The entry-point group runbook source formats register in.
GROUP = "shipcaptain.runbook_formats"


@dataclass(frozen=True)
class SourceDocument:
    """A runbook read from another format, before it is checked."""

    #: plain runbook data (what a YAML runbook parses to)
    data: Any
    #: the line in the source of each field (for messages that point at the source)
    lines: Mapping[DocPath, int]
    #: the runbook as YAML: what a release records and re-reads
    yaml_text: str


class SourceFormat(Protocol):
    """A reader of one runbook source format (an instance of its class)."""

    def read(
        self, text: str, filename: str, *, base: Path | None, installed: Collection[str]
    ) -> SourceDocument:
        """Turn ``text`` into runbook data. ``installed`` names the action types known
        (a format may map to a native action only when it is installed); ``base`` is the
        file's directory. A mistake in the text raises InvalidRunbook."""
        ...


class FormatRegistry(Registry[SourceFormat]):
    """The source formats by suffix (the entry point's name: the suffix in lower case,
    without its dot), from the entry points of :data:`GROUP` and any registered in code
    (``register(JsonFormat, "jsonrb")``); each format class has one instance, made when a
    file with its suffix is first read."""

    def __init__(self) -> None:
        super().__init__(GROUP, "runbook format")

    def suffixes(self) -> list[str]:
        return ["." + name for name in self.names()]

    def for_path(self, path: Path) -> SourceFormat | None:
        """The format of a file by its suffix; None for YAML (the loader's own format)."""
        name = path.suffix.lower().lstrip(".")
        return self.get(name) if name and name in self else None


#: The one registry of source formats the loader reads through.
formats = FormatRegistry()
