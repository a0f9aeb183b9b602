"""Any RSS 0.90/1.0/2.0, Atom or JSON Feed as a kind of site: `[sources.NAME] feed = "https://…"`.

RSS and Atom are read by feedparser, which takes what real feeds do (declared and undeclared
non-UTF-8 encodings, undefined entities, junk before the XML declaration, relative links resolved
against xml:base or the feed's own URL); JSON Feed, which feedparser does not read, by `json`. A feed
has no discussion of its own: an item's `<comments>` link is kept for the reader, not read. An item's
own text (its content or summary) counts as its article read when it is substantial, so a full-text
feed costs no article fetch. Items carry no short id: `source_id` is a hash of the GUID, else the link.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import feedparser
import lxml.html
from feedparser.datetimes import _parse_date as parse_date
from lxml import etree

from .. import discussions, parse
from . import Kind, item_id

MIN_TEXT = 400  # characters of an item's own text that count as its article read (a teaser is shorter)
TEXT_CHARS = 20_000  # of an item's own text kept as its article
UNTITLED_CHARS = 100  # an untitled item is titled by the start of its text


class Feed(Kind):
    name = "feed"
    accept = ("application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
              "text/xml;q=0.9, application/json;q=0.8, */*;q=0.1")
    content_types = ()  # servers label feeds every way (text/plain, octet-stream): the parser decides
    min_stories = 0  # a quiet feed may have nothing new
    conditional = True
    listing = "feed"

    def parse(self, source, body: bytes, content_type: str, url: str) -> parse.Page:
        if looks_json(body, content_type):
            items, base = json_items(source.slug, body, url)
        else:
            items, base = xml_items(source.slug, body, content_type, url), url
        page = parse.Page(stories=[])
        seen: set[str] = set()
        for position, item in enumerate(items[:source.max_items or None], start=1):
            try:
                story = to_story(source.slug, position, item, base)
                if story.source_id in seen:
                    raise parse.Unusable("the same item is in the feed twice (the first is kept)")
                problem = parse.SchemaCheck.problem(story)
                if problem:
                    raise parse.Unusable(f"schema.sql refuses it ({problem})")
            except (parse.Unusable, ValueError, TypeError, OverflowError) as exc:
                page.refused.append((f"item {position}", f"refused at parse: {exc}"))
                continue
            seen.add(story.source_id)
            page.stories.append(story)
        page.beyond_cap = max(0, len(items) - (source.max_items or len(items)))
        return page


def looks_json(body: bytes, content_type: str) -> bool:
    return "json" in content_type.lower() or body.lstrip()[:1] == b"{"


def xml_items(slug: str, body: bytes, content_type: str, url: str) -> list[dict]:
    """RSS/Atom entries as plain dicts; LayoutError when the document holds no feed at all."""
    found = feedparser.parse(body, response_headers={"content-type": content_type or "application/xml",
                                                     "content-location": url})
    if not found.entries and (found.bozo or not found.version):
        reason = parse.clean_text(str(found.get("bozo_exception") or "no RSS or Atom items"))[:160]
        raise parse.LayoutError(slug, f"not a readable feed ({reason})")
    return [entry_item(entry) for entry in found.entries]


def entry_item(entry) -> dict:
    """One feedparser entry as the fields a story needs (feedparser has resolved its relative links)."""
    title = entry.get("title") or ""
    if (entry.get("title_detail") or {}).get("type") == "text/html":
        title = markup_text(title)
    content = (entry.get("content") or [{}])[0].get("value") or entry.get("summary") or ""
    link = entry.get("link") or next((e.get("href") for e in entry.get("enclosures") or [] if e.get("href")), None)
    stamp = entry.get("published_parsed") or dict.get(entry, "updated_parsed")  # (no fallback warning)
    return {"id": entry.get("id"), "link": link, "title": title, "text": discussions.fragment_text(content),
            "author": entry.get("author"), "comments": entry.get("comments"),
            "published": datetime(*stamp[:6], tzinfo=UTC) if stamp else None,
            "tags": [t.get("term") for t in entry.get("tags") or [] if isinstance(t.get("term"), str)]}


def json_items(slug: str, body: bytes, url: str) -> tuple[list[dict], str]:
    """A JSON Feed's items as plain dicts (titles are plain text, entities decoded), and the base for
    its relative links."""
    try:
        feed = json.loads(body.decode("utf-8-sig", "replace"))
    except ValueError as exc:
        raise parse.LayoutError(slug, f"not a readable JSON Feed ({exc})") from None
    if not isinstance(feed, dict) or not isinstance(feed.get("items"), list):
        raise parse.LayoutError(slug, "not a JSON Feed: no list of items")
    items = []
    for item in feed["items"]:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        content = item.get("content_html") or ""
        items.append({
            "id": str(item.get("id") or "") or None, "link": item.get("external_url") or item.get("url"),
            "comments": item.get("url") if item.get("external_url") else None,
            "title": html.unescape(str(item.get("title") or "")),
            "text": discussions.fragment_text(content) if content else str(item.get("content_text") or
                                                                            item.get("summary") or ""),
            "author": next((a.get("name") for a in authors if isinstance(a, dict) and a.get("name")), None),
            "published": iso_time(item.get("date_published") or item.get("date_modified")),
            "tags": [t for t in item.get("tags") or [] if isinstance(t, str)]})
    return items, str(feed.get("home_page_url") or url) if isinstance(feed.get("home_page_url"), str) else url


def to_story(slug: str, position: int, item: dict, base: str) -> parse.Story:
    """A feed item as a story; Unusable when it has nothing to link to or call it."""
    url = parse.story_url(base, item["link"]) if isinstance(item.get("link"), str) and item["link"] else None
    comments = item.get("comments")
    discussion = parse.story_url(base, comments) if isinstance(comments, str) and comments else None
    if url is None and discussion is None:
        raise parse.Unusable("the item has no link")
    text = parse.clean_text(item.get("text"))
    title = parse.clean_text(item.get("title")) or untitled(text, url or discussion)
    author = parse.clean_text(item.get("author") if isinstance(item.get("author"), str) else None)
    published = item.get("published")
    return parse.Story(
        source=slug, source_id=item_id(item.get("id"), url, title), rank=position,
        title=title if len(title) <= 300 else title[:299].rstrip() + "…", url=url, discussion_url=discussion,
        domain=parse.host_of(url) if url else None, points=None, comments=None,
        author=author[:64].strip() or None, submitted_at=parse.utc_iso(published) if published else None,
        tags=list(dict.fromkeys(parse.clean_text(t)[:40] for t in item["tags"] if parse.clean_text(t)))[:10],
        text=(item.get("text") or "")[:TEXT_CHARS] if len(text) >= MIN_TEXT else None)


def untitled(text: str, link: str) -> str:
    """A title for an item that has none (RSS 2.0 allows it): the start of its text, else its link."""
    if not text:
        return link.split("://", 1)[-1][:300]
    if len(text) <= UNTITLED_CHARS:
        return text
    return text[:UNTITLED_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def markup_text(fragment: str) -> str:
    """A title the feed marks as HTML, as the text a reader sees (tags dropped, entities decoded)."""
    try:
        return lxml.html.fragment_fromstring(f"<p>{fragment}</p>").text_content()
    except (etree.ParserError, ValueError):
        return html.unescape(fragment)


def iso_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = parse_date(value)  # RFC 822 and the other forms feeds use
        return datetime(*parsed[:6], tzinfo=UTC) if parsed else None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)



# --- finding feeds, and OPML -------------------------------------------------------------------------------

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
              "application/rdf+xml")


def is_feed(body: bytes, content_type: str) -> bool:
    """Whether a fetched document is a feed newsreader reads (not a page that links to one)."""
    if looks_json(body, content_type):
        try:
            return isinstance(json.loads(body.decode("utf-8-sig", "replace")).get("items"), list)
        except (ValueError, AttributeError):
            return False
    if "html" in content_type.lower() and b"<rss" not in body[:2000] and b"<feed" not in body[:2000]:
        return False
    found = feedparser.parse(body, response_headers={"content-type": content_type or "application/xml"})
    return bool(found.version) or bool(found.entries)


def discover(body: bytes, url: str) -> list[tuple[str, str]]:
    """The feeds a page names (`<link rel="alternate" type="application/rss+xml" href=...>`), as (url, title),
    in the page's order, links resolved against the page's address."""
    try:
        doc = lxml.html.document_fromstring(body)
    except (etree.ParserError, ValueError):
        return []
    found = []
    for link in doc.xpath("//link[@href][@type]"):
        rel = (link.get("rel") or "").lower().split()
        if "alternate" in rel and link.get("type", "").split(";")[0].strip().lower() in FEED_TYPES:
            try:
                found.append((parse.story_url(url, link.get("href")), parse.clean_text(link.get("title"))))
            except parse.Unusable:
                continue
    return list(dict.fromkeys(found))


def feed_title(body: bytes, content_type: str) -> str:
    """A feed's own title (empty if it has none)."""
    if looks_json(body, content_type):
        try:
            return parse.clean_text(str(json.loads(body.decode("utf-8-sig", "replace")).get("title") or ""))
        except (ValueError, AttributeError):
            return ""
    found = feedparser.parse(body, response_headers={"content-type": content_type or "application/xml"})
    return parse.clean_text(found.feed.get("title", ""))


OPML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)


def opml_feeds(body: bytes) -> list[tuple[str, str]]:
    """(feed URL, title) of each outline with an xmlUrl in an OPML file (nested folders too), in order."""
    try:
        root = etree.fromstring(body, OPML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    if root is None:
        raise ValueError("not an OPML file (no XML outline could be read)")
    found = []
    for outline in root.iter("outline"):
        href = (outline.get("xmlUrl") or "").strip()
        if href.startswith(("http://", "https://")):
            found.append((href, parse.clean_text(outline.get("title") or outline.get("text"))))
    return found


def opml(feeds: list[tuple[str, str, str]]) -> str:
    """An OPML 2.0 document of (slug, name, feed URL), for another reader to import."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = "newsreader sources"
    body = etree.SubElement(root, "body")
    for slug, name, url in feeds:
        etree.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=url, newsreaderName=slug)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")
