"""The parsers on real saved front pages (tests/fixtures/html, see SOURCES.md there)."""

import json
import re

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.parse import LayoutError, parse_hn, parse_lobsters

from .helpers import FIXTURES

PAGES = {
    "hn_fben3-2024-08.html": (parse_hn, 30),
    "hn_karakanb-2018-05-04.html": (parse_hn, 30),
    "lobsters_claw-front-2023-03.html": (parse_lobsters, 25),
    "lobsters_claw-hottest-2026-05-09.html": (parse_lobsters, 25),
}


def load(name):
    return (FIXTURES / "html" / name).read_bytes()


def stories_of(name):
    parser, _ = PAGES[name]
    page = parser(load(name))
    assert page.refused == []  # nothing on a real page is refused
    return page.stories


@pytest.mark.parametrize("name", PAGES)
def test_every_real_page_parses_completely(name):
    _, expected = PAGES[name]
    stories = stories_of(name)
    assert len(stories) == expected
    assert [s.rank for s in stories] == list(range(1, expected + 1))
    assert len({s.source_id for s in stories}) == expected
    for s in stories:
        assert s.title and s.title == " ".join(s.title.split())
        assert re.match(r"https?://[^/\s]+", s.discussion_url)
        assert s.url is None or re.match(r"https?://[^/\s]+", s.url), s.url
        assert s.kind in {"story", "ask", "show", "job"}
        if s.kind != "job":
            assert s.points is not None and s.comments is not None and s.author


def test_hn_2024_titleline_layout():
    stories = stories_of("hn_fben3-2024-08.html")
    first, last = stories[0], stories[-1]
    assert first.to_dict() == {
        "source": "hn",
        "source_id": "41392128",
        "rank": 1,
        "title": "Bypassing airport security via SQL injection",
        "url": "https://ian.sh/tsa",
        "discussion_url": "https://news.ycombinator.com/item?id=41392128",
        "domain": "ian.sh",
        "points": 412,
        "comments": 96,
        "author": "iancarroll",
        "submitted_at": "2024-08-29T15:53:08Z",
        "kind": "story",
        "tags": [],
    }
    assert (last.rank, last.source_id, last.kind) == (30, "41389326", "show")
    assert last.title == "Show HN: turn videos into ASCII art (open source, js+canvas)"


def test_hn_job_post_has_no_points_author_or_comments():
    job = stories_of("hn_fben3-2024-08.html")[8]
    assert (job.title, job.kind) == ("MindsDB (YC W20) Is Hiring", "job")
    assert (job.points, job.comments, job.author) == (None, None, None)
    assert job.url == "https://job-boards.greenhouse.io/mindsdb/jobs/4429903007"


def test_hn_launch_post_is_a_self_post():
    launch = stories_of("hn_fben3-2024-08.html")[4]
    assert launch.title.startswith("Launch HN: CodeViz")
    assert (launch.kind, launch.url, launch.domain) == ("show", None, None)
    assert launch.discussion_url == "https://news.ycombinator.com/item?id=41393458"


def test_hn_2018_storylink_layout_with_ask_and_discuss():
    stories = stories_of("hn_karakanb-2018-05-04.html")
    assert stories[0].title == "Swedish Academy Won’t Award Nobel Prize in Literature This Year"
    assert stories[0].domain == "wsj.com" and stories[0].submitted_at is None
    ask = next(s for s in stories if s.title.startswith("Ask HN"))
    assert (ask.rank, ask.kind, ask.url, ask.source_id) == (14, "ask", None, "16991591")
    assert stories[-1].comments == 0  # the page says "discuss"
    job = stories[24]
    assert job.kind == "job" and job.points is None


def test_lobsters_2023_layout():
    stories = stories_of("lobsters_claw-front-2023-03.html")
    first = stories[0]
    assert first.source_id == "5qk7dp"
    assert first.title == "PotatoP - A LISP-programmable laptop with battery life measured in years"
    assert first.tags == ["hardware", "lisp", "performance"]
    assert first.discussion_url == "https://lobste.rs/s/5qk7dp/potatop_lisp_programmable_laptop_with"
    assert (first.points, first.comments, first.author) == (42, 5, "sjamaan")
    assert first.submitted_at == "2023-03-09T07:44:29Z"  # -0600 on the page
    text_post = next(s for s in stories if s.source_id == "zkndyy")
    assert text_post.url is None and text_post.domain is None
    assert text_post.discussion_url.startswith("https://lobste.rs/s/zkndyy/")
    assert stories[-1].comments == 0  # "no comments"


def test_lobsters_2026_layout_with_multiline_class():
    stories = stories_of("lobsters_claw-hottest-2026-05-09.html")
    first = stories[0]
    assert (first.source_id, first.title, first.domain) == ("ho7nqt", "On forking the Web", "dillo-browser.org")
    assert (first.points, first.comments, first.tags) == (37, 33, ["web"])
    assert first.submitted_at == "2026-05-09T10:03:17Z"
    assert stories[-1].title == "ACME CA Comparison" and stories[-1].tags == ["security"]


def test_entities_are_decoded_and_whitespace_collapsed():
    html = load("hn_fben3-2024-08.html").decode()
    html = html.replace("Bypassing airport security via SQL injection",
                        "Bypassing&nbsp;airport &amp;\n  security [pdf]")
    assert parse_hn(html).stories[0].title == "Bypassing airport & security [pdf]"


def test_renamed_classes_raise_a_layout_error():
    html = load("hn_fben3-2024-08.html").decode().replace("athing", "thing-row")
    with pytest.raises(LayoutError, match="hn: no story rows found"):
        parse_hn(html)
    html = load("lobsters_claw-hottest-2026-05-09.html").decode().replace("u-url", "story-link")
    with pytest.raises(LayoutError, match="lobsters: 25 of 25 story rows have no title link"):
        parse_lobsters(html)


def test_a_page_with_too_few_stories_is_a_layout_error():
    html = load("hn_fben3-2024-08.html").decode()
    cut = html.index("<tr class='athing' id='41393218'>")  # keep 8 stories
    with pytest.raises(LayoutError, match="only 8 stories parsed"):
        parse_hn(html[:cut] + "</table></body></html>")


def test_an_error_page_is_a_layout_error():
    with pytest.raises(LayoutError, match="no story rows"):
        parse_lobsters("<html><body><h1>502 Bad Gateway</h1></body></html>")


def test_parse_command_prints_json():
    result = CliRunner().invoke(cli, ["parse", "lobsters", str(FIXTURES / "html" / "lobsters_claw-front-2023-03.html")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 25
    assert {"source", "source_id", "rank", "title", "url", "discussion_url", "domain", "points", "comments",
            "author", "tags"} <= set(rows[0])


def test_parse_command_on_a_non_page_fails_clearly(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("just text")
    result = CliRunner().invoke(cli, ["parse", "hn", str(bad)])
    assert result.exit_code == 1
    assert "hn: no story rows found" in result.output
    assert "Traceback" not in result.output
