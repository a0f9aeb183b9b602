"""Sites: what a kind of site is to newsreader (its listing, content types, discussion, hints), and the
sources a reader configured, each a site of one kind.

A kind is a `Kind` subclass in a module of this package (hn, lobsters, feed) or in a plugin package,
registered through the `register_sites` hook (pipeline/plugins.py), the built-in ones as a plugin's
would be. A `Source` is one configured site: its slug (the key everywhere: stories.source, the
sandbox's file name, --source), names, URL and kind. The refresh writes the configured sources into
the history's `sources` table, and the digest and the page read their names from there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

SLUG = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # schema.sql's sources.slug: a source's name in the config
BUILTIN = ("hn", "lobsters")  # the sources every config has unless it disables them: each its own kind
DEFAULT_MAX_ITEMS = 30  # a feed's items judged per refresh, unless its config says (a front page has 25-30)


class Kind:
    """A kind of site: how its listing is fetched and parsed, what its discussions are, what it hints.

    Subclass it, set `name`, implement `parse`, and return an instance from a `register_sites` hook.
    """

    name: str = ""  # the kind's key: `kind = "..."` in a source's config
    accept: str = "text/html"  # the Accept header of a listing request
    content_types: tuple[str, ...] = ("html",)  # a listing's Content-Type must contain one of these
    min_stories: int = 1  # fewer stories on a listing than this: it is not what the parser thinks
    conditional: bool = False  # send If-None-Match / If-Modified-Since: an unchanged listing costs nothing
    computing: bool = False  # a hint for the rules model: the community itself filters for computing
    listing: str = "front page"  # what the judge's task calls its listing ("Judge today's <name> <listing>")

    def defaults(self, slug: str) -> dict[str, str]:
        """The name, label and url of a source of this kind that its config leaves out."""
        return {"name": slug, "label": slug}

    def parse(self, source: Source, body: bytes, content_type: str, url: str):
        """A fetched listing -> `parse.Page` (its stories and the items refused, with reasons); raise
        `parse.LayoutError` when it is not a listing at all."""
        raise NotImplementedError

    def discussion_url(self, story) -> str | None:
        """What to fetch for a story's discussion (None: the story has none to read)."""
        return None

    def parse_discussion(self, body: bytes, content_type: str):
        """A fetched discussion page -> `discussions.Discussion`."""
        raise ValueError(f"a {self.name} source has no discussions to parse")


@dataclass(frozen=True)
class Source:
    """One configured site: a kind, where its listing is, and what the reader calls it."""

    slug: str
    kind: Kind = field(compare=False)
    url: str
    name: str
    label: str
    max_items: int | None = None  # None: the refresh's max_candidates

    @property
    def base_url(self) -> str:
        """The scheme and host of its listing, for the `sources` table."""
        match = re.match(r"https?://[^/]+", self.url)
        return match.group(0) if match else self.url


def item_id(*keys: str | None) -> str:
    """A stable `stories.source_id` for an item the site gives no short id of its own: a hash of the first
    key it has (a feed item's GUID, else its link, else its title)."""
    key = next((k for k in keys if k), "")
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]
