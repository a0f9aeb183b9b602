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

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup

HN_BASE = "https://news.ycombinator.com/"
LOBSTERS_BASE = "https://lobste.rs/"

# A front page lists 30 (HN) or 25 (Lobsters) stories; far fewer means the
# page is not what the parser thinks it is.
MIN_STORIES = 10
# Share of rows allowed to miss a required field before the layout is declared changed.
MAX_MISSING_SHARE = 0.2


class SourceError(Exception):
    """A source that could not be read; the message names the source and what failed."""

    def __init__(self, source: str, message: str):
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}")


class LayoutError(SourceError):
    """The page no longer looks like the front page the parser knows."""


@dataclass
class Story:
    source: str
    source_id: str
    rank: int
    title: str
    url: str | None
    discussion_url: str
    domain: str | None
    points: int | None
    comments: int | None
    author: str | None
    submitted_at: str | None
    kind: str = "story"
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def clean_text(text: str | None) -> str:
    """Collapse every run of whitespace (including NBSP) to one space and trim."""
    return " ".join((text or "").split())


def first_int(text: str | None) -> int | None:
    match = re.search(r"\d+", (text or "").replace(",", ""))
    return int(match.group()) if match else None


def utc_iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def soup_of(html: str | bytes) -> BeautifulSoup:
    # lxml, not html.parser: minified Lobsters pages omit </li>, which
    # html.parser turns into nested stories.
    return BeautifulSoup(html, "lxml")


def check_layout(source: str, rows: int, stories: list[Story], missing: dict[str, int]) -> None:
    """Raise LayoutError unless the page yielded a plausible front page."""
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

HN_TITLE_SELECTORS = ("span.titleline > a", "a.titlelink", "a.storylink")


def parse_hn(html: str | bytes, base: str = HN_BASE) -> list[Story]:
    """Parse a Hacker News listing page (front page, /best, /news?p=2 ...)."""
    soup = soup_of(html)
    rows = [tr for tr in soup.select("tr.athing") if "comtr" not in tr.get("class", [])]
    stories: list[Story] = []
    missing = {"title link": 0, "rank": 0}
    for row in rows:
        link = next((a for sel in HN_TITLE_SELECTORS for a in row.select(sel, limit=1)), None)
        rank = first_int(text_of(row.select_one("span.rank")))
        item_id = row.get("id", "")
        if link is None or not link.get("href") or not item_id.isdigit():
            missing["title link"] += 1
            continue
        if rank is None:
            missing["rank"] += 1
            continue
        discussion_url = urljoin(base, f"item?id={item_id}")
        href = urljoin(base, link["href"])
        self_post = href == discussion_url
        title = clean_text(link.get_text())

        subtext = hn_subtext(row)
        score = subtext.select_one("span.score") if subtext else None
        user = subtext.select_one("a.hnuser") if subtext else None
        points = first_int(score.get_text()) if score else None
        author = clean_text(user.get_text()) if user else None
        comments = None
        if subtext is not None:
            for a in subtext.find_all("a", href=re.compile(r"^item\?id=")):
                count = comment_count(a.get_text())
                if count is not None:
                    comments = count
        submitted_at = None
        age = subtext.select_one("span.age[title]") if subtext else None
        if age is not None:
            # "2024-08-29T15:53:08" (UTC), or since 2025 "2026-05-09T12:00:00 1778328000".
            stamp = age["title"].split()
            if len(stamp) > 1 and stamp[1].isdigit():
                submitted_at = utc_iso(datetime.fromtimestamp(int(stamp[1]), timezone.utc))
            elif stamp:
                submitted_at = utc_iso(datetime.fromisoformat(stamp[0]))

        if points is None and author is None:
            kind = "job"
        elif re.match(r"(show|launch) hn\b", title, re.IGNORECASE):
            kind = "show"
        elif re.match(r"ask hn\b", title, re.IGNORECASE) or self_post:
            kind = "ask"
        else:
            kind = "story"
        if kind == "job":
            comments = None
        domain_el = row.select_one("span.sitestr")
        stories.append(
            Story(
                source="hn",
                source_id=item_id,
                rank=rank,
                title=title,
                url=None if self_post else href,
                discussion_url=discussion_url,
                domain=None if self_post else (clean_text(domain_el.get_text()) if domain_el else host_of(href)),
                points=points,
                comments=comments,
                author=author,
                submitted_at=submitted_at,
                kind=kind,
            )
        )
    check_layout("hn", len(rows), stories, missing)
    return stories


