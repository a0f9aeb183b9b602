"""Deterministic parsers: a saved front page (HTML) -> a list of `Story` records.

Scraping is code, not judgment: the agent never sees HTML or guesses selectors.
Each parser handles the markup generations seen on real pages (HN's
`span.titleline`, `a.titlelink` and older `a.storylink`; Lobsters 2023 and 2026),
and fails loudly with `LayoutError` when a page no longer looks like a front page,
instead of returning an empty or half-empty list.

Decisions:
- Self posts (Ask HN, Launch HN, Lobsters text posts) have ``url = None`` and
  ``domain = None``: their only page is the discussion, in ``discussion_url``.
- Job posts have no points, comments or author: those are ``None``.
- Titles are kept as the page shows them (including "[pdf]"/"[video]" suffixes,
  which are part of the title on HN), with entities decoded and whitespace collapsed.
- ``submitted_at`` is UTC ISO-8601 (``YYYY-MM-DDTHH:MM:SSZ``) when the page carries
  an absolute time, else ``None`` (old HN pages only say "2 hours ago").
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from . import schema
from .sources import SourceError

HN_BASE = "https://news.ycombinator.com/"  # relative links on its pages resolve against these
LOBSTERS_BASE = "https://lobste.rs/"

# A front page lists 30 (HN) or 25 (Lobsters) stories; far fewer means the
# page is not what the parser thinks it is (sites.hn and sites.lobsters say so).
MIN_STORIES = 10
# Share of rows allowed to miss a required field before the layout is declared changed.
MAX_MISSING_SHARE = 0.2


class LayoutError(SourceError):
    """The page no longer looks like the front page the parser knows."""


@dataclass
class Story:
    source: str
    source_id: str
    rank: int
    title: str
    url: str | None
    discussion_url: str | None  # None: a feed item with no discussion
    domain: str | None
    points: int | None
    comments: int | None
    author: str | None
    submitted_at: str | None
    kind: str = "story"
    tags: list[str] = field(default_factory=list)
    text: str | None = None  # the listing's own text of the story (a feed item's content), read as its article

    def to_dict(self) -> dict:
        found = asdict(self)
        if found["text"] is None:  # only a listing that carries its stories' text (a feed) has it
            del found["text"]
        return found

    def columns(self) -> dict:
        """This story as `stories` columns: what both a sandbox and the history store of it."""
        return {
            "source": self.source, "source_id": self.source_id, "kind": self.kind, "title": self.title,
            "url": self.url, "discussion_url": self.discussion_url, "domain": self.domain, "author": self.author,
            "submitted_at": self.submitted_at, "native_tags": json.dumps(self.tags) if self.tags else None,
            "canonical_url": canonical_url(self.url),
        }


class Unusable(ValueError):
    """One story's field cannot be used: that story is refused with this reason, the page goes on."""


# Characters that change how text displays without being visible: C0/C1 controls, zero-width
# characters, bidi embeddings/overrides/isolates and marks. Stripped from titles and authors at
# the door; schema.sql refuses them in every text column the agent writes.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
MAX_COUNT = 10**9  # ranks, points and comment counts above this are not a real page


def clean_text(text: str | None) -> str:
    """Invisible and control characters removed, whitespace (NBSP too) collapsed to one space, trimmed."""
    return " ".join(INVISIBLE.sub("", text or "").split())


def first_int(text: str | None, what: str = "number") -> int | None:
    """The first run of ASCII digits as an int (None if there is none); an absurd one is unusable."""
    match = re.search(r"[0-9]+", (text or "").replace(",", ""))
    if not match:
        return None
    digits = match.group().lstrip("0") or "0"
    if len(digits) > 10 or int(digits) > MAX_COUNT:
        raise Unusable(f"{what} {digits[:12]}{'…' if len(digits) > 12 else ''} is out of range")
    return int(digits)


def utc_iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_unix(text: str | None) -> str | None:
    """A Unix time (ASCII digits only) as UTC ISO-8601; None when it is not one or out of range."""
    if not text or not re.fullmatch(r"[0-9]{1,12}", text.strip()):
        return None
    try:
        return utc_iso(datetime.fromtimestamp(int(text), UTC))
    except (OverflowError, OSError, ValueError):
        return None


def from_text_time(text: str | None, fmt: str | None = None) -> str | None:
    """An ISO time ("2024-08-29T15:53:08") or one in `fmt`, as UTC ISO-8601; None when unreadable."""
    try:
        dt = datetime.strptime(text.strip(), fmt) if fmt else datetime.fromisoformat(text.strip())
        return utc_iso(dt)
    except (AttributeError, OverflowError, ValueError):
        return None


