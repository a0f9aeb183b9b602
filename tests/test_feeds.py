"""Any feed as a source: the 30 real feeds of ../shared/corpus/feeds served from a loopback server and
configured as `[sources.NAME] feed = "http://127.0.0.1:PORT/FILE"`, read through the command line as a
reader would; and the feed kind's parser on the awkward cases those feeds hold."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pipeline import articles, plugins
from pipeline.cli import cli
from pipeline.sites import Source

from .feed_server import Behaviour, FeedServer

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
MAX_ITEMS = 30  # the per-source cap the configs below set


def corpus() -> dict[str, tuple[str, int]]:
    """file -> (kind, items), from the table in the corpus' SOURCES.md."""
    found = {}
    for line in (FEEDS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[a-z0-9-]+\.(xml|json)", cells[0]):
            found[cells[0]] = (cells[4], int(cells[5]))
    return found


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", Path(name).stem)[:32]


def feed_config(server: FeedServer, names, **extra) -> str:
    lines = ["[sources.hn]", "enabled = false", "[sources.lobsters]", "enabled = false"]
    for name in names:
        lines += [f"[sources.{slug_of(name)}]", f'feed = "{server.url(name)}"', f"max_items = {MAX_ITEMS}"]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def offline_articles(monkeypatch):
    """The items' links are real addresses on the internet: tests never go there (every article is a 404)."""
    monkeypatch.setattr(articles, "pinned_transport",
                        lambda *a, **k: httpx.MockTransport(lambda request: httpx.Response(404)))


@pytest.fixture(scope="module")
def corpus_refresh(tmp_path_factory):
    """All 30 feeds in one refresh through the CLI (rules model, jail), as the team checks it."""
    folder = tmp_path_factory.mktemp("feeds")
    server = FeedServer(FEEDS)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(articles, "pinned_transport",
                        lambda *a, **k: httpx.MockTransport(lambda request: httpx.Response(404)))
    try:
        config = folder / "newsreader.toml"
        config.write_text(feed_config(server, sorted(corpus())), encoding="utf-8")
        out = CliRunner().invoke(cli, ["--config", str(config), "refresh", "--db", str(folder / "news.db")])
    finally:
        monkeypatch.undo()
        server.close()
    return out, sqlite3.connect(folder / "news.db")


def test_every_well_formed_feed_lands_at_least_80_percent_of_its_items(corpus_refresh):
    out, conn = corpus_refresh
    assert "Traceback" not in out.output
    assert out.exit_code == 0, out.output  # partial: the broken feeds that cannot be read fail alone
    landed = dict(conn.execute("SELECT source, count(*) FROM stories GROUP BY source"))
    short = {name: (landed.get(slug_of(name), 0), items) for name, (kind, items) in corpus().items()
             if "ill-formed" not in kind and landed.get(slug_of(name), 0) < max(1, 0.8 * min(items, MAX_ITEMS))}
    assert short == {}
    judged = conn.execute("SELECT count(*) FROM judgments").fetchone()[0]
    assert judged == sum(landed.values())  # every story that landed was judged


def test_a_broken_feed_lands_what_it_can_or_fails_alone_with_one_line(corpus_refresh):
    out, conn = corpus_refresh
    sites = {source: (status, error) for source, status, error in
             conn.execute("SELECT source, status, error FROM run_sites")}
    broken = [name for name, (kind, _) in corpus().items() if "ill-formed" in kind]
    assert len(broken) == 5
    for name in broken:
        status, error = sites[slug_of(name)]
        if status == "failed":
            assert error and "\n" not in error and len(error) < 300, error
            assert f"{slug_of(name)}: " in out.output  # named where the reader sees it
    assert sites["reuters_truncated"][0] == "failed"  # nothing but a channel header: no item to land
    assert "not a readable feed" in sites["reuters_truncated"][1]
    assert sites["dbengines_nbsp"][0] == "ok"  # an undefined entity: a tolerant parser lands the item
    assert sum(status == "ok" for status, _ in sites.values()) >= 25 + 2


def test_feed_items_are_stories_the_schema_takes_with_their_facts(corpus_refresh):
    _, conn = corpus_refresh
    rows = {source: row for source, *row in conn.execute(
        "SELECT source, title, url, discussion_url, author, submitted_at, native_tags FROM stories "
        "ORDER BY id")}
    assert conn.execute("SELECT count(DISTINCT source_id) FROM stories WHERE source = 'qemu_relative_links'"
                        ).fetchone()[0] == 10
    # relative links resolved against the feed's own URL, or its xml:base
    assert conn.execute("SELECT count(*) FROM stories WHERE source = 'qemu_relative_links' "
                        "AND url LIKE 'http://127.0.0.1:%/2025/%'").fetchone()[0] >= 1
    assert conn.execute("SELECT count(*) FROM stories WHERE source = 'adobe_blog_xmlbase' "
                        "AND url LIKE 'https://blog.adobe.com/%'").fetchone()[0] == MAX_ITEMS
    titles = [t for (t,) in conn.execute("SELECT title FROM stories")]
    marked_up = [t for t in titles if "<b>" in t or "&#" in t or "&amp;" in t or "<sup>" in t]
    assert marked_up == ["Die Rückkehr von <i> und <b>"]  # HTML in titles is read as text, but this one's text
    assert "Die Rückkehr von <i> und <b>" in titles  # a JSON Feed title is plain text: nothing stripped
    assert any("₹" in t for t in titles) and any("’" in t for t in titles)
    assert conn.execute("SELECT count(*) FROM stories WHERE source = 'golem_iso8859_1' AND title GLOB '*[äöüß]*'"
                        ).fetchone()[0] > 0  # ISO-8859-1, decoded
    untitled = conn.execute("SELECT count(*) FROM stories WHERE source = 'scripting_news'").fetchone()[0]
    assert untitled >= 24  # 39 of its 50 items have no title: each is titled by the start of its text
    assert rows["hn_frontpage"][2].startswith("https://news.ycombinator.com/item?id=")  # <comments>: its discussion


def test_a_full_text_item_is_read_from_the_feed_and_not_fetched(corpus_refresh):
    _, conn = corpus_refresh
    read = conn.execute("SELECT count(*) FROM stories AS s JOIN articles AS a ON a.url = s.canonical_url "
                        "WHERE s.source = 'github_releases_ty' AND a.status = 'ok'").fetchone()[0]
    assert read == 10  # long release notes: each is its article (the fetches all got 404)


def test_a_second_refresh_of_unchanged_feeds_parses_nothing_and_asks_no_model(tmp_path, offline_articles):
    server = FeedServer(FEEDS, {"/github-releases-ty.xml": Behaviour(etag='"ty-1"')})
    try:
        config = tmp_path / "newsreader.toml"
        config.write_text(feed_config(server, ["github-releases-ty.xml", "archlinux-news.xml"]), encoding="utf-8")
        args = ["--config", str(config), "refresh", "--db", str(tmp_path / "news.db")]
        first = CliRunner().invoke(cli, args)
        second = CliRunner().invoke(cli, args)
    finally:
        server.close()
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    asked = [headers.get("If-None-Match") for path, headers in server.requests if path == "/github-releases-ty.xml"]
    assert asked == [None, '"ty-1"']
    assert "not modified since the last fetch (HTTP 304)" in second.output
    conn = sqlite3.connect(tmp_path / "news.db")
    row = conn.execute("SELECT llm_calls, judged, reused FROM run_sites WHERE run_id = 2 "
                       "AND source = 'github_releases_ty'").fetchone()
    assert row == (0, 10, 10)  # its ten stories are today's again, judged before: no model call
    raw = list((tmp_path / "raw").rglob("github_releases_ty-*"))
    assert len(raw) == 1  # the 304 saved no page


def test_a_source_config_that_cannot_work_is_one_line_before_any_fetch(tmp_path):
    cases = [
        ('[sources.Bad]\nfeed = "https://example.org/feed"\n', "a source's name is lower-case"),
        ('[sources.news]\nfeed = "ftp://example.org/feed"\n', "must be an http(s) URL"),
        ('[sources.news]\nurl = "https://example.org/"\n', "needs either feed"),
        ('[sources.news]\nkind = "gopher"\nurl = "https://example.org/"\n', "kind 'gopher' is not a kind of site"),
        ('[sources.hn]\nfeed = "https://example.org/feed"\n', "hn is a built-in site"),
        ('[sources.news]\nfeed = "https://example.org/feed"\nmax_items = 0\n', "whole number from 1 to 500"),
        ('[sources.news]\nfeed = "https://example.org/feed"\ncolour = "red"\n', "unknown config key"),
    ]
    for text, message in cases:
        config = tmp_path / "newsreader.toml"
        config.write_text(text, encoding="utf-8")
        out = CliRunner().invoke(cli, ["--config", str(config), "refresh", "--db", str(tmp_path / "news.db")])
        assert out.exit_code != 0 and message in out.output, (text, out.output)
        assert "Traceback" not in out.output
        assert not (tmp_path / "news.db").exists()


def test_the_feed_kind_keeps_the_first_of_a_duplicated_guid_and_says_so():
    kind = plugins.site_kinds()["feed"]
    source = Source("scripting", kind, "http://127.0.0.1/scripting.xml", "Scripting", "Scripting", 50)
    page = kind.parse(source, (FEEDS / "scripting-news.xml").read_bytes(), "application/rss+xml", source.url)
    assert len(page.stories) == 48  # 50 items, 2 GUIDs twice
    assert [reason for _, reason in page.refused if "twice" in reason] and len(page.refused) == 2
    assert len({s.source_id for s in page.stories}) == 48
    assert all(len(s.source_id) == 24 for s in page.stories)
