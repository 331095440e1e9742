"""Markup: HTML and Markdown read as document structure, one block per paragraph, list item, quote or heading.

Paragraphs follow the document's elements, never its source line breaks: a
``<p>`` written over three lines (or broken with ``<br>``) is one paragraph, a
Markdown table or code block is not prose and is left out, and advertisement,
navigation and "related" blocks that sit inside ``<article>`` are removed before
trafilatura looks for the main text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lxml.etree
    import lxml.html

#: class or id words that mark a block as an advertisement, navigation or other page furniture.
_FURNITURE_NAMES = re.compile(
    r"(?:^|[\s_-])(?:ad|ads|adv|advert|advertisement|advertising|sponsor|sponsored|promo|promoted|"
    r"newsletter|related|recommended|cookie|cookies|consent|gdpr|share|sharing|social|paywall|"
    r"subscribe|subscription|breadcrumbs?|byline-share|outbrain|taboola)(?:$|[\s_-])",
    re.IGNORECASE,
)
#: Elements that never hold the story.
#: (Not ``form``: ASP.NET pages wrap the whole page in one.)
_DROP_TAGS = ("script", "style", "noscript", "nav", "aside", "iframe", "template", "button", "pre", "svg")
#: ARIA landmarks that are never the story.
_DROP_ROLES = ("navigation", "banner", "complementary", "contentinfo", "search")
#: Elements whose text is one block, in the fallback reader.
_BLOCK_TAGS = ("p", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "figcaption")
_MD_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)\n.*?\n(?:---|\+\+\+)\n", re.DOTALL)
#: A table's delimiter row (``| --- | :-: |``): cells of dashes with optional colons, at most 3 spaces in.
_MD_DELIMITER_ROW = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
#: A line that starts another block and so ends a table: a heading, quote, fence, list item, HTML or rule.
_MD_BLOCK_START = re.compile(r"^ {0,3}(?:[#><]|```|~~~|[-*+](?:\s|$)|\d{1,9}[.)](?:\s|$)|(?:[-*_]\s*){3,}$)")
_MD_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Document:
    """A page's text as blocks in reading order, and what its metadata says.

    Attributes:
        blocks: paragraphs, list items, quotes and headings, each one block.
        title: the page's title, ``""`` when it has none.
        date: the publication date (``YYYY-MM-DD``) when the page states one.
        site: the site's name.
        author: the byline.
        canonical_url: the URL the page names as its own (``<link rel=canonical>``, ``og:url``).
    """

    blocks: tuple[str, ...]
    title: str = ""
    date: str | None = None
    site: str | None = None
    author: str | None = None
    canonical_url: str | None = None


def _text(element: lxml.etree._Element) -> str:
    """Return an element's text with every run of white space, line breaks included, as one space."""
    return " ".join("".join(element.itertext()).split())


def _strip_furniture(html: str) -> lxml.html.HtmlElement | None:
    """Parse ``html`` and remove scripts, navigation and elements whose class or id names an ad or furniture."""
    import lxml.etree
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None
    for element in list(tree.iter()):
        if not isinstance(element.tag, str):  # comments and processing instructions
            if element.getparent() is not None:
                element.drop_tree()
            continue
        names = f"{element.get('class', '')} {element.get('id', '')}"
        if element.tag in ("html", "body", "head"):
            continue
        furniture = (
            element.tag in _DROP_TAGS
            or element.get("role") in _DROP_ROLES
            or _FURNITURE_NAMES.search(names)
            or element.get("aria-hidden") == "true"
        )
        if furniture and element.getparent() is not None:
            element.drop_tree()
    return tree


def _blocks_from_xml(xml: str) -> list[str]:
    """Return the blocks of trafilatura's XML output: heads, paragraphs, list items and quotes."""
    import lxml.etree

    root = lxml.etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    if main is None:
        return []
    for lb in main.iter("lb"):
        lb.tail = " " + (lb.tail or "")
    blocks: list[str] = []
    for element in main:
        if element.tag == "list":
            blocks.extend(_text(item) for item in element.iter("item"))
        elif element.tag in ("p", "head", "quote"):
            blocks.append(_text(element))
    return [b for b in blocks if b]


