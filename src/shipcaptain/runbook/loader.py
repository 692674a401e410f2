"""Reading a runbook file: YAML in, a checked ``Runbook`` out, or every mistake at once.

A mistake in the file is never a traceback: it is an ``InvalidRunbook`` that lists each
problem with the file, the line and the field as the file spells it, e.g.
``runbook.yaml:12: phases[0].steps[1].timeout: 'soon' is not a duration ...``.
The file's text and its sha256 digest are kept with the runbook, so a release records
exactly which runbook it ran.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shipcaptain.errors import InvalidRunbook, Location, RunbookProblem, ShipError
from shipcaptain.runbook.catalogue import ActionCatalogue
from shipcaptain.runbook.catalogue import registry as default_registry
from shipcaptain.runbook.checks import DocPath, check_runbook, explain_errors, format_path
from shipcaptain.runbook.formats import SourceDocument, formats
from shipcaptain.runbook.libyaml_reader import read_plain
from shipcaptain.runbook.model import Runbook

#: Values (after expanding YAML aliases) above which a file is refused as too large.
MAX_VALUES = 100_000
#: Levels of nested mappings and lists above which a file is refused (a runbook needs ~8).
MAX_DEPTH = 50


@dataclass(frozen=True)
class LoadedRunbook:
    """A checked runbook with the text it was read from and where each field is in it."""

    runbook: Runbook
    text: str
    path: Path | None
    digest: str
    lines: Mapping[DocPath, int] = field(default_factory=dict, repr=False)

    def locate(self, path: DocPath) -> Location:
        """File, line and field of a path into the document (e.g. for an error at run time)."""
        name = str(self.path) if self.path is not None else None
        return _locate(name, self.lines, path)


def runbook_digest(text: str) -> str:
    """sha256 of the runbook's text (UTF-8), in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_runbook_file(
    path: str | Path, *, registry: ActionCatalogue | None = None
) -> LoadedRunbook:
    """Read, parse and check the runbook at ``path``: YAML, or another source format found
    by its suffix (Markdown: see ``shipcaptain.runbook.formats``). Raises InvalidRunbook."""
    path = Path(path)
    text = read_runbook_text(path)
    source_format = formats.for_path(path)
    if source_format is None:
        return _load(text, str(path), path, registry)
    reg = registry if registry is not None else default_registry
    document = source_format.read(text, str(path), base=path.parent, installed=reg.names())
    return load_document(document, str(path), path=path, registry=registry)


def read_runbook_text(path: Path) -> str:
    """The text of a runbook file; a file that cannot be read is an InvalidRunbook."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = RunbookProblem(f"cannot read the runbook: {reason}", location=Location(str(path)))
        raise InvalidRunbook([problem]) from exc
    except UnicodeDecodeError as exc:
        problem = RunbookProblem(
            f"the runbook is not UTF-8 text (byte {exc.start})", location=Location(str(path))
        )
        raise InvalidRunbook([problem]) from exc


def load_document(
    document: SourceDocument,
    filename: str,
    *,
    path: Path | None = None,
    registry: ActionCatalogue | None = None,
) -> LoadedRunbook:
    """Check a runbook read from another source format; problems point at the source's
    lines. The loaded text is the document's YAML, which a release records and re-reads."""
    runbook = _check(document.data, filename, document.lines, registry)
    text = document.yaml_text
    return LoadedRunbook(runbook, text, path, runbook_digest(text), document.lines)


def load_runbook(path: str | Path, *, registry: ActionCatalogue | None = None) -> Runbook:
    """Read, parse and check the runbook at ``path``. Raises InvalidRunbook."""
    return load_runbook_file(path, registry=registry).runbook


def parse_runbook(text: str, filename: str, *, registry: ActionCatalogue | None = None) -> Runbook:
    """Parse and check runbook text; ``filename`` is only used in messages."""
    return _load(text, filename, None, registry).runbook


