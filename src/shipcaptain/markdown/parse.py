"""A Markdown runbook as an outline: headings, list items, code blocks and tables, each
with the line it starts on. Built from markdown-it's token stream (CommonMark + tables);
nothing here knows about steps or actions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

BlockKind = Literal["list", "item", "fence", "paragraph", "table", "comment"]

_ANNOTATION = re.compile(r"<!--\s*shipcaptain:(.*?)-->", re.S)
_CHECKBOX = re.compile(r"^\[( |x|X)\]\s+")


@dataclass
class Block:
    """One thing in a section: a list (its items are its children), a list item (with its
    nested blocks), a fenced code block, a paragraph, a table or a
    ``<!-- shipcaptain: ... -->`` annotation."""

    kind: BlockKind
    line: int
    text: str = ""  # plain text; code spans keep their backticks
    lead: str = ""  # bold text the paragraph starts with ("**Release Captain:** ...")
    codes: list[str] = field(default_factory=list)  # inline code spans, in order
    checked: bool | None = None  # "- [ ]" / "- [x]" items
    info: str = ""  # fence language
    content: str = ""  # fence body
    children: list[Block] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # table
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # table: (line, cells)
    annotation: dict[str, str] | None = None
    end: int = 0  # last line of the block (0: the block is one line)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, target)

    @property
    def last(self) -> int:
        return max(self.end, self.line)


@dataclass
class Section:
    level: int
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)
    end: int = 0  # last line of the heading (a setext heading is two)


@dataclass
class Outline:
    title: str
    title_line: int
    intro: list[Block]
    sections: list[Section]
    #: (first line, last line, why): what the Markdown holds that is no runbook content
    #: (HTML, rules, anything markdown-it parses that no reader uses)
    skipped: list[tuple[int, int, str]] = field(default_factory=list)


def parse_annotation(text: str) -> dict[str, str] | None:
    """``<!-- shipcaptain: id=x needs=a,b -->`` as {'id': 'x', 'needs': 'a,b'}. Words that
    are not ``key=value`` are kept under the key ``?`` so the importer can report them."""
    match = _ANNOTATION.search(text)
    if match is None:
        return None
    found: dict[str, str] = {}
    body = match.group(1)
    for part in re.finditer(r'(\w+)=("[^"]*"|\S*)', body):
        found[part.group(1)] = part.group(2).strip('"')
    rest = re.sub(r'(\w+)=("[^"]*"|\S*)', "", body).strip()
    if rest:
        found["?"] = rest
    return found


def parse_markdown(text: str) -> Outline:
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    title, title_line = "", 1
    intro: list[Block] = []
    sections: list[Section] = []
    skipped: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            level = int(tok.tag[1:])
            heading = _inline(tokens[i + 1])
            line = _line(tok)
            if level == 1 and not title:
                title, title_line = heading.text, line
            else:
                sections.append(Section(level, heading.text, line, end=_end(tok)))
            i += 3
            continue
        block, i = _block(tokens, i, skipped)
        if block is not None:
            (sections[-1].blocks if sections else intro).append(block)
    return Outline(title, title_line, intro, sections, skipped)


def _line(tok: Token) -> int:
    return tok.map[0] + 1 if tok.map else 1


def _end(tok: Token) -> int:
    return tok.map[1] if tok.map else 0


_SKIPPED = {
    "html_block": "HTML, not runbook content",
    "hr": "a horizontal rule",
}


def _close_index(tokens: list[Token], i: int) -> int:
    """Index of the token closing the one opened at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _block(
    tokens: list[Token], i: int, skipped: list[tuple[int, int, str]]
) -> tuple[Block | None, int]:
    """The block starting at ``tokens[i]`` and the index after it; what is no block is
    noted in ``skipped``."""
    tok = tokens[i]
    if tok.type in ("fence", "code_block"):
        info = tok.info.strip().split()[0].lower() if tok.info.strip() else ""
        return Block("fence", _line(tok), info=info, content=tok.content, end=_end(tok)), i + 1
    if tok.type == "html_block":
        note = parse_annotation(tok.content)
        if note is None:
            skipped.append((_line(tok), _end(tok), _SKIPPED["html_block"]))
            return None, i + 1
        return Block("comment", _line(tok), annotation=note, end=_end(tok)), i + 1
    if tok.type == "paragraph_open":
        para = _inline(tokens[i + 1])
        para.line, para.end = _line(tok), _end(tok)
        return para, i + 3
    if tok.type in ("bullet_list_open", "ordered_list_open"):
        end = _close_index(tokens, i)
        items = Block("list", _line(tok), end=_end(tok))
        j = i + 1
        while j < end:
            item, j = _item(tokens, j, skipped)
            items.children.append(item)
        return items, end + 1
    if tok.type == "table_open":
        end = _close_index(tokens, i)
        table = Block("table", _line(tok), end=_end(tok))
        row: list[str] = []
        row_line = 0
        for j in range(i + 1, end):
            t = tokens[j]
            if t.type == "tr_open":
                row, row_line = [], _line(t)
            elif t.type == "inline":
                row.append(_inline(t).text)
            elif t.type == "tr_close":
                if not table.header:
                    table.header = [c.strip().lower() for c in row]
                else:
                    table.rows.append((row_line, row))
        return table, end + 1
    if tok.map and tok.nesting >= 0:
        skipped.append((_line(tok), _end(tok), _SKIPPED.get(tok.type, tok.type)))
    if tok.nesting == 1:
        return None, _close_index(tokens, i) + 1
    return None, i + 1