def _blocks_fallback(tree: lxml.html.HtmlElement) -> list[str]:
    """Return the outermost block elements' text in document order, for pages trafilatura finds no story in."""
    blocks: list[str] = []
    for element in tree.iter(*_BLOCK_TAGS):
        if any(ancestor.tag in _BLOCK_TAGS for ancestor in element.iterancestors()):
            continue
        text = _text(element)
        if text:
            blocks.append(text)
    return blocks


def read_html(html: str, url: str | None = None) -> Document:
    """Return the main text of an HTML page as blocks, with its title, date, site, author and canonical URL."""
    import lxml.etree
    import trafilatura

    metadata = trafilatura.extract_metadata(html, default_url=url)
    tree = _strip_furniture(html)
    blocks: list[str] = []
    canonical = None
    if tree is not None:
        canonical = _canonical_url(tree)
        xml = trafilatura.extract(
            lxml.etree.tostring(tree, encoding="unicode", method="html"),
            url=url,
            output_format="xml",
            include_comments=False,
            include_tables=False,
            include_images=False,
            favor_precision=True,
        )
        blocks = _blocks_from_xml(xml) if xml else _blocks_fallback(tree)
    title = (metadata.title if metadata else None) or ""
    return Document(
        blocks=tuple(blocks),
        title=title,
        date=metadata.date if metadata else None,
        site=(metadata.sitename if metadata else None) or None,
        author=(metadata.author if metadata else None) or None,
        canonical_url=canonical or (metadata.url if metadata else None) or None,
    )


def _canonical_url(tree: lxml.html.HtmlElement) -> str | None:
    """Return the page's ``<link rel="canonical">`` or ``og:url`` when it has one."""
    for href in tree.xpath("//link[@rel='canonical']/@href | //meta[@property='og:url']/@content"):
        if str(href).startswith(("http://", "https://")):
            return str(href).strip()
    return None


def read_markdown(markdown: str) -> Document:
    """Return Markdown's prose as blocks (headings, paragraphs, list items, quotes); tables, code and HTML are left out.

    The first level-one heading is the title.
    """
    from markdown_it import MarkdownIt

    text = _strip_tables(_MD_FRONT_MATTER.sub("", markdown.replace("\r\n", "\n")))
    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(text)
    blocks: list[str] = []
    title = ""
    skip_depth = 0
    heading: str | None = None
    for token in tokens:
        if token.type == "table_open":
            skip_depth += 1
        elif token.type == "table_close":
            skip_depth -= 1
        elif token.type == "heading_open":
            heading = token.tag
        elif token.type == "heading_close":
            heading = None
        elif token.type == "inline" and not skip_depth:
            words = _inline_text(token.children or [])
            if words and heading == "h1" and not title and not blocks:
                title = words
            elif words:
                blocks.append(words)
    return Document(blocks=tuple(blocks), title=title)


def _cells(line: str) -> int:
    """Return the number of cells in a table row (outer pipes aside; ``\\|`` is no separator)."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(_MD_CELL_SPLIT.split(inner))


def _strip_tables(text: str) -> str:
    """Blank out the lines of Markdown tables (a header row, a delimiter row, rows): they are never prose.

    One pass over the lines. markdown-it would parse a table into about five tokens per cell and throw them
    away here, which took minutes for a 3 MB table; a table this does not recognise for sure (a header whose
    cells do not match its delimiter row) is left to markdown-it, which leaves it out as before.
    """
    lines = text.split("\n")
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = line.lstrip(" ")[:3]
        if marker in ("```", "~~~") and len(line) - len(line.lstrip(" ")) < 4:
            fence = None if fence == marker else (fence or marker)
        elif (
            fence is None
            and i + 1 < len(lines)
            and "|" in lines[i + 1]
            and "|" in line
            and _MD_DELIMITER_ROW.match(lines[i + 1])
            and not _MD_BLOCK_START.match(line)
            and _cells(line) == _cells(lines[i + 1])
        ):
            end = i + 2
            while end < len(lines) and lines[end].strip() and not _MD_BLOCK_START.match(lines[end]):
                end += 1
            lines[i:end] = [""] * (end - i)
            i = end
            continue
        i += 1
    return "\n".join(lines)


def _inline_text(children: list) -> str:
    """Return the words of a Markdown inline token: text, code spans and link text; images and HTML left out."""
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())
