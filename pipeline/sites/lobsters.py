"""Lobsters as a kind of site: its front page (parse.parse_lobsters), its stories' JSON as discussions,
and a hint for the rules model (the community itself filters for computing)."""

from __future__ import annotations

import re

from .. import discussions, parse
from . import Kind


class Lobsters(Kind):
    name = "lobsters"
    min_stories = parse.MIN_STORIES
    computing = True

    def defaults(self, slug: str) -> dict[str, str]:
        return {"name": "Lobsters", "label": "Lobsters", "url": parse.LOBSTERS_BASE}

    def parse(self, source, body: bytes, content_type: str, url: str) -> parse.Page:
        return parse.parse_lobsters(body)

    def discussion_url(self, story) -> str | None:
        """The story's JSON: one request, comments as plain text."""
        url = story.discussion_url
        match = re.match(r"(https?://[^/]+/s/[A-Za-z0-9]+)", url or "")
        return f"{match.group(1)}.json" if match else url

    def parse_discussion(self, body: bytes, content_type: str) -> discussions.Discussion:
        looks_json = "json" in content_type or body.lstrip()[:1] in (b"{", b"[")
        return discussions.lobsters_json(body) if looks_json else discussions.lobsters_html(body)
