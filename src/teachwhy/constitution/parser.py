"""Parse a Markdown constitution (model spec) into principles with stable ids.

Any reasonable Markdown layout works. The rules, in order:

**Title.** The first heading is the document title when it comes before every other heading and is at a
higher level (fewer ``#``) than all of them, e.g. one ``# Title`` over ``##`` sections. Otherwise the title is
the front-matter ``title:``, else the file name, else ``"Constitution"``.

**Ignored.** YAML front matter (a leading ``---`` block), HTML comments, thematic breaks, and the preface:
everything before the first section heading (or, with a title heading, between it and the first section).
Fenced code blocks are never read as headings or lists; inside a principle they are part of its text.

**Principles.** Every heading other than the title is a section heading, nested by level. For each one:

- If its body holds a list whose items carry more words than the prose around it, each top-level list item is
  a principle in that section. The title is the item's bold lead-in (``**Be honest.** ...`` or
  ``**Honesty**: ...``), else its first sentence shortened to 8 words. A lead-in that is a label (ends with a
  colon or dash) is removed from the text; one that is a sentence stays. Continuation paragraphs and nested
  sub-bullets belong to the item. Prose around such a list introduces it and is not a principle.
- Else, if its body holds two or more paragraphs that open with a bold lead-in (``**Be honest.** ...``,
  ``**Honesty:** ...``, or a paragraph that is only ``**Honesty**`` with its text below), and those carry
  more words than the prose before the first of them, each such paragraph is a principle, titled by its
  lead-in; the paragraphs, lists and code after it (up to the next lead-in) belong to it.
- Else, if it has no sub-headings and a non-empty body, the heading *is* the principle: the heading is the
  title, the body (prose, lists, code) is the text, and the section is its parent heading (or the document
  title, or ``"General"``, for a top-level heading).
- Else its body introduces its sub-headings and is not a principle.

Leading numbering such as ``3.``, ``2.1``, ``IV.`` or ``Principle 3:`` is dropped from headings so that
renumbering does not change ids. A document with no section headings at all is a flat list: each list item
is a principle (or, if there is no list, each bold-led paragraph as above, else each paragraph), in the
section named by the document title or ``"General"``.

**Ids.** A principle's id is ``<section slug>/<title slug>``: lowercase words joined by ``-``, e.g.
``honesty/no-deception`` or ``safety-oversight/accept-correction`` for the nested section
``Safety > Oversight``. Ids depend only on the section and title, never on position or body text, so editing,
adding, removing or reordering other principles leaves an id unchanged. When two principles would share an
id, the second and later ones in document order get ``-2``, ``-3``, ...

**Explicit ids.** Append ``{#your-id}`` (Pandoc's syntax) to a principle's heading, or put it on the first
line of a list item or paragraph, to fix its id: it is then used verbatim (letters, digits, ``. _ / -``) and
survives renaming the title or moving the principle to another section. Explicit ids must be unique, and a
derived id never takes one: it gets a ``-2`` suffix instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from teachwhy.constitution._blocks import Block, Heading, ListItem, scan
from teachwhy.constitution.model import Constitution, Principle
from teachwhy.errors import UserError

TITLE_WORDS = 8
"""A title taken from a principle's first sentence keeps at most this many words."""