def _load(
    text: str, filename: str, path: Path | None, registry: ActionCatalogue | None
) -> LoadedRunbook:
    data = read_plain(text, max_values=MAX_VALUES, max_depth=MAX_DEPTH)
    if isinstance(data, dict):  # read by libyaml as ruamel reads it: lines when asked
        lines = _LinesWhenAsked(text, filename)
        try:
            runbook = _check(data, filename, lines, registry)
        except InvalidRunbook:
            pass  # told exactly as always, by the reader below
        else:
            return LoadedRunbook(runbook, text, path, runbook_digest(text), lines)
    data, found = _read_yaml(text, filename)
    runbook = _check(data, filename, found, registry)
    return LoadedRunbook(runbook, text, path, runbook_digest(text), found)


class _LinesWhenAsked(Mapping[DocPath, int]):
    """The line of every key and list item of a runbook's text, read (with ruamel, as
    :func:`_read_yaml` reads them) when first asked: a runbook read by libyaml
    (``libyaml_reader``) that checks out needs them only for a message at run time."""

    def __init__(self, text: str, filename: str) -> None:
        self._text = text
        self._filename = filename
        self._lines: dict[DocPath, int] | None = None

    def _found(self) -> dict[DocPath, int]:
        if self._lines is None:
            self._lines = _read_yaml(self._text, self._filename)[1]
        return self._lines

    def __getitem__(self, key: DocPath) -> int:
        return self._found()[key]

    def __iter__(self) -> Iterator[DocPath]:
        return iter(self._found())

    def __len__(self) -> int:
        return len(self._found())


def _check(
    data: Any, filename: str, lines: Mapping[DocPath, int], registry: ActionCatalogue | None
) -> Runbook:
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        found = explain_errors(exc.errors(), Runbook, data)
        raise InvalidRunbook(_problems(found, filename, lines)) from None
    found = check_runbook(runbook, registry if registry is not None else default_registry)
    if found:
        raise InvalidRunbook(_problems(found, filename, lines))
    return runbook


def _problems(
    found: list[tuple[DocPath, str]], filename: str, lines: Mapping[DocPath, int]
) -> list[ShipError]:
    """One RunbookProblem per finding, in the order of the file's lines."""
    problems: list[ShipError] = [
        RunbookProblem(msg, location=_locate(filename, lines, path)) for path, msg in found
    ]
    problems.sort(key=lambda p: (p.location.line or 0) if p.location else 0)
    return problems


def _locate(filename: str | None, lines: Mapping[DocPath, int], path: DocPath) -> Location:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return Location(filename, lines[path[:n]], format_path(path) or None)
    return Location(filename, None, format_path(path) or None)


# ---- YAML --------------------------------------------------------------------------------


# ruamel is imported when a text is read with it (~10 ms of CPU): a runbook libyaml reads
# (``libyaml_reader``) that checks out never needs it.


def _read_yaml(text: str, filename: str) -> tuple[Any, dict[DocPath, int]]:
    """Plain Python data (dicts, lists, scalars) and the line of every key and list item."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.Scanner = _flow_depth_scanner()
    try:
        document = yaml.load(text)
    except _FlowTooDeep as deep:  # the line is found before that level: read up to it only
        _check_depth(text[: deep.index + 1], filename)
        raise _too_deep(filename, None) from None
    except RecursionError:  # the parser recurses per level: find the line without it
        _check_depth(text, filename)
        raise _too_deep(filename, None) from None
    except MarkedYAMLError as exc:
        raise InvalidRunbook([_yaml_problem(exc, filename)]) from None
    except YAMLError as exc:
        problem = RunbookProblem(f"not valid YAML: {exc}", location=Location(filename))
        raise InvalidRunbook([problem]) from None
    if document is None:
        raise InvalidRunbook([RunbookProblem("the runbook is empty", location=Location(filename))])
    if not isinstance(document, dict):
        problem = RunbookProblem(
            "the runbook must be a mapping (name:, phases:, ...) at the top level",
            location=Location(filename, 1),
        )
        raise InvalidRunbook([problem])
    plain = _Plain()
    data = plain.convert(document, ())
    if plain.problems:
        raise InvalidRunbook(_problems(plain.problems, filename, plain.lines))
    return data, plain.lines


_OPENING = (
    "BlockMappingStartToken",
    "BlockSequenceStartToken",
    "FlowMappingStartToken",
    "FlowSequenceStartToken",
)
_CLOSING = ("BlockEndToken", "FlowMappingEndToken", "FlowSequenceEndToken")


class _FlowTooDeep(Exception):
    """A flow collection opened too deep for the parser, at ``index`` of the text."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@functools.cache
