"""The site registry: every per-site fact in one place (its slug, names, front page and base URL).

Parsers, fetching, the prompt, the digest and the rules model read their site facts
from here. schema.sql seeds the same sites into its `sources` table and restricts
`sources.slug` to them; tests/test_layout.py checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    slug: str  # the key everywhere: stories.source, sandbox file names, --source
    name: str  # as the site calls itself (the prompt, the rules model's summaries)
    label: str  # short, for the digest's discussion links
    front_page: str  # what a refresh fetches unless the config says otherwise
    base: str  # relative links on its pages resolve against this


SITES: dict[str, Site] = {
    "hn": Site("hn", "Hacker News", "HN", "https://news.ycombinator.com/", "https://news.ycombinator.com/"),
    "lobsters": Site("lobsters", "Lobsters", "Lobsters", "https://lobste.rs/", "https://lobste.rs/"),
}


def name(slug: str) -> str:
    return SITES[slug].name if slug in SITES else slug


def label(slug: str) -> str:
    return SITES[slug].label if slug in SITES else slug