_EXPLICIT_ID = re.compile(r"[ \t]*\{#([A-Za-z0-9][\w./-]*)(?:[ \t][^}]*)?\}[ \t]*")
_ENUMERATOR = re.compile(
    r"^(?:(?i:principle|section|rule|article|part|chapter)[ \t]+)?"
    r"(?:\d+(?:\.\d+)*|[IVXLC]+|[A-Za-z])(?:[.):]|[ \t]+[-–—])[ \t]+(?=\S)"
    r"|^(?i:principle|section|rule|article|part|chapter)[ \t]+\d+[ \t]*$"
    r"|^\d+(?:\.\d+)+[ \t]+(?=\S)"
)
_LEAD_IN = re.compile(r"^(\*\*|__)(.+?)\1[ \t]*([:.!?—–-]?)[ \t]*")
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?:\s|$)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*\*|__|`|(?<!\w)[*_]|[*_](?!\w)")
_SLUG_JUNK = re.compile(r"[\W_]+")
_SLUG_CHARS = 60


def example_constitution_path() -> Path:
    """Return the path of the example constitution shipped with teachwhy (``example.md``)."""
    return Path(__file__).with_name("example.md")


def load_constitution(path: str | Path) -> Constitution:
    """Read and parse a Markdown constitution file.

    Args:
        path: the Markdown file.

    Returns:
        The parsed constitution; ``sha256`` is the hash of the file's raw bytes.

    Raises:
        UserError: the file is missing, unreadable, not UTF-8, empty, has no principles, or repeats an
            explicit id. The message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError("constitution file not found", file=path)
    if path.is_dir():
        raise UserError("expected a Markdown file, found a directory", file=path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read constitution: {error.strerror or error}", file=path) from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"constitution is not UTF-8 text (invalid byte at offset {error.start}); save it as UTF-8",
            file=path,
            key=f"line {line}",
        ) from error
    return _parse(text, path, hashlib.sha256(raw).hexdigest())


def parse_constitution(text: str, *, source: str | Path | None = None) -> Constitution:
    """Parse Markdown text into a constitution.

    Args:
        text: the Markdown document.
        source: where the text came from; used as ``Constitution.path`` and to name the file in errors.

    Returns:
        The parsed constitution; ``sha256`` is the hash of the UTF-8 encoded text.

    Raises:
        UserError: the text is empty, has no principles, or repeats an explicit id.
    """
    return _parse(
        text, Path(source) if source is not None else None, hashlib.sha256(text.encode()).hexdigest()
    )


@dataclass
class _Draft:
    """A principle before its id is settled."""

    section: str
    title: str
    text: str
    explicit_id: str | None
    line: int


@dataclass
class _Node:
    heading: Heading
    name: str
    body: list[Block]
    children: list[_Node]


def _parse(text: str, path: Path | None, sha256: str) -> Constitution:
    if not text.strip():
        raise UserError("constitution is empty", file=path, key="principles")
    document = scan(text)
    tokens = document.tokens
    headings = [t for t in tokens if isinstance(t, Heading)]
    title_heading = None
    if headings and all(h.level > headings[0].level for h in headings[1:]):
        title_heading = headings[0]
        headings = headings[1:]
    doc_title = (
        _plain(_EXPLICIT_ID.sub(" ", title_heading.text)) if title_heading else document.front_matter_title
    )
    top_section = doc_title or "General"

    drafts: list[_Draft] = []
    if headings:
        for node in _tree([t for t in tokens if t is not title_heading]):
            _collect(node, [], top_section, drafts)
    else:
        blocks = [t for t in tokens if isinstance(t, Block)]
        items = [item for b in blocks if b.kind == "list" for item in b.items]
        led = _bold_led_drafts(blocks, top_section)
        if items:
            drafts = [_item_draft(item, top_section) for item in items]
        elif led is not None:
            drafts = led
        else:
            drafts = [
                _item_draft(ListItem(b.line, b.lines), top_section) for b in blocks if b.kind == "paragraph"
            ]
    if not drafts:
        raise UserError(
            "no principles found: write each principle as a sub-heading with paragraphs under a section "
            "heading, or as a list item",
            file=path,
            key="principles",
        )
    title = doc_title or (path.stem if path is not None and path.stem else "Constitution")
    return Constitution(path=path, title=title, principles=_assign_ids(drafts, path), sha256=sha256)


def _tree(tokens: list[Heading | Block]) -> list[_Node]:
    """Nest headings by level; blocks before the first heading (the preface) are dropped."""
    roots: list[_Node] = []
    stack: list[_Node] = []
    for token in tokens:
        if isinstance(token, Block):
            if stack:
                stack[-1].body.append(token)
            continue
        node = _Node(token, _heading_name(token.text), [], [])
        while stack and stack[-1].heading.level >= token.level:
            stack.pop()
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _collect(node: _Node, parents: list[str], top_section: str, out: list[_Draft]) -> None:
    path = [*parents, node.name]
    lists = [b for b in node.body if b.kind == "list"]
    list_words = sum(_words(b.lines) for b in lists)
    prose_words = sum(_words(b.lines) for b in node.body if b.kind != "list")
    led = _bold_led_drafts(node.body, " > ".join(path))
    if lists and list_words > prose_words:
        section = " > ".join(path)
        out.extend(_item_draft(item, section) for b in lists for item in b.items)
    elif led is not None:
        out.extend(led)
    elif not node.children and node.body:
        explicit = _EXPLICIT_ID.search(node.heading.text)
        body = "\n\n".join("\n".join(b.lines) for b in node.body)
        out.append(
            _Draft(
                section=" > ".join(parents) or top_section,
                title=node.name,
                text=_dedent(body),
                explicit_id=explicit.group(1) if explicit else None,
                line=node.heading.line,
            )
        )
    for child in node.children:
        _collect(child, path, top_section, out)


def _item_draft(item: ListItem, section: str) -> _Draft:
    """Turn a list item (or a lone paragraph) into a principle: title from its lead-in or first sentence."""
    first = item.lines[0] if item.lines else ""
    explicit = _EXPLICIT_ID.search(first)
    if explicit:
        first = (first[: explicit.start()] + " " + first[explicit.end() :]).strip()
    text = _dedent("\n".join([first, *item.lines[1:]])).strip()
    lead = _LEAD_IN.match(text)
    if lead and (lead.group(3) or lead.group(2).rstrip()[-1:] in (".", ":", "!", "?")):
        inner = lead.group(2).strip()
        title = _plain(inner.rstrip(".:!?—–- "))
        is_label = inner.endswith(":") or lead.group(3) in (":", "—", "–", "-")
        rest = text[lead.end() :]
        text = rest if is_label else f"{inner}{lead.group(3)} {rest}".strip()
    else:
        title = _first_sentence_title(text)
    return _Draft(
        section=section,
        title=title,
        text=_collapse_blank_lines(text),
        explicit_id=explicit.group(1) if explicit else None,
        line=item.line,
    )


def _lead_in(block: Block) -> tuple[str, bool] | None:
    """A paragraph's bold lead-in (its text, and whether it is the whole paragraph), or ``None``."""
    if block.kind != "paragraph" or not block.lines:
        return None
    text = "\n".join(block.lines).strip()
    lead = _LEAD_IN.match(text)
    if lead is None:
        return None
    alone = not text[lead.end() :].strip()
    if alone or lead.group(3) or lead.group(2).rstrip()[-1:] in (".", ":", "!", "?"):
        return lead.group(2).strip(), alone
    return None


def _bold_led_drafts(blocks: list[Block], section: str) -> list[_Draft] | None:
    """One principle per bold-led paragraph and the blocks up to the next one; ``None`` if not that shape."""
    groups: list[list[Block]] = []
    intro_words = 0
    for block in blocks:
        if _lead_in(block) is not None:
            groups.append([block])
        elif groups:
            groups[-1].append(block)
        else:
            intro_words += _words(block.lines)
    if len(groups) < 2 or sum(_words(b.lines) for g in groups for b in g) <= intro_words:
        return None
    drafts = []
    for first, *rest in groups:
        lead = _lead_in(first)
        assert lead is not None
        inner, alone = lead
        lines = list(first.lines)
        if alone:  # a bold line standing in for a heading: make it a label of the text below
            label = inner if inner.endswith((":", ".", "!", "?")) else f"{inner}:"
            lines = [f"**{label}**"]
        for block in rest:
            lines.extend(["", *block.lines])
        drafts.append(_item_draft(ListItem(first.line, lines), section))
    return drafts


def _assign_ids(drafts: list[_Draft], path: Path | None) -> tuple[Principle, ...]:
    taken: dict[str, int] = {}
    for draft in drafts:
        if draft.explicit_id is None:
            continue
        if draft.explicit_id in taken:
            raise UserError(
                f"duplicate principle id '{draft.explicit_id}' "
                f"(first used on line {taken[draft.explicit_id]})",
                file=path,
                key=f"line {draft.line}",
            )
        taken[draft.explicit_id] = draft.line
    principles = []
    for draft in drafts:
        principle_id = draft.explicit_id
        if principle_id is None:
            base = f"{_slug(draft.section, 'general')}/{_slug(draft.title, 'principle')}"
            principle_id, n = base, 1
            while principle_id in taken:
                n += 1
                principle_id = f"{base}-{n}"
            taken[principle_id] = draft.line
        principles.append(
            Principle(id=principle_id, section=draft.section, title=draft.title, text=draft.text)
        )
    return tuple(principles)


def _heading_name(text: str) -> str:
    name = _plain(_EXPLICIT_ID.sub(" ", text))
    return _ENUMERATOR.sub("", name).strip() or name


def _plain(text: str) -> str:
    """Strip inline Markdown (links, emphasis, code ticks) and collapse whitespace."""
    return " ".join(_EMPHASIS.sub("", _LINK.sub(r"\1", text)).split())


def _first_sentence_title(text: str) -> str:
    first_paragraph = _plain(text.split("\n\n", 1)[0])
    end = _SENTENCE_END.search(first_paragraph)
    sentence = first_paragraph[: end.start()] if end else first_paragraph
    words = sentence.split()[:TITLE_WORDS]
    return " ".join(words).rstrip(",;:—–-") or "Untitled"


def _slug(text: str, fallback: str) -> str:
    slug = _SLUG_JUNK.sub("-", text.lower()).strip("-")
    if len(slug) > _SLUG_CHARS:
        slug = slug[:_SLUG_CHARS].rsplit("-", 1)[0]
    return slug or fallback


def _words(lines: list[str]) -> int:
    return sum(len(line.split()) for line in lines)


def _dedent(text: str) -> str:
    lines = text.split("\n")
    indents = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines).strip()


def _collapse_blank_lines(text: str) -> str:
    return re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text).strip()
