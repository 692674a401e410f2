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
in ``$(( ))`` or ``(( ))``             only a whole number (bash's arithmetic runs code)
a here-document body                   unquoted delimiter: ``\\`` before ``\\ $ ```;
                                       quoted delimiter (``<<'EOF'``): as it is
a comment                              line breaks become spaces
=====================================  =====================================================

Text that only holds letters, digits and ``@%+=:,./-`` is left as it is, so
``v{{ version }}`` still reads ``v1.4.0``. What cannot be quoted safely is refused with a
``ShellQuotingError`` that says what to do instead: a value right after ``\\`` or ``$``, a
value inside backticks (use ``$( )``) or ``${ }``, a value with a line break in a
here-document or one that would end it, a value in a here-document that runs commands of
its own, a value after a here-document header this module cannot read. And, wherever it
is, a value holding ``[`` and then ``$(``, ``${`` or a backtick: bash runs the command in
an array subscript of any text it evaluates as a number (``[[ $x -eq 1 ]]``,
``declare -i``), however that text was quoted.

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
#: what runs commands inside an unquoted here-document
_SUBSTITUTION = re.compile(r"\$\(|`|\$\{")
#: bash runs the command substitutions in an array subscript of any text it evaluates as a
#: number ($(( )), (( )), [[ x -eq y ]], declare -i, let), however the text was quoted
#: or passed: ``a[$(touch x)]`` is code there. No quoting helps; such values are refused.
ARITHMETIC_CODE = re.compile(r"\[.*(\$[({]|`)", re.DOTALL)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")

_REFUSALS = {
    "\\": "a template value right after a backslash cannot be quoted; remove the backslash",
    "$": "a template value right after '$' would be read as a variable or $'...'; "
    "remove the '$' or put the value in quotes of its own",
}


@dataclass
class _Frame:
    #: word (the command line itself), subst ``$( )``, arith ``$(( ))``/``(( ))``, param
    #: ``${ }``, backtick, single, double, ansi ``$' '``
    kind: str
    depth: int = 0  # open parentheses (subst, arith) or braces (param) inside
    cases: int = 0  # open 'case ... esac' in a $( ): their pattern's ')' does not close it
    command: bool = True  # at the start of a command (where 'case', 'esac', '((' are read)


_CODE = ("word", "subst", "backtick", "arith", "param")
#: after these a new command starts
_COMMAND_BREAK = ";|&\n("


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
    word_start: bool = True

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
        while self.pos < len(self.text):
            found = self.value_at(self.pos)
            frame = self.stack[-1]
            if found is not None:
                value, self.pos = found
                self.out.append(self.quote(frame.kind, value))
                self.word_start = frame.command = False
            elif frame.kind in _CODE:
                self.code(frame, self.text[self.pos])
            else:
                self.quoted(frame, self.text[self.pos])
        return "".join(self.out)

    def emit(self, count: int) -> None:
        self.out.append(self.text[self.pos : self.pos + count])
        self.pos += count

    def push(self, kind: str, opening: int) -> None:
        self.stack.append(_Frame(kind))
        self.emit(opening)
        self.word_start = True

    def expansion(self) -> bool:
        """``$((``, ``$(``, ``${``, ``$'``, ``$"`` (not the last two in double quotes)."""
        text, pos, kind = self.text, self.pos, self.stack[-1].kind
        self.refuse_before_value(pos)
        for opening, frame in (("$((", "arith"), ("$(", "subst"), ("${", "param")):
            if text.startswith(opening, pos):
                self.push(frame, len(opening))
                return True
        if kind != "double" and text.startswith("$'", pos):
            self.push("ansi", 2)
            return True
        if kind != "double" and text.startswith('$"', pos):
            self.push("double", 2)
            return True
        return False

    def quoted(self, frame: _Frame, ch: str) -> None:
        """One character inside quotes."""
        if frame.kind in ("double", "ansi") and ch == "\\":
            self.refuse_before_value(self.pos)
            self.emit(2)
            return
        if frame.kind == "double" and ch == "$" and self.expansion():
            return
        if frame.kind == "double" and ch == "`":
            self.push("backtick", 1)
            return
        if (frame.kind == "double" and ch == '"') or (
            frame.kind in ("single", "ansi") and ch == "'"
        ):
            self.stack.pop()
        self.emit(1)

    def code(self, frame: _Frame, ch: str) -> None:
        """One character of shell code (not in quotes)."""
        text, pos = self.text, self.pos
        at_command, word_start = frame.command, self.word_start
        self.word_start = ch in _WORD_BREAK
        if ch in _COMMAND_BREAK or (ch == ")" and frame.cases > 0):
            frame.command = True
        elif not ch.isspace():
            frame.command = False
        if ch == "\\":
            self.refuse_before_value(pos)
            continued = text.startswith("\\\n", pos)
            self.emit(2)
            self.word_start = frame.command = continued
            return
        if ch == "$" and self.expansion():
            return
        if ch == "'":
            self.push("single", 1)
        elif ch == '"':
            self.push("double", 1)
        elif ch == "`":
            if frame.kind == "backtick":
                self.stack.pop()
                self.emit(1)
            else:
                self.push("backtick", 1)
        elif frame.kind == "param":
            self.nested(frame, ch, "{}", 1)
        elif frame.kind == "arith":
            self.nested(frame, ch, "()", 2)
        elif at_command and text.startswith("((", pos):
            self.push("arith", 2)
        elif frame.kind == "subst" and ch in "()":
            self.parenthesis(frame, ch)
        elif at_command and frame.kind == "subst" and re.match(r"(case|esac)\b", text[pos:]):
            frame.cases += 1 if text.startswith("case", pos) else -1
            self.emit(4)
        elif ch == "#" and word_start:
            self.comment()
        elif text.startswith("<<", pos) and not text.startswith("<<<", pos):
            self.heredoc_header()
        elif ch == "\n" and self.heredocs:
            self.emit(1)
            self.heredoc_bodies()
        else:
            self.emit(1)

    def parenthesis(self, frame: _Frame, ch: str) -> None:
        if ch == "(":
            frame.depth += 1
        elif frame.cases > 0 and frame.depth == 0:
            pass  # the ')' after a case pattern
        elif frame.depth == 0:
            self.stack.pop()
        else:
            frame.depth -= 1
        self.emit(1)

    def nested(self, frame: _Frame, ch: str, pair: str, closing: int) -> None:
        """Inside ``${ }`` (pair ``{}``) or arithmetic (``()``, ended by ``))``)."""
        if ch == pair[0]:
            frame.depth += 1
        elif ch == pair[1] and frame.depth == 0:
            self.stack.pop()
            self.emit(closing)
            return
        elif ch == pair[1]:
            frame.depth -= 1
        self.emit(1)

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
        self.word_start = True

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
        self.word_start = False

    def heredoc_bodies(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for doc in pending:
            lines = self.body_lines(doc)
            body = "".join(lines)
            if not doc.quoted and _SUBSTITUTION.search(body) and self.marker.search(body):
                raise ShellQuotingError(
                    "a template value in a here-document that also runs commands ($( ), "
                    "backticks, ${ }) cannot be quoted safely; use <<'EOF' or $SC_PARAM_..."
                )
            for line in lines:
                rendered = self.heredoc_line(line, doc)
                self.out.append(rendered)
                self.pos += len(line)
                shown = rendered.rstrip("\n").lstrip("\t" if doc.strip_tabs else "")
                bare = line.rstrip("\n").lstrip("\t" if doc.strip_tabs else "")
                if shown == doc.delimiter and bare != doc.delimiter:
                    raise ShellQuotingError(
                        f"a template value would end the here-document {doc.delimiter} early"
                    )
        self.word_start = True

    def body_lines(self, doc: _Heredoc) -> list[str]:
        """The lines of the here-document starting at ``pos``, its delimiter line included."""
        lines: list[str] = []
        at = self.pos
        while at < len(self.text):
            end = self.text.find("\n", at)
            end = len(self.text) if end < 0 else end + 1
            lines.append(self.text[at:end])
            at = end
            if lines[-1].rstrip("\n").lstrip("\t" if doc.strip_tabs else "") == doc.delimiter:
                break
        return lines

    def heredoc_line(self, line: str, doc: _Heredoc) -> str:
        out: list[str] = []
        i = 0
        while i < len(line):
            match = self.marker.match(line, i)
            if match is not None:
                value = self.values[int(match.group(1))]
                _check_value(value)
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
        kinds = {frame.kind for frame in self.stack}
        if "backtick" in kinds:
            raise ShellQuotingError(
                "a template value inside backticks cannot be quoted safely; use $( ) instead"
            )
        if "param" in kinds:
            raise ShellQuotingError(
                "a template value inside ${ } cannot be quoted safely; "
                "put it in a variable first, or use $SC_PARAM_..."
            )
        _check_value(value)
        if kind == "arith" and not _WHOLE_NUMBER.fullmatch(value):
            raise ShellQuotingError(
                "a template value in $(( )) or (( )) must be a whole number (bash runs code "
                "in the text of others); declare the parameter with type: integer"
            )
        if kind in ("word", "subst", "arith"):
            return shlex.quote(value) if value else "''"
        if kind == "single":
            return value.replace("'", "'\\''")
        if kind == "double":
            return _DOUBLE_QUOTED.sub(r"\\\1", value)
        return value.replace("\\", "\\\\").replace("'", "\\'")  # ansi


def _check_value(value: str) -> None:
    """Refuse what no quoting makes safe."""
    if "\x00" in value:
        raise ShellQuotingError("a template value holds a NUL character")
    if ARITHMETIC_CODE.search(value):
        raise ShellQuotingError(
            "a template value holding '[' and then '$(', '${' or a backtick would run as "
            "a command wherever bash reads it as a number ([[ -eq ]], (( )), declare -i)"
        )


def quote_values(text: str, marker: re.Pattern[str], values: Sequence[str]) -> str:
    """Replace each ``marker`` in ``text`` (group 1: an index into ``values``) by that value
    quoted for where it is in the command; raise ShellQuotingError where it cannot be."""
    return _Quoter(text, marker, values).run()
