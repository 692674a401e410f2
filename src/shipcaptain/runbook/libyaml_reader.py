"""A runbook's YAML read by libyaml, when it reads exactly as the checked reader would.

The runbook loader reads YAML with ruamel's round-trip loader: YAML 1.2, with the line of
every key and list item for its messages. In pure Python that costs ~1.5 ms of CPU per step
of a runbook (~80 ms of a 50-step ``release start`` on an idle machine, about a tenth of
its time to the first step; issue 27). libyaml (through PyYAML's C parser) reads the same
text about thirty times faster, but it resolves plain scalars as YAML 1.1 does (``yes``
is true, ``1e3`` a string, ``0777`` octal).

So :func:`read_plain` takes only libyaml's *events* (the parse, no YAML 1.1 resolution)
and builds the plain values itself, resolving each plain scalar with ruamel's own YAML 1.2
resolver (unless no resolver of ruamel's could read it as anything but text: then ruamel
is not even imported; see :data:`MAYBE_TYPED`). It answers None, and the loader reads the
text with ruamel as always, whenever it is not sure to build exactly what ruamel's reader
builds: anchors and aliases, merge keys, any explicit tag, a tab, a byte-order mark or a
YAML 1.1 line break (NEL, LS, PS) anywhere in the text, a ``%YAML`` or ``%TAG`` directive,
several documents, a key that is not a string, a key given twice, a plain scalar that
resolves to anything but a string, null, a boolean, a decimal integer or a decimal
fraction (dates, ``0x1f``, ``1_000``, ``.inf``), nesting or sizes past the loader's
limits, and any text libyaml refuses. The lines of keys and items are not taken from here:
the loader reads them with ruamel only when a message or a caller needs them.

``tests/unit/test_runbook_libyaml.py`` checks it against ruamel's reader on every YAML
file of the repository, on the scalars where YAML 1.1 and 1.2 differ, and on random
documents made of the pieces where they could part (which found the tab, the line breaks
and the lone ``!`` tag).
"""

from __future__ import annotations

import functools
import re
from typing import Any

#: plain scalars taken as numbers here; any other ruamel reads as a number is left to it
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+")

#: characters the two readers take apart: a tab (ruamel refuses one where libyaml takes it,
#: ``a: x<tab>y``), the line breaks of YAML 1.1 only (NEL, LS, PS) and a byte-order mark
_PARTING = ("\t", "\x85", "\u2028", "\u2029", "\ufeff")

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Unsure(Exception):
    """ruamel's reader may read this text differently: let it."""


def read_plain(text: str, *, max_values: int, max_depth: int) -> Any | None:
    """The plain values (dicts, lists, str, int, float, bool, None) of the YAML ``text``,
    the same as the runbook loader's ruamel reader gives, or None when not sure."""
    if any(c in text for c in _PARTING):
        return None
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):  # no libyaml: nothing to gain
        return None
    try:
        return _Builder(max_values, max_depth).build(yaml.parse(text, Loader=loader))
    except (_Unsure, yaml.YAMLError, RecursionError):
        return None


@functools.cache
def _resolver() -> Any:
    from ruamel.yaml.resolver import VersionedResolver

    return VersionedResolver()


#: ruamel's YAML 1.2 resolver looks a plain scalar's implicit resolvers up by its first
#: character, and has none for most: a scalar that starts with none of these characters,
#: and is none of :data:`TYPED_WORDS`, is text, and ruamel (~10 ms of CPU to import: every
#: command that loads a runbook) is not needed for it. The letters it has resolvers for
#: (``tTfFnN``) are only those of the booleans and nulls it knows by name.
#: ``tests/unit/test_runbook_libyaml.py`` checks both against ruamel's own table.
MAYBE_TYPED = frozenset("!&*+-.0123456789<=~")
TYPED_WORDS = frozenset(("true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"))


def _resolve(value: str) -> Any:
    """A plain scalar as ruamel's YAML 1.2 reader makes it (raises _Unsure)."""
    if value and value[0] not in MAYBE_TYPED and value not in TYPED_WORDS:
        return value  # no implicit resolver of ruamel's reads it: text
    from ruamel.yaml.nodes import ScalarNode

    tag = str(_resolver().resolve(ScalarNode, value, (True, False)))
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _INT_TAG and _INT.fullmatch(value):
        return int(value)
    if tag == _FLOAT_TAG and _FLOAT.fullmatch(value):
        return float(value)
    raise _Unsure


_KEY = object()  # a mapping waiting for its next key


class _Builder:
    """Plain values from parse events; raises _Unsure where ruamel may differ."""

    def __init__(self, max_values: int, max_depth: int) -> None:
        self.max_values = max_values
        self.max_depth = max_depth
        # one frame per open collection: [container, its next key or _KEY]
        self.stack: list[list[Any]] = []
        self.root: list[Any] = []
        self.documents = 0
        self.count = 0

    def build(self, events: Any) -> Any:
        for event in events:
            kind = type(event).__name__
            if kind in ("StreamStartEvent", "StreamEndEvent", "DocumentEndEvent"):
                continue
            if kind == "DocumentStartEvent":
                self.documents += 1
                if self.documents > 1 or event.version or event.tags:
                    raise _Unsure
            elif kind in ("MappingStartEvent", "SequenceStartEvent"):
                self.open(event, {} if kind == "MappingStartEvent" else [])
            elif kind in ("MappingEndEvent", "SequenceEndEvent"):
                self.add(self.stack.pop()[0])  # counted when it opened
            elif kind == "ScalarEvent":
                self.scalar(event)
            else:  # an alias
                raise _Unsure
        if len(self.root) != 1:
            raise _Unsure
        return self.root[0]

    def _wants_key(self) -> bool:
        return (
            bool(self.stack) and self.stack[-1][1] is _KEY and isinstance(self.stack[-1][0], dict)
        )

    def _counted(self) -> None:
        self.count += 1
        if self.count > self.max_values:
            raise _Unsure

    def open(self, event: Any, container: dict[str, Any] | list[Any]) -> None:
        if event.anchor is not None or event.tag is not None:
            raise _Unsure
        if self._wants_key() or len(self.stack) >= self.max_depth:
            raise _Unsure  # a mapping or a list as a key; too deep
        self._counted()
        self.stack.append([container, _KEY])

    def scalar(self, event: Any) -> None:
        if event.anchor is not None or event.tag is not None:  # even ``!`` alone
            raise _Unsure
        plain = event.implicit[0]
        value = _resolve(event.value) if plain else event.value
        if self._wants_key():
            if not isinstance(value, str) or value == "<<":
                raise _Unsure  # a key ruamel turns into text, or a merge
            if value in self.stack[-1][0]:
                raise _Unsure  # a key given twice: ruamel's reader refuses it
            self.stack[-1][1] = value
            return
        self._counted()
        self.add(value)

    def add(self, value: Any) -> None:
        if not self.stack:
            self.root.append(value)
            return
        frame = self.stack[-1]
        if isinstance(frame[0], dict):
            frame[0][frame[1]] = value
            frame[1] = _KEY
        else:
            frame[0].append(value)
