"""Values rendered into a shell command line are quoted for where they land.

``{{ tag }}`` in a command is a *value*, never shell code: after rendering, each value is
quoted for the place of the command it is in, so bash reads it back as exactly that text.

=====================================  =====================================================
where the value is                     how it is quoted (``$(touch x)`` as the value)
=====================================  =====================================================
a word: ``git tag v{{ tag }}``         ``shlex.quote``: ``git tag v'$(touch x)'``
in double quotes: ``"v{{ tag }}"``     ``\\`` before ``\\ $ " ``` ``: ``"v\\$(touch x)"``
in single quotes: ``'v{{ tag }}'``     ``'`` becomes ``'\\''``
in ``$'...'``                          ``\\`` before ``\\`` and ``'``
inside ``$( ... )``                    as a word again (the quoting starts over inside)
a here-document body                   unquoted delimiter: ``\\`` before ``\\ $ ```;
                                       quoted delimiter (``<<'EOF'``): as it is
a comment                              line breaks become spaces
=====================================  =====================================================

Text that only holds letters, digits and ``@%+=:,./-`` is left as it is, so
``v{{ version }}`` still reads ``v1.4.0``. What cannot be quoted safely is refused with a
``ShellQuotingError`` that says what to do instead: a value right after ``\\`` or ``$``, a
value inside backticks (use ``$( )``), a value with a line break in a here-document or one
that would end it, a value after a here-document header this module cannot read.

Quoting is the default; ``| raw`` is the explicit, per-use way out (the value is shell
code the runbook's author vouches for). A value given to ``eval``, ``bash -c`` or ``ssh``
is run as code by them whatever its quoting: pass those values through the environment
(``"$SC_PARAM_TAG"``) instead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field


class ShellQuotingError(ValueError):
    """A value lands in a place of a command where it cannot be quoted safely."""


_DOUBLE_QUOTED = re.compile(r'([\\$"`])')
_HEREDOC_ESCAPED = re.compile(r"([\\$`])")
_HEREDOC = re.compile(
    r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z0-9_.-]+))(?=[\s;&|<>()]|$)"
)
_WORD_BREAK = " \t\n;&|()<>"

_REFUSALS = {
    "\\": "a template value right after a backslash cannot be quoted; remove the backslash",
    "$": "a template value right after '$' would be read as a variable or $'...'; "
    "remove the '$' or put the value in quotes of its own",
}


@dataclass
class _Frame:
    kind: str  # word, subst, backtick, single, double, ansi
    depth: int = 0  # open parentheses inside a $( )
    cases: int = 0  # open 'case ... esac' inside a $( ) (their ')' do not close it)


@dataclass
class _Heredoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool


@dataclass
class _Quoter:
    text: str
    marker: re.Pattern[str]
    values: Sequence[str]
    out: list[str] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=lambda: [_Frame("word")])
    heredocs: list[_Heredoc] = field(default_factory=list)
    unreadable_heredoc: bool = False
    pos: int = 0

    def value_at(self, pos: int) -> tuple[str, int] | None:
        match = self.marker.match(self.text, pos)
        if match is None:
            return None
        return self.values[int(match.group(1))], match.end()

    def refuse_before_value(self, pos: int) -> None:
        """``\\`` or ``$`` at ``pos`` followed by a value."""
        if self.text[pos] in _REFUSALS and self.value_at(pos + 1) is not None:
            raise ShellQuotingError(_REFUSALS[self.text[pos]])

    def run(self) -> str:
        text = self.text
        word_start = True
        while self.pos < len(text):
            found = self.value_at(self.pos)
            frame = self.stack[-1]
            if found is not None:
                value, self.pos = found
                self.out.append(self.quote(frame.kind, value))
                word_start = False
                continue
            ch = text[self.pos]
            if frame.kind in ("word", "subst", "backtick"):
                word_start = self.code(frame, ch, word_start)
                continue
            if frame.kind in ("double", "ansi") and ch == "\\":
                self.refuse_before_value(self.pos)
                self.emit(2)
                continue
            if frame.kind == "double" and ch == "$":
                self.refuse_before_value(self.pos)
                if text.startswith("$(", self.pos):
                    self.stack.append(_Frame("subst"))
                    self.emit(2)
                    word_start = True
                    continue
            if frame.kind == "double" and ch == "`":
                self.stack.append(_Frame("backtick"))
            elif (frame.kind == "double" and ch == '"') or (
                frame.kind in ("single", "ansi") and ch == "'"
            ):
                self.stack.pop()
            self.emit(1)
        return "".join(self.out)

    def emit(self, count: int) -> None:
        self.out.append(self.text[self.pos : self.pos + count])
        self.pos += count

    def code(self, frame: _Frame, ch: str, word_start: bool) -> bool:
        """One character of shell code (not in quotes); returns whether a word starts next."""
        text, pos = self.text, self.pos
        if ch in "\\$":
            self.refuse_before_value(pos)
        if ch == "\\":
            if text.startswith("\\\n", pos) and self.heredocs:
                self.emit(2)  # a continued line: the here-document starts after it
                return True
            self.emit(2)
            return False
        if ch == "'":
            self.stack.append(_Frame("single"))
        elif ch == '"':
            self.stack.append(_Frame("double"))
        elif text.startswith("$'", pos):
            self.stack.append(_Frame("ansi"))
            self.emit(2)
            return False
        elif text.startswith("$(", pos):
            self.stack.append(_Frame("subst"))
            self.emit(2)
            return True
        elif ch == "`":
            if frame.kind == "backtick":
                self.stack.pop()
            else:
                self.stack.append(_Frame("backtick"))
        elif frame.kind == "subst" and ch in "()":
            self.parenthesis(frame, ch)
        elif word_start and frame.kind == "subst" and re.match(r"(case|esac)\b", text[pos:]):
            frame.cases += 1 if text.startswith("case", pos) else -1
        elif ch == "#" and word_start:
            self.comment()
            return True
        elif text.startswith("<<", pos) and not text.startswith("<<<", pos):
            self.heredoc_header()
            return False
        elif ch == "\n" and self.heredocs:
            self.emit(1)
            self.heredoc_bodies()
            return True
        self.emit(1)
        return ch in _WORD_BREAK

    def parenthesis(self, frame: _Frame, ch: str) -> None:
        if ch == "(":
            frame.depth += 1
        elif frame.cases > 0 and frame.depth == 0:
            pass  # the ')' after a case pattern
        elif frame.depth == 0:
            self.stack.pop()
        else:
            frame.depth -= 1

    def comment(self) -> None:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        while self.pos < end:
            found = self.value_at(self.pos)
            if found is not None:
                self.out.append(found[0].replace("\n", " "))
                self.pos = found[1]
            else:
                self.emit(1)

    def heredoc_header(self) -> None:
        match = _HEREDOC.match(self.text, self.pos)
        if match is None or self.marker.search(match.group(0)):
            self.unreadable_heredoc = True
            self.emit(2)
            return
        strip, single, double, bare = match.groups()
        delimiter = next(d for d in (single, double, bare) if d is not None)
        quoted = single is not None or double is not None or match.group(0).count("\\") > 0
        self.heredocs.append(_Heredoc(delimiter, quoted, strip == "-"))
        self.out.append(match.group(0))
        self.pos = match.end()

    def heredoc_bodies(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for doc in pending:
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end + 1
                line = self.text[self.pos : end]
                rendered = self.heredoc_line(line, doc)
                self.out.append(rendered)
                self.pos = end
                bare = line.rstrip("\n").lstrip("\t" if doc.strip_tabs else "")
                if bare == doc.delimiter:
                    break
                shown = rendered.rstrip("\n").lstrip("\t" if doc.strip_tabs else "")
                if shown == doc.delimiter:
                    raise ShellQuotingError(
                        f"a template value would end the here-document {doc.delimiter} early"
                    )

    def heredoc_line(self, line: str, doc: _Heredoc) -> str:
        out: list[str] = []
        i = 0
        while i < len(line):
            match = self.marker.match(line, i)
            if match is not None:
                value = self.values[int(match.group(1))]
                if "\n" in value:
                    raise ShellQuotingError(
                        "a template value with a line break cannot go into a here-document; "
                        "read it from the environment instead ($SC_PARAM_...)"
                    )
                out.append(value if doc.quoted else _HEREDOC_ESCAPED.sub(r"\\\1", value))
                i = match.end()
                continue
            if not doc.quoted and line[i] in "\\$" and self.marker.match(line, i + 1):
                raise ShellQuotingError(_REFUSALS[line[i]])
            step = 2 if (line[i] == "\\" and not doc.quoted) else 1
            out.append(line[i : i + step])
            i += step
        return "".join(out)

    def quote(self, kind: str, value: str) -> str:
        if self.unreadable_heredoc:
            raise ShellQuotingError(
                "a template value after a here-document (<<) whose end cannot be told; "
                "write its delimiter as a plain word (<<EOF or <<'EOF')"
            )
        if any(frame.kind == "backtick" for frame in self.stack):
            raise ShellQuotingError(
                "a template value inside backticks cannot be quoted safely; use $( ) instead"
            )
        if "\x00" in value:
            raise ShellQuotingError("a template value holds a NUL character")
        if kind in ("word", "subst"):
            return shlex.quote(value) if value else "''"
        if kind == "single":
            return value.replace("'", "'\\''")
        if kind == "double":
            return _DOUBLE_QUOTED.sub(r"\\\1", value)
        return value.replace("\\", "\\\\").replace("'", "\\'")  # ansi


def quote_values(text: str, marker: re.Pattern[str], values: Sequence[str]) -> str:
    """Replace each ``marker`` in ``text`` (group 1: an index into ``values``) by that value
    quoted for where it is in the command; raise ShellQuotingError where it cannot be."""
    return _Quoter(text, marker, values).run()