def hn_subtext(row):
    """The `td.subtext` of the row after the story row (score, user, age, comments)."""
    nxt = row.find_next_sibling("tr")
    return nxt.select_one("td.subtext") if nxt is not None else None


# --- Lobsters --------------------------------------------------------------------


def parse_lobsters(html: str | bytes, base: str = LOBSTERS_BASE) -> list[Story]:
    """Parse a Lobsters listing page (front page, /hottest, /newest ...)."""
    soup = soup_of(html)
    rows = soup.select("li.story")
    stories: list[Story] = []
    missing = {"title link": 0, "short id": 0}
    for position, row in enumerate(rows, start=1):
        link = row.select_one("a.u-url")
        short_id = row.get("data-shortid") or (row.get("id") or "").removeprefix("story_")
        if link is None or not link.get("href"):
            missing["title link"] += 1
            continue
        if not short_id:
            missing["short id"] += 1
            continue
        href = urljoin(base, link["href"])
        self_post = urlsplit(href).netloc == urlsplit(base).netloc and urlsplit(href).path.startswith("/s/")
        comments_link = row.select_one(".comments_label a")
        discussion_url = urljoin(base, comments_link["href"]) if comments_link else urljoin(base, f"s/{short_id}")
        comments = comment_count(comments_link.get_text()) if comments_link else 0
        score_el = row.select_one(".voters .score") or row.select_one(".voters .upvoter")
        tags = [clean_text(a.get_text()) for a in row.select("a.tag")]
        domain_el = row.select_one("a.domain")
        author_el = row.select_one("a.u-author")
        kind = "ask" if "ask" in tags else "show" if "show" in tags else "story"
        stories.append(
            Story(
                source="lobsters",
                source_id=short_id,
                rank=position,
                title=clean_text(link.get_text()),
                url=None if self_post else href,
                discussion_url=discussion_url,
                domain=None if self_post else (clean_text(domain_el.get_text()) if domain_el else host_of(href)),
                points=first_int(text_of(score_el)),
                comments=comments,
                author=clean_text(author_el.get_text()) if author_el else None,
                submitted_at=lobsters_time(row),
                kind=kind,
                tags=tags,
            )
        )
    check_layout("lobsters", len(rows), stories, missing)
    return stories


def lobsters_time(row) -> str | None:
    """2026: <time data-at-unix=...>; 2023: <span title="2023-03-09 01:44:29 -0600">."""
    el = row.select_one(".byline time[data-at-unix]")
    if el is not None and el["data-at-unix"].isdigit():
        return utc_iso(datetime.fromtimestamp(int(el["data-at-unix"]), timezone.utc))
    for el in row.select(".byline [title]"):
        try:
            return utc_iso(datetime.strptime(el["title"].strip(), "%Y-%m-%d %H:%M:%S %z"))
        except ValueError:
            continue
    return None


# --- shared ----------------------------------------------------------------------


def text_of(el) -> str | None:
    return el.get_text() if el is not None else None


def comment_count(label: str) -> int | None:
    """'96 comments' -> 96; 'discuss' / 'no comments' -> 0; anything else -> None."""
    label = clean_text(label).lower()
    if label in ("discuss", "no comments"):
        return 0
    return first_int(label) if re.fullmatch(r"[\d,]+ comments?", label) else None


def host_of(url: str) -> str | None:
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


PARSERS = {"hn": parse_hn, "lobsters": parse_lobsters}


def parse(source: str, html: str | bytes) -> list[Story]:
    try:
        parser = PARSERS[source]
    except KeyError:
        raise SourceError(source, f"unknown source (known: {', '.join(PARSERS)})") from None
    return parser(html)
