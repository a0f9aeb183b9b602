"""Reading a story's discussion: every markup generation in tests/fixtures/discussions (real pages)."""

import gzip

import pytest

from pipeline import discussions, plugins
from pipeline.parse import Story

from .helpers import FIXTURES


def page(name: str) -> bytes:
    return gzip.decompress((FIXTURES / "discussions" / name).read_bytes())


def discussion_of(site: str, body: bytes) -> discussions.Discussion:
    """A discussion page as its site's kind (pipeline/sites/) reads it."""
    return plugins.site_kinds()[site].parse_discussion(body, "")


def discussion_url(site: str, url: str) -> str | None:
    """What the site's kind fetches for the discussion of a story posted at `url`."""
    story = Story(site, "1", 1, "A story", None, url, None, None, None, None, None)
    return plugins.site_kinds()[site].discussion_url(story)


@pytest.mark.parametrize("name, source, count, first", [
    ("hn_item_23172483_2020.html.gz", "hn", 20, [("aazaa", 0), ("bgdam", 1), ("danShumway", 2), ("yoz-y", 3)]),
    ("hn_item_9342369_2015.html.gz", "hn", 20, [("kirinan", 0), ("jsprogrammer", 1), ("kirinan", 2)]),
    ("hn_item_9681697_2015.html.gz", "hn", 20, [("glhaynes", 0), ("asendra", 1), ("TillE", 2), ("vvanders", 2)]),
    ("lobsters_story_ktew3s_2026.html.gz", "lobsters", 16, [("zk", 0), ("splitbrain", 1), ("nonagoninf", 2)]),
    ("lobsters_story_tdfoqh_2026fetch.html.gz", "lobsters", 10, [("dpercy", 0), ("friendlysock", 0), ("gioele", 1)]),
    ("lobsters_story_tdfoqh_2025fetch.json.gz", "lobsters", 10, [("dpercy", 0), ("friendlysock", 0), ("gioele", 1)]),
    ("lobsters_story_tdfoqh_2022.json.gz", "lobsters", 7, [("dpercy", 0), ("friendlysock", 0), ("kghose", 0)]),
    ("lobsters_story_d9ucpe_2021.json.gz", "lobsters", 7, [("garymoon", 0), ("enz", 0), ("jxy", 0)]),
])
def test_first_comments_in_the_sites_order_with_author_and_depth(name, source, count, first):
    found = discussion_of(source, page(name))
    assert len(found.comments) == count  # the first MAX_COMMENTS (20) of long threads
    assert [(c.author, c.depth) for c in found.comments[:len(first)]] == first
    for comment in found.comments:
        assert comment.text and "<" not in comment.text[:1] and len(comment.text) <= discussions.MAX_COMMENT_CHARS
        assert all(line == line.strip() and line for line in comment.text.split("\n"))


def test_comment_text_is_plain_with_paragraphs_on_their_own_lines():
    first = discussion_of("hn", page("hn_item_9342369_2015.html.gz")).comments[0].text
    assert first.startswith("This will be what takes containers into the mainstream businesses.")
    assert "Tomcat/JBoss don't run well" in first and "&#x" not in first and "reply" not in first[-10:]
    quoted = discussion_of("lobsters", page("lobsters_story_ktew3s_2026.html.gz")).comments[0].text
    assert quoted.split("\n")[:2] == ["So who did we stop?", "The exact adversary Anubis targets defeats it trivially."]


def test_a_text_posts_own_words_are_read():
    for name in ("lobsters_story_tdfoqh_2026fetch.html.gz", "lobsters_story_tdfoqh_2025fetch.json.gz"):
        assert discussion_of("lobsters", page(name)).self_text.startswith("There are often cases where comments")


def test_hostile_comments_become_plain_capped_text():
    html = ("<table><tr class='athing comtr' id='1'><td class='ind' indent='0'></td><td>"
            "<a class='hnuser' href='user?id=x'>x</a><div class='commtext c00'>"
            "a\u202eb\u200bc<script>alert(1)</script><p>" + "y" * 5000 + "</div></td></tr>"
            "<tr class='athing comtr' id='2'><td class='ind' indent='1'></td><td><a class='hnuser'>y</a>"
            "<div class='commtext c00'>[flagged]</div></td></tr></table>")
    comments = discussion_of("hn", html.encode()).comments
    assert len(comments) == 1 and comments[0].text.startswith("abc\nyyy")
    assert len(comments[0].text) == discussions.MAX_COMMENT_CHARS


def test_lobsters_discussions_are_fetched_as_json():
    assert discussion_url("lobsters", "https://lobste.rs/s/tdfoqh/ranking_comments") == \
        "https://lobste.rs/s/tdfoqh.json"
    assert discussion_url("hn", "https://news.ycombinator.com/item?id=1") == \
        "https://news.ycombinator.com/item?id=1"
