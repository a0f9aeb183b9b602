"""Discussions: the top comments of a story on Hacker News and Lobsters, parsed like the front pages.

Comment threads are written by strangers too: every comment becomes plain text (paragraphs on
their own lines, no markup, no control characters), capped in length and number, in the
site's own order with its author and depth. Parsers cover every markup generation in
tests/fixtures/discussions: HN item pages from 2015 (`span.comment`, depth from the spacer
image), 2020 (`span.commtext`, `td.ind`) and 2026 (`div.commtext`, `td.ind[indent]`); Lobsters
story JSON (2021, 2022 and 2025 schemas) and story pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import lxml.html

from .parse import INVISIBLE

MAX_COMMENTS = 20  # first comments in the site's order
MAX_COMMENT_CHARS = 1000
MAX_SELF_TEXT_CHARS = 20_000
SKIPPED = {"[flagged]", "[dead]", "[deleted]", "[removed]", ""}


@dataclass
class Comment:
    author: str | None
    depth: int
    text: str


@dataclass
class Discussion:
    comments: list[Comment]
    self_text: str | None = None  # the post's own text (Ask HN, Lobsters text posts)


def plain(text: str, limit: int) -> str:
    """One comment as plain text: lines stripped, spaces collapsed, invisible characters removed, capped."""
    text = INVISIBLE.sub("", text.replace("\r", "\n"))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(line for line in lines if line)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def document(html: bytes | str):
    """A page as lxml reads it; both sites serve UTF-8 (bytes are decoded as such, bad bytes replaced)."""
    return lxml.html.fromstring(html.decode("utf-8", "replace") if isinstance(html, bytes) else html)


def html_text(node) -> str:
    """An element's text with a line break at each paragraph, list item and line break; no scripts."""
    for element in node.xpath(".//script | .//style"):
        element.drop_tree()
    for element in node.iter("p", "li", "br", "pre", "blockquote"):
        element.tail = (element.tail or "")
        element.text = "\n" + (element.text or "")
        if element.tag == "br":
            element.tail = "\n" + element.tail
    return node.text_content()


def fragment_text(html: str) -> str:
    if not html or not html.strip():
        return ""
    return html_text(lxml.html.fragment_fromstring(html, create_parent="div"))


# --- Hacker News ------------------------------------------------------------------------------

def has_class(name: str) -> str:
    return f'contains(concat(" ", normalize-space(@class), " "), " {name} ")'


def hn(html: bytes | str, limit: int = MAX_COMMENTS) -> Discussion:
    """An HN item page: its top-text and first comments."""
    doc = document(html)
    nodes = doc.xpath(f"//*[{has_class('commtext')}]") or doc.xpath(f"//span[{has_class('comment')}]")
    comments = []
    for node in nodes:
        row = next(iter(node.xpath("ancestor::tr[.//td[contains(@class, 'ind')] or .//img[@src='s.gif']][1]")),
                   None)
        depth = 0
        if row is not None:
            ind = row.xpath(".//td[contains(@class, 'ind')]")
            if ind and (ind[0].get("indent") or "").isdigit():
                depth = int(ind[0].get("indent"))
            else:
                spacer = row.xpath(".//img[@src='s.gif']/@width")
                depth = int(spacer[0]) // 40 if spacer and spacer[0].isdigit() else 0
        author = (row.xpath(f".//a[{has_class('hnuser')}] | .//a[starts-with(@href, 'user?id=')]")
                  if row is not None else [])
        text = plain(html_text(node), MAX_COMMENT_CHARS)
        if text in SKIPPED:
            continue
        name = (author[0].text_content().strip() or None) if author else None
        comments.append(Comment(name[:64] if name else None, min(depth, 100), text))
        if len(comments) >= limit:
            break
    top = doc.xpath(f"//div[{has_class('toptext')}]")
    self_text = plain(html_text(top[0]), MAX_SELF_TEXT_CHARS) if top else None
    return Discussion(comments, self_text or None)


# --- Lobsters ---------------------------------------------------------------------------------

def lobsters_json(data: bytes | str, limit: int = MAX_COMMENTS) -> Discussion:
    """A Lobsters story's `.json`, in any of its schemas (depth or indent_level; user as name or object)."""
    story = json.loads(data)
    if not isinstance(story, dict):
        raise ValueError("not a Lobsters story object")
    comments = []
    for c in story.get("comments") or []:
        if not isinstance(c, dict) or str(c.get("is_deleted")).lower() == "true" \
                or str(c.get("is_moderated")).lower() == "true":
            continue
        depth = int(c.get("depth") or 0) if "depth" in c else max(0, int(c.get("indent_level") or 1) - 1)
        user = c.get("commenting_user")
        author = user.get("username") if isinstance(user, dict) else user
        text = plain(c.get("comment_plain") or fragment_text(c.get("comment") or ""), MAX_COMMENT_CHARS)
        if text in SKIPPED:
            continue
        comments.append(Comment(str(author)[:64] if author else None, min(depth, 100), text))
        if len(comments) >= limit:
            break
    own = story.get("description_plain") or fragment_text(story.get("description") or "")
    return Discussion(comments, plain(own, MAX_SELF_TEXT_CHARS) or None)


def lobsters_html(html: bytes | str, limit: int = MAX_COMMENTS) -> Discussion:
    """A Lobsters story page: comments are `div.comment` in nested `ol.comments`."""
    doc = document(html)
    comments = []
    for node in doc.xpath(f"//div[{has_class('comment')}][.//div[{has_class('comment_text')}]]"):
        depth = max(0, len(node.xpath(f"ancestor::ol[{has_class('comments')}]")) - 2)
        author = node.xpath(f".//div[{has_class('byline')}]//a[starts-with(@href, '/~')][normalize-space()]")
        text = plain(html_text(node.xpath(f".//div[{has_class('comment_text')}]")[0]), MAX_COMMENT_CHARS)
        if text in SKIPPED:
            continue
        name = author[0].text_content().strip() if author else None
        comments.append(Comment(name[:64] if name else None, min(depth, 100), text))
        if len(comments) >= limit:
            break
    own = doc.xpath(f"//div[{has_class('story_content')}]")
    return Discussion(comments, (plain(html_text(own[0]), MAX_SELF_TEXT_CHARS) or None) if own else None)