def _flow_depth_scanner() -> type:
    from ruamel.yaml.scanner import RoundTripScanner

    class _FlowDepthScanner(RoundTripScanner):
        """ruamel's round-trip scanner, stopped where the parser would run out of recursion
        anyway: the composer takes two frames a level, so past half the recursion limit a
        flow collection (``[``, ``{``) always ends in the RecursionError handled below. The
        scanner keeps every open level of a line as a possible simple key and goes through
        all of them at each token, so ``[[[[...`` 5000 deep took ~25 s to reach that error."""

        def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
            if self.flow_level >= sys.getrecursionlimit() // 2:
                raise _FlowTooDeep(self.reader.index)
            super().fetch_flow_collection_start(TokenClass, to_push)

    return _FlowDepthScanner


def _too_deep(filename: str, line: int | None) -> InvalidRunbook:
    problem = RunbookProblem(
        f"nested more than {MAX_DEPTH} levels deep; a runbook needs far fewer",
        location=Location(filename, line),
    )
    return InvalidRunbook([problem])


def _check_depth(text: str, filename: str) -> None:
    """Refuse deep nesting at its line: the scanner reads tokens without recursion (the
    parser does not); a scanning error is left for the parser to report."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    depth = 0
    try:
        for token in YAML(typ="rt").scan(text):
            kind = type(token).__name__
            if kind in _OPENING:
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(filename, token.start_mark.line + 1)
            elif kind in _CLOSING:
                depth -= 1
    except YAMLError:
        return


def _yaml_problem(exc: Any, filename: str) -> RunbookProblem:
    """The problem a ruamel ``MarkedYAMLError`` tells."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    message = str(exc.problem or exc.context or "not valid YAML")
    if exc.problem and exc.context and exc.context_mark is not None:
        started = exc.context_mark.line + 1
        if started != line:
            message += f" ({exc.context}, from line {started})"
    return RunbookProblem(f"not valid YAML: {message}", location=Location(filename, line))


class _Plain:
    """Turns ruamel's round-trip nodes into plain values and notes their lines."""

    def __init__(self) -> None:
        from ruamel.yaml.comments import TaggedScalar

        self._tagged = TaggedScalar
        self.lines: dict[DocPath, int] = {}
        self.problems: list[tuple[DocPath, str]] = []
        self._count = 0

    def convert(self, node: Any, path: DocPath) -> Any:
        if len(path) > MAX_DEPTH:  # aliases can nest without indentation
            if not any(msg.startswith("nested") for _, msg in self.problems):
                self.problems.append((path[:1], f"nested more than {MAX_DEPTH} levels deep"))
            return None
        self._count += 1
        if self._count > MAX_VALUES:
            if self._count == MAX_VALUES + 1:
                self.problems.append(((), f"more than {MAX_VALUES} values after expanding aliases"))
            return None
        if isinstance(node, dict | list):  # ruamel never builds one that contains itself
            return self._container(node, path)
        return self._scalar(node, path)

    def _container(self, node: dict[Any, Any] | list[Any], path: DocPath) -> Any:
        if path == () and hasattr(node, "lc"):
            self.lines[()] = node.lc.line + 1
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                name = key if isinstance(key, str) else str(key)
                self._note((*path, name), node, "key", key)
                out[name] = self.convert(value, (*path, name))
            return out
        items = []
        for index, value in enumerate(node):
            self._note((*path, index), node, "item", index)
            items.append(self.convert(value, (*path, index)))
        return items

    def _note(self, path: DocPath, node: Any, how: str, key: Any) -> None:
        # a key that came from a merge (<<:) has no line of its own
        with contextlib.suppress(AttributeError, KeyError, TypeError, IndexError):
            self.lines[path] = getattr(node.lc, how)(key)[0] + 1

    def _scalar(self, node: Any, path: DocPath) -> Any:
        if isinstance(node, self._tagged):
            self.problems.append((path, f"YAML tag {node.tag!s} is not supported here"))
            return None
        if node is None or isinstance(node, bool):
            return node
        for kind in (int, float, str):
            if isinstance(node, kind):
                return kind(node)
        if isinstance(node, datetime.date):
            return node.isoformat()
        self.problems.append((path, f"unsupported YAML value {node!r}"))
        return None
