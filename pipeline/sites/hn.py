"""Hacker News as a kind of site: its front page (parse.parse_hn), its item pages as discussions."""

from __future__ import annotations

from .. import discussions, parse
from . import Kind


class HackerNews(Kind):
    name = "hn"
    min_stories = parse.MIN_STORIES

    def defaults(self, slug: str) -> dict[str, str]:
        return {"name": "Hacker News", "label": "HN", "url": parse.HN_BASE}

    def parse(self, source, body: bytes, content_type: str, url: str) -> parse.Page:
        return parse.parse_hn(body)

    def discussion_url(self, story) -> str | None:
        return story.discussion_url  # the item page: comments and a self post's text in one request

    def parse_discussion(self, body: bytes, content_type: str) -> discussions.Discussion:
        return discussions.hn(body)
