"""Reads of the history (data/news.db) outside the sync's writes, in one place: what a refresh looks up
before judging (a judgment to carry over, an article read recently) and what the command line looks up
(a day's digest, a story by id or by site and title, tags outside the vocabulary)."""

from __future__ import annotations

import json
import sqlite3

from . import articles
from .parse import Story


def reusable(conn, source: str, bases: dict[str, str], since: str) -> dict[str, int]:
    """source_id -> the latest run holding a tagged judgment of that story on the same basis, first made
    at or after `since` (a carried-over judgment keeps the age of the run that made it)."""
    found = {}
    for source_id, basis in bases.items():
        row = conn.execute(
            """
            SELECT j.run_id FROM stories AS s
            JOIN judgments AS j ON j.story_id = s.id
            JOIN runs AS r ON r.id = coalesce(j.reused_from, j.run_id)
            WHERE s.source = ? AND s.source_id = ? AND j.basis = ? AND r.started_at >= ?
              AND EXISTS (SELECT 1 FROM story_tags AS t WHERE t.run_id = j.run_id AND t.story_id = j.story_id)
            ORDER BY j.run_id DESC LIMIT 1
            """, [source, source_id, basis, since]).fetchone()
        if row:
            found[source_id] = row[0]
    return found


def recent_articles(conn: sqlite3.Connection, stories: list, since: str) -> dict[str, articles.Article]:
    """Articles of these stories fetched at or after `since` (by key) that got an answer (a page, a 404, a
    PDF...): not fetched again. One that got no answer at all (a timeout) is tried again."""
    found = {}
    for story in stories:
        cursor = conn.execute("SELECT * FROM articles WHERE url = ? AND http_status IS NOT NULL AND fetched_at >= ?",
                              [articles.key(story), since])
        row = cursor.fetchone()
        if row is not None:
            found[articles.key(story)] = articles.Article(**dict(zip([c[0] for c in cursor.description], row,
                                                                     strict=True)))
    return found


def last_listing(conn: sqlite3.Connection, source: str) -> list[Story]:
    """The stories of the source's latest landed listing, as that run saw them: what an unchanged
    listing (HTTP 304) holds, carried into this run without a parse."""
    rows = conn.execute(
        """
        SELECT s.source, s.source_id, g.rank, s.title, s.url, s.discussion_url, s.domain, g.points, g.comments,
               s.author, s.submitted_at, s.kind, s.native_tags
        FROM sightings AS g JOIN stories AS s ON s.id = g.story_id
        WHERE g.run_id = (SELECT max(x.run_id) FROM sightings AS x JOIN stories AS y ON y.id = x.story_id
                          WHERE y.source = ?)
          AND s.source = ?
        ORDER BY g.rank
        """, [source, source]).fetchall()
    return [Story(*row[:12], tags=json.loads(row[12]) if row[12] else []) for row in rows]


def source_validators(conn: sqlite3.Connection) -> dict[str, tuple[str | None, str | None]]:
    """Each source's ETag and Last-Modified from the last fetch of it that landed."""
    return {slug: (etag, modified) for slug, etag, modified in
            conn.execute("SELECT slug, etag, last_modified FROM sources WHERE etag IS NOT NULL "
                         "OR last_modified IS NOT NULL")}


def digest_body(conn: sqlite3.Connection, day: str | None) -> str | None:
    """The Markdown digest of that day's latest run (of the latest run when `day` is None)."""
    row = conn.execute("SELECT d.body FROM digests d JOIN runs r ON r.id = d.run_id "
                       "WHERE (? IS NULL OR substr(r.started_at, 1, 10) = ?) ORDER BY r.id DESC LIMIT 1",
                       [day, day]).fetchone()
    return row[0] if row else None


def story_title(conn: sqlite3.Connection, story_id: int) -> str | None:
    row = conn.execute("SELECT title FROM stories WHERE id = ?", [story_id]).fetchone()
    return row[0] if row else None


def latest_story(conn: sqlite3.Connection, source: str, title: str) -> int | None:
    """The id of the latest story of that site with that title (how a labels file names a story)."""
    row = conn.execute("SELECT id FROM stories WHERE source = ? AND title = ? ORDER BY id DESC LIMIT 1",
                       [source, title]).fetchone()
    return row[0] if row else None


def unknown_tags(conn: sqlite3.Connection, tags: list[str]) -> list[str]:
    """The tags that are not in the history's vocabulary."""
    return [t for t in tags if not conn.execute("SELECT 1 FROM tags WHERE slug = ?", [t]).fetchone()]
