"""Split Markdown into the blocks the constitution parser needs: headings, paragraphs, lists and code.

This is deliberately not a full CommonMark parser. It knows exactly what decides where a principle starts
and ends: ATX (``## Title``) and setext (``Title`` over ``===``) headings, fenced code (never parsed, so a
``# comment`` inside it is not a heading), list items with their continuation paragraphs and nested
sub-bullets, thematic breaks, YAML front matter and HTML comments (both dropped). Every block remembers the
1-based line of the original file it started on, so errors can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE = re.compile(r"^( *)(`{3,}|~{3,})")
_MARKER = re.compile(r"^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)

Line = tuple[int, str]  # (1-based line number in the original file, text)


@dataclass
class Heading:
    """A heading: ``level`` 1-6, ``text`` without the ``#`` markers."""

    level: int
    text: str
    line: int


@dataclass
class ListItem:
    """One top-level list item: the text after its marker, then its continuation lines, dedented."""

    line: int
    lines: list[str]


@dataclass
class Block:
    """A paragraph, a fenced code block or a whole list, with its raw lines as written."""

    kind: Literal["paragraph", "code", "list"]
    line: int
    lines: list[str]
    items: list[ListItem] = field(default_factory=list)


Token = Heading | Block


@dataclass
class Document:
    """The scanned document: front-matter ``title`` (if any) and the tokens in order."""

    front_matter_title: str | None
    tokens: list[Token]


def scan(text: str) -> Document:
    """Scan Markdown text into headings and blocks.

    Args:
        text: the whole document.

    Returns:
        The front-matter title (if the document has YAML front matter with a ``title:`` key) and the tokens.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff").split("\n")
    front_title = None
    start = 0
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() in ("---", "...")), None)
        if end is not None:
            match = _FRONT_MATTER_TITLE.search("\n".join(lines[1:end]))
            if match:
                front_title = match.group(1).strip("'\"") or None
            start = end + 1
    entries = _drop_comments([(n + 1, lines[n].expandtabs(4)) for n in range(start, len(lines))])
    return Document(front_title, _Scanner(entries).run())


def _fence_closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.lstrip(fence[0])


def _drop_comments(entries: list[Line]) -> list[Line]:
    """Remove HTML comments outside code fences; a line that held only a comment disappears entirely."""
    out: list[Line] = []
    fence: str | None = None
    in_comment = False
    for number, line in entries:
        if fence is not None:
            out.append((number, line))
            if _fence_closes(line, fence):
                fence = None
            continue
        if not in_comment and "<!--" not in line:
            match = _FENCE.match(line)
            if match:
                fence = match.group(2)
            out.append((number, line))
            continue
        kept: list[str] = []
        rest = line
        while rest:
            if in_comment:
                end = rest.find("-->")
                if end < 0:
                    rest = ""
                else:
                    rest, in_comment = rest[end + 3 :], False
            else:
                begin = rest.find("<!--")
                if begin < 0:
                    kept.append(rest)
                    rest = ""
                else:
                    kept.append(rest[:begin])
                    rest, in_comment = rest[begin + 4 :], True
        cleaned = re.sub(r"(?<=\S)[ \t]{2,}(?=\S)", " ", "".join(kept))  # "a <!-- x --> b" -> "a b"
        if cleaned.strip() or not line.strip():
            out.append((number, cleaned.rstrip()))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Scanner:
    def __init__(self, entries: list[Line]) -> None:
        self.entries = entries
        self.pos = 0
        self.tokens: list[Token] = []
        self.paragraph: list[Line] = []

    def run(self) -> list[Token]:
        while self.pos < len(self.entries):
            number, line = self.entries[self.pos]
            if not line.strip():
                self._flush_paragraph()
                self.pos += 1
                continue
            fence = _FENCE.match(line)
            heading = _HEADING.match(line)
            marker = _MARKER.match(line)
            if fence and len(fence.group(1)) <= 3:
                self._flush_paragraph()
                self._read_fence(fence.group(2))
            elif self.paragraph and _SETEXT.match(line):
                level = 1 if line.strip().startswith("=") else 2
                text = " ".join(text.strip() for _, text in self.paragraph)
                self.tokens.append(Heading(level, text, self.paragraph[0][0]))
                self.paragraph = []
                self.pos += 1
            elif heading:
                self._flush_paragraph()
                text = _CLOSING_HASHES.sub("", heading.group(2) or "").strip()
                self.tokens.append(Heading(len(heading.group(1)), text, number))
                self.pos += 1
            elif _BREAK.match(line):
                self._flush_paragraph()
                self.pos += 1
            elif marker and len(marker.group(1)) <= 3:
                self._flush_paragraph()
                self._read_list()
            else:
                self.paragraph.append((number, line))
                self.pos += 1
        self._flush_paragraph()
        return self.tokens

    def _flush_paragraph(self) -> None:
        if self.paragraph:
            raw = [line for _, line in self.paragraph]
            self.tokens.append(Block("paragraph", self.paragraph[0][0], raw))
            self.paragraph = []

    def _read_fence(self, fence: str) -> None:
        first = self.entries[self.pos][0]
        raw = [self.entries[self.pos][1]]
        self.pos += 1
        while self.pos < len(self.entries):
            line = self.entries[self.pos][1]
            raw.append(line)
            self.pos += 1
            if _fence_closes(line, fence):
                break
        self.tokens.append(Block("code", first, raw))

    def _read_list(self) -> None:
        """Read one list, from its first marker to the first line that belongs to no item."""
        base = _indent(self.entries[self.pos][1])
        block = Block("list", self.entries[self.pos][0], [])
        item: ListItem | None = None
        content_indent = 0
        fence: str | None = None
        after_blank = False
        while self.pos < len(self.entries):
            number, line = self.entries[self.pos]
            indent = _indent(line)
            if fence is not None:
                if _fence_closes(line, fence):
                    fence = None
            elif not line.strip():
                after_blank = True
            else:
                marker = _MARKER.match(line)
                nested = indent >= base + 2
                if not nested and (_BREAK.match(line) or _HEADING.match(line) or _FENCE.match(line)):
                    break
                if marker and not nested:
                    item = ListItem(number, [line[marker.end() :].rstrip()])
                    block.items.append(item)
                    content_indent = marker.end() if line[marker.end() :].strip() else indent + 2
                    block.lines.append(line)
                    after_blank = False
                    self.pos += 1
                    continue
                if not nested and after_blank:
                    break
                match = _FENCE.match(line)
                if match and nested:
                    fence = match.group(2)
                after_blank = False
            block.lines.append(line)
            if item is not None:
                item.lines.append(line[min(indent, content_indent) :].rstrip())
            self.pos += 1
        for holder in (block.lines, *(i.lines for i in block.items)):
            while holder and not holder[-1].strip():
                holder.pop()
        self.tokens.append(block)