def story_url(base: str, href: str) -> str:
    """An absolute http(s) link without user info, or Unusable: a stranger wrote this href."""
    href = href.strip()
    if href.startswith("//"):
        raise Unusable("protocol-relative link")
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise Unusable(f"unreadable link ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Unusable(f"not an http(s) link: {url[:80]!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Unusable("link carries user info (user:password@host)")
    if INVISIBLE.search(url) or any(ch.isspace() for ch in url):
        raise Unusable("link contains whitespace or control characters")
    return url


HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8")


def document(html: str | bytes):
    """The page as an lxml tree, parsed once; every lookup below is a compiled XPath on it.

    lxml's own HTML parser (libxml2) is tolerant the way browsers are: minified
    Lobsters pages that omit </li> still give one <li> per story. The first version
    built a BeautifulSoup tree on top of it: 60-107 ms a page against 6-9 ms now,
    for identical records (see BENCHMARKS.md).
    """
    data = html.encode("utf-8", "replace") if isinstance(html, str) else html  # lone surrogates: "?"
    try:
        return lxml.html.document_fromstring(data, parser=HTML_PARSER)
    except (etree.ParserError, ValueError):
        return None  # empty or not HTML at all: no rows, reported as a layout error


def xpath(expression: str) -> etree.XPath:
    """Compile an XPath where `.cls(name)` means "has the class name" (class lists may span lines)."""
    # A cheap substring test first prunes most elements before the exact token test.
    has_class = r"(contains(@class, '\1') and contains(concat(' ', normalize-space(@class), ' '), ' \1 '))"
    return etree.XPath(re.sub(r"\.cls\((\w[\w-]*)\)", has_class, expression))


def first(found: list):
    return found[0] if found else None


def check_layout(source: str, rows: int, stories: list, missing: dict[str, int]) -> None:
    """Raise LayoutError unless the page yielded a plausible front page (refused stories count as found)."""
    if rows == 0:
        raise LayoutError(source, "no story rows found: the page layout has changed or this is not a front page")
    for what, count in missing.items():
        if count > rows * MAX_MISSING_SHARE:
            raise LayoutError(source, f"{count} of {rows} story rows have no {what}: the page layout has changed")
    if len(stories) < MIN_STORIES:
        raise LayoutError(
            source, f"only {len(stories)} stories parsed (a front page has 25-30): the page layout has changed"
        )


# --- Hacker News -----------------------------------------------------------------

HN_ROWS = xpath("//tr[.cls(athing)][not(.cls(comtr))]")
HN_TITLE = xpath("(.//span[.cls(titleline)]/a | .//a[.cls(titlelink)] | .//a[.cls(storylink)])[1]")
HN_RANK = xpath(".//span[.cls(rank)]")
HN_SUBTEXT = xpath(".//td[.cls(subtext)]")
HN_SCORE = xpath(".//span[.cls(score)]")
HN_USER = xpath(".//a[.cls(hnuser)]")
HN_ITEM_LINKS = xpath(".//a[starts-with(@href, 'item?id=')]")
HN_AGE = xpath(".//span[.cls(age)][@title]")
HN_SITE = xpath(".//span[.cls(sitestr)]")


class Missing(Exception):
    """A row without a required element: counted, and too many of them mean the layout changed."""


@dataclass
class Page:
    """What a listing page gave: its stories, and the rows refused with a reason (never silently)."""

    stories: list[Story]
    refused: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    beyond_cap: int = 0  # items after the source's max_items, not read (as configured: nothing refused)


def parse_rows(source: str, rows, parse_row) -> Page:
    """Each row through `parse_row`; an unusable field costs that story, never the page."""
    page = Page(stories=[])
    missing: dict[str, int] = {}
    seen: set[str] = set()
    for position, row in enumerate(rows, start=1):
        try:
            story = parse_row(row, position)
            if story.source_id in seen:
                raise Unusable("the same story is listed twice on the page (the first is kept)")
            problem = SchemaCheck.problem(story)
            if problem:
                raise Unusable(f"schema.sql refuses it ({problem})")
            seen.add(story.source_id)
            page.stories.append(story)
        except Missing as exc:
            missing[str(exc)] = missing.get(str(exc), 0) + 1
        except (Unusable, ValueError, OverflowError) as exc:  # ValueError: anything lxml/urllib refuse
            ident = clean_text(row.get("id") or row.get("data-shortid") or "")[:40] or f"row {position}"
            page.refused.append((f"story {ident}", f"refused at parse: {exc}"))
    check_layout(source, len(rows), page.stories + [None] * len(page.refused), missing)
    return page


def title_kind(title: str) -> str:
    """What an HN title says the post is: "show" (Show HN, Launch HN), "ask" (Ask HN) or a "story"."""
    if re.match(r"(show|launch) hn\b", title, re.IGNORECASE):
        return "show"
    return "ask" if re.match(r"ask hn\b", title, re.IGNORECASE) else "story"


def parse_hn(html: str | bytes, base: str = HN_BASE) -> Page:
    """Parse a Hacker News listing page (front page, /best, /news?p=2 ...)."""
    doc = document(html)
    return parse_rows("hn", HN_ROWS(doc) if doc is not None else [], lambda row, _: hn_story(row, base))


def hn_story(row, base: str) -> Story:
    link = first(HN_TITLE(row))
    item_id = row.get("id", "")
    if link is None or not link.get("href") or not re.fullmatch(r"[0-9]+", item_id):
        raise Missing("title link")
    if len(item_id) > 12:
        raise Unusable(f"story id {item_id[:12]}… is out of range")
    rank = first_int(text_of(first(HN_RANK(row))), "rank")
    if rank is None:
        raise Missing("rank")
    discussion_url = urljoin(base, f"item?id={item_id}")
    href = story_url(base, link.get("href"))
    self_post = href == discussion_url
    title = clean_text(link.text_content())

    subtext = hn_subtext(row)
    score = first(HN_SCORE(subtext)) if subtext is not None else None
    user = first(HN_USER(subtext)) if subtext is not None else None
    points = first_int(score.text_content(), "points") if score is not None else None
    author = clean_text(user.text_content()) if user is not None else None
    comments = None
    if subtext is not None:
        for a in HN_ITEM_LINKS(subtext):
            count = comment_count(a.text_content())
            if count is not None:
                comments = count
    submitted_at = None
    age = first(HN_AGE(subtext)) if subtext is not None else None
    if age is not None:
        # "2024-08-29T15:53:08" (UTC), or since 2025 "2026-05-09T12:00:00 1778328000"; anything else: unknown.
        stamp = age.get("title").split()
        submitted_at = (from_unix(stamp[1]) if len(stamp) > 1 else None) or (
            from_text_time(stamp[0]) if stamp else None)

    if points is None and author is None:
        kind = "job"
    else:
        kind = title_kind(title)
        kind = "ask" if kind == "story" and self_post else kind
    if kind == "job":
        comments = None
    domain_el = first(HN_SITE(row))
    return Story(
        source="hn",
        source_id=item_id,
        rank=rank,
        title=title,
        url=None if self_post else href,
        discussion_url=discussion_url,
        domain=None if self_post else (clean_text(domain_el.text_content()) if domain_el is not None
                                       else host_of(href)),
        points=points,
        comments=comments,
        author=author,
        submitted_at=submitted_at,
        kind=kind,
    )


def hn_subtext(row):
    """The `td.subtext` of the row after the story row (score, user, age, comments)."""
    nxt = row.getnext()
    while nxt is not None and nxt.tag != "tr":
        nxt = nxt.getnext()
    return first(HN_SUBTEXT(nxt)) if nxt is not None else None


# --- Lobsters --------------------------------------------------------------------


LOBSTERS_ROWS = xpath("//li[.cls(story)]")
LOBSTERS_LINK = xpath(".//a[.cls(u-url)]")
LOBSTERS_COMMENTS = xpath(".//span[.cls(comments_label)]//a")
LOBSTERS_SCORE = xpath(".//div[.cls(voters)]//*[.cls(score) or .cls(upvoter)]")
LOBSTERS_TAGS = xpath(".//a[.cls(tag)]")
LOBSTERS_DOMAIN = xpath(".//a[.cls(domain)]")
LOBSTERS_AUTHOR = xpath(".//a[.cls(u-author)]")
LOBSTERS_UNIX_TIME = xpath(".//div[.cls(byline)]//time[@data-at-unix]")
LOBSTERS_TITLED = xpath(".//div[.cls(byline)]//*[@title]")


def parse_lobsters(html: str | bytes, base: str = LOBSTERS_BASE) -> Page:
    """Parse a Lobsters listing page (front page, /hottest, /newest ...)."""
    doc = document(html)
    return parse_rows("lobsters", LOBSTERS_ROWS(doc) if doc is not None else [],
                      lambda row, position: lobsters_story(row, position, base))


def lobsters_story(row, position: int, base: str) -> Story:
    link = first(LOBSTERS_LINK(row))
    short_id = clean_text(row.get("data-shortid") or (row.get("id") or "").removeprefix("story_"))
    if link is None or not link.get("href"):
        raise Missing("title link")
    if not short_id:
        raise Missing("short id")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", short_id):
        raise Unusable(f"story id {short_id[:40]!r} is not a Lobsters short id")
    href = story_url(base, link.get("href"))
    self_post = urlsplit(href).netloc == urlsplit(base).netloc and urlsplit(href).path.startswith("/s/")
    comments_link = first(LOBSTERS_COMMENTS(row))
    discussion_url = (story_url(base, comments_link.get("href") or f"s/{short_id}") if comments_link is not None
                      else urljoin(base, f"s/{short_id}"))
    comments = comment_count(comments_link.text_content()) if comments_link is not None else 0
    scores = LOBSTERS_SCORE(row)  # document order: the 2023 div.score, or the 2026 upvoter link
    tags = [clean_text(a.text_content()) for a in LOBSTERS_TAGS(row)]
    domain_el = first(LOBSTERS_DOMAIN(row))
    author_el = first(LOBSTERS_AUTHOR(row))
    kind = "ask" if "ask" in tags else "show" if "show" in tags else "story"
    return Story(
        source="lobsters",
        source_id=short_id,
        rank=position,
        title=clean_text(link.text_content()),
        url=None if self_post else href,
        discussion_url=discussion_url,
        domain=None if self_post else (clean_text(domain_el.text_content()) if domain_el is not None
                                       else host_of(href)),
        points=next((n for n in (first_int(el.text_content(), "points") for el in scores) if n is not None), None),
        comments=comments,
        author=clean_text(author_el.text_content()) if author_el is not None else None,
        submitted_at=lobsters_time(row),
        kind=kind,
        tags=tags,
    )


def lobsters_time(row) -> str | None:
    """2026: <time data-at-unix=...>; 2023: <span title="2023-03-09 01:44:29 -0600">; else unknown."""
    el = first(LOBSTERS_UNIX_TIME(row))
    if el is not None and from_unix(el.get("data-at-unix")):
        return from_unix(el.get("data-at-unix"))
    for el in LOBSTERS_TITLED(row):
        found = from_text_time(el.get("title"), "%Y-%m-%d %H:%M:%S %z")
        if found:
            return found
    return None


# --- shared ----------------------------------------------------------------------


def canonical_url(url: str | None) -> str | None:
    """The key under which the same article on two sites matches.

    Lower-case host without "www.", no scheme, fragment, trailing slash or
    tracking parameters (utm_*, ref, fbclid...). Self posts have none.
    """
    if not url:
        return None
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    if not host:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not (k.startswith("utm_") or k in {"ref", "fbclid", "gclid", "source"})]
    path = parts.path.rstrip("/")
    return host + path + (f"?{urlencode(query)}" if query else "")


class SchemaCheck:
    """schema.sql's verdict on one parsed story, before anything else sees it.

    The parser does not restate the schema's rules (lengths, URL shapes, plain text):
    it writes each story and its sighting into an in-memory database built from
    schema.sql, the way a sandbox and the history will, and rolls back. A story the
    schema would refuse is refused here, with SQLite's reason, so every story a page
    yields is one the sandbox and the history take.
    """

    local = threading.local()

    @classmethod
    def problem(cls, story: Story) -> str | None:
        conn = getattr(cls.local, "conn", None)
        if conn is None:
            conn = cls.local.conn = sqlite3.connect(":memory:", isolation_level=None)
            schema.apply_schema(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("INSERT INTO runs (id, started_at) VALUES (1, '2026-01-01T00:00:00Z')")
        conn.execute("SAVEPOINT story")
        try:
            schema.ensure_source(conn, story.source)
            schema.insert_sighting(conn, 1, schema.insert_story(conn, None, story, 1), story)
            return None
        except (sqlite3.Error, UnicodeError, OverflowError) as exc:
            return " ".join(str(exc).split())[:160]
        finally:
            conn.execute("ROLLBACK TO story")
            conn.execute("RELEASE story")


def text_of(el) -> str | None:
    return el.text_content() if el is not None else None


def comment_count(label: str) -> int | None:
    """'96 comments' -> 96; 'discuss' / 'no comments' -> 0; anything else -> None."""
    label = clean_text(label).lower()
    if label in ("discuss", "no comments"):
        return 0
    return first_int(label, "comment count") if re.fullmatch(r"[0-9,]+ comments?", label) else None


def host_of(url: str) -> str | None:
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


PARSERS = {"hn": parse_hn, "lobsters": parse_lobsters}


def parse_page(source: str, html: str | bytes) -> Page:
    """A listing page's stories and refused rows; LayoutError only when it is no longer a front page."""
    try:
        parser = PARSERS[source]
    except KeyError:
        raise SourceError(source, f"unknown source (known: {', '.join(PARSERS)})") from None
    return parser(html)


def parse(source: str, html: str | bytes) -> list[Story]:
    """Just the stories of a listing page (see `parse_page` for the refused rows)."""
    return parse_page(source, html).stories
