"""Runbook source formats: how the loader reads a runbook written in something other than YAML.

The runbook model is the bottom floor: it imports no reader of another format. It defines
what it needs of one (:class:`SourceFormat`: text in, the plain runbook data, the line of
each field and the YAML text a release records out) and finds the formats by the file's
suffix through the ``shipcaptain.runbook_formats`` entry-point group (:data:`GROUP`; the
entry point's name is the suffix without its dot). The Markdown importer registers itself
there (``md``, ``markdown``); code that embeds shipcaptain can call
:meth:`FormatRegistry.register`. A format is imported only when a file with its suffix is
first read, so loading a YAML runbook imports no other reader.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from threading import Lock
from typing import Any, Protocol

from shipcaptain.errors import ShipError
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


class FormatRegistry:
    """The source formats by suffix (lower case, with its dot), from the entry points of
    :data:`GROUP` and any registered in code; each format class has one instance."""

    def __init__(self) -> None:
        self._formats: dict[str, SourceFormat] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self._loaded = False
        self._lock = Lock()

    def _load_entry_points(self) -> None:
        with self._lock:
            if self._loaded:
                return
            for ep in entry_points(group=GROUP):
                self._entry_points.setdefault("." + ep.name.lstrip(".").lower(), ep)
            self._loaded = True

    def register(self, suffix: str, source_format: SourceFormat) -> None:
        """Read files ending in ``suffix`` (e.g. ``.md``) with ``source_format``."""
        self._formats["." + suffix.lstrip(".").lower()] = source_format

    def suffixes(self) -> list[str]:
        self._load_entry_points()
        return sorted({*self._formats, *self._entry_points})

    def for_path(self, path: Path) -> SourceFormat | None:
        """The format of a file by its suffix; None for YAML (the loader's own format)."""
        self._load_entry_points()
        suffix = path.suffix.lower()
        found = self._formats.get(suffix)
        if found is not None:
            return found
        ep = self._entry_points.get(suffix)
        if ep is None:
            return None
        with self._lock:
            if suffix not in self._formats:
                try:
                    self._formats[suffix] = ep.load()()
                except Exception as exc:  # a broken plug-in must not hide the others
                    raise ShipError(
                        f"runbook format plug-in {ep.name!r} ({ep.value}) could not be "
                        f"loaded: {exc}"
                    ) from exc
            return self._formats[suffix]


#: The one registry of source formats the loader reads through.
formats = FormatRegistry()