def _item(tokens: list[Token], i: int, skipped: list[tuple[int, int, str]]) -> tuple[Block, int]:
    """A list item at ``tokens[i]`` (list_item_open) with its nested blocks."""
    end = _close_index(tokens, i)
    item = Block("item", _line(tokens[i]), end=_end(tokens[i]))
    j = i + 1
    first = True
    while j < end:
        block, j = _block(tokens, j, skipped)
        if block is None:
            continue
        if first and block.kind == "paragraph":
            item.text, item.lead, item.codes = block.text, block.lead, block.codes
            item.annotation, item.links = block.annotation, block.links
            first = False
            continue
        first = False
        if block.kind == "list":
            item.children.extend(block.children)
        else:
            item.children.append(block)
    box = _CHECKBOX.match(item.text)
    if box:
        item.checked = box.group(1) != " "
        item.text = item.text[box.end() :]
    return item, end + 1


def _inline(tok: Token) -> Block:
    parts: list[str] = []
    codes: list[str] = []
    lead = ""
    in_strong = False
    strong: list[str] = []
    note: dict[str, str] | None = None
    links: list[tuple[str, str]] = []
    href: str | None = None
    start = 0
    for child in tok.children or []:
        if child.type == "link_open":
            href, start = str(child.attrs.get("href", "")), len(parts)
        elif child.type == "link_close" and href is not None:
            links.append(("".join(parts[start:]).strip(), href))
            href = None
        elif child.type == "text":
            parts.append(child.content)
            if in_strong:
                strong.append(child.content)
        elif child.type == "code_inline":
            codes.append(child.content)
            parts.append(f"`{child.content}`")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "strong_open":
            in_strong = not parts or not "".join(parts).strip()
        elif child.type == "strong_close":
            if in_strong:
                lead = "".join(strong)
            in_strong = False
        elif child.type == "html_inline":
            found = parse_annotation(child.content)
            if found is not None:
                note = found
            elif not child.content.startswith("<!--"):
                parts.append(child.content)
    text = re.sub(r"\s+", " ", "".join(parts)).strip()
    return Block(
        "paragraph",
        _line(tok),
        text=text,
        lead=lead.strip(),
        codes=codes,
        annotation=note,
        links=links,
    )
