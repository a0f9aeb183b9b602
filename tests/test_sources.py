"""Many sources at once: Hacker News, Lobsters and feeds from a loopback server, some slow, one failing, one
unchanged (304), fetched and judged in a bounded pool; a third party's kind of site; an older history."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3

import httpx
import pytest
from click.testing import CliRunner

from pipeline import articles, parse, plugins, sites, store
from pipeline.cli import cli
from pipeline.sites import Source

from .feed_server import Behaviour, FeedServer
from .helpers import SNAPSHOT
from .test_feeds import FEEDS

TEN_FEEDS = ["archlinux-news.xml", "github-releases-ty.xml", "bbc-urdu.xml", "heise-rss090.xml",
             "youtube-channel.xml", "pixelenvy.json", "qemu-relative-links.xml", "omni-show-podcast.xml",
             "biorxiv-rss10.xml", "missing.xml"]
SLOW = {"/bbc-urdu.xml", "/heise-rss090.xml", "/youtube-channel.xml", "/pixelenvy.json"}
DELAY_S = 2.0
POOL = 4


@pytest.fixture
def offline_articles(monkeypatch):
    monkeypatch.setattr(articles, "pinned_transport",
                        lambda *a, **k: httpx.MockTransport(lambda request: httpx.Response(404)))


def slug(name: str) -> str:
    return name.split(".")[0].replace("-", "_")


def test_twelve_sources_land_in_a_bounded_pool_the_failing_one_named_the_unchanged_one_free(
        tmp_path, offline_articles):
    folder = tmp_path / "served"
    folder.mkdir()
    for name in TEN_FEEDS[:-1]:
        shutil.copy(FEEDS / name, folder / name)
    for page in ("hn.html", "lobsters.html"):
        shutil.copy(SNAPSHOT / page, folder / page)
    behaviours = {path: Behaviour(delay=DELAY_S) for path in SLOW}
    behaviours["/github-releases-ty.xml"] = Behaviour(etag='"v1"')
    behaviours["/missing.xml"] = Behaviour(status=404)
    server = FeedServer(folder, behaviours)
    config = tmp_path / "newsreader.toml"
    config.write_text("\n".join([
        f"parallel = {POOL}", f"per_host = {POOL}",
        "[sources.hn]", f'url = "{server.url("hn.html")}"',
        "[sources.lobsters]", f'url = "{server.url("lobsters.html")}"',
        *(f'[sources.{slug(name)}]\nfeed = "{server.url(name)}"' for name in TEN_FEEDS)]) + "\n", encoding="utf-8")
    args = ["--config", str(config), "refresh", "--db", str(tmp_path / "news.db")]
    try:
        first = CliRunner().invoke(cli, args)
        server.requests.clear()
        server.served.clear()
        server.most_in_flight = 0
        second = CliRunner().invoke(cli, args)
    finally:
        server.close()
    for out in (first, second):
        assert out.exit_code == 0 and "Traceback" not in out.output, out.output
        assert "missing: HTTP 404 from" in out.output  # the failing one, named
    conn = sqlite3.connect(tmp_path / "news.db")
    sites_of_run = {source: (status, calls) for source, status, calls in
                    conn.execute("SELECT source, status, llm_calls FROM run_sites WHERE run_id = 2")}
    assert len(sites_of_run) == 12
    assert {s for s, (status, _) in sites_of_run.items() if status != "ok"} == {"missing"}
    assert sites_of_run["github_releases_ty"][1] == 0  # 304: no parse, no model call
    assert "github_releases_ty fetch     ok      not modified" in second.output
    assert conn.execute("SELECT count(*) FROM sightings AS g JOIN stories AS s ON s.id = g.story_id "
                        "WHERE g.run_id = 2 AND s.source = 'github_releases_ty'").fetchone()[0] == 10
    # The pool: never more than POOL listings in flight, and the four 2 s listings took about one round of
    # 2 s, not the 8 s one after the other would.
    assert 2 <= server.most_in_flight <= POOL
    assert len(server.served) == 12
    window = max(end for _, _, end in server.served) - min(start for _, start, _ in server.served)
    assert DELAY_S <= window < 2 * DELAY_S, window
    status = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))
    assert status == {"partial": 2}


class Listing(sites.Kind):
    """A third party's kind of site: a JSON list of {"id", "title", "url", "points"} (no discussions)."""

    name = "jsonlist"
    accept = "application/json"
    content_types = ("json",)

    def parse(self, source, body, content_type, url):
        page = parse.Page(stories=[])
        for rank, item in enumerate(json.loads(body), start=1):
            page.stories.append(parse.Story(source.slug, str(item["id"]), rank, item["title"], item["url"], None,
                                            parse.host_of(item["url"]), item["points"], None, None, None))
        return page


class ThirdParty:
    @plugins.hookimpl
    def register_sites(self):
        return [Listing(), sites.Kind()]  # the second has no name: nothing to register it under


def test_a_plugins_kind_of_site_fetches_parses_and_lands_without_a_change_to_newsreader(
        tmp_path, monkeypatch, offline_articles):
    manager = plugins.manager()
    manager.register(ThirdParty())
    found = plugins.collect(manager, "register_sites")
    assert list(found)[:3] == ["hn", "lobsters", "feed"] and "jsonlist" in found
    monkeypatch.setattr(plugins, "site_kinds", lambda: found)
    (tmp_path / "list.json").write_text(json.dumps([
        {"id": 7, "title": "A new borrow checker for Rust", "url": "https://example.org/rust", "points": 40},
        {"id": 8, "title": "The history of the bicycle", "url": "https://example.org/bike", "points": 3}]))
    server = FeedServer(tmp_path, {"/list.json": Behaviour(content_type="application/json")})
    config = tmp_path / "newsreader.toml"
    config.write_text("[sources.hn]\nenabled = false\n[sources.lobsters]\nenabled = false\n"
                      f'[sources.mine]\nkind = "jsonlist"\nurl = "{server.url("list.json")}"\nlabel = "Mine"\n')
    try:
        out = CliRunner().invoke(cli, ["--config", str(config), "refresh", "--db", str(tmp_path / "news.db")])
    finally:
        server.close()
    assert out.exit_code == 0, out.output
    assert server.requests[0][1]["Accept"] == "application/json"
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT slug, kind, label FROM sources").fetchall() == [("mine", "jsonlist", "Mine")]
    judged = conn.execute("SELECT s.source_id, j.relevant FROM judgments AS j JOIN stories AS s ON s.id = j.story_id "
                          "ORDER BY s.source_id").fetchall()
    assert judged == [("7", 1), ("8", 0)]


def test_an_unknown_kind_without_its_plugin_is_one_line(tmp_path):
    config = tmp_path / "newsreader.toml"
    config.write_text('[sources.mine]\nkind = "jsonlist"\nurl = "https://example.org/list.json"\n')
    out = CliRunner().invoke(cli, ["--config", str(config), "config"])
    assert out.exit_code == 1 and "kind 'jsonlist' is not a kind of site this install has" in out.output


def test_a_version_12_history_keeps_hacker_news_and_lobsters_with_their_rows(refreshed_copy):
    """Histories from before any source: the two sites keep their slugs, ids and stories, as their own kind."""
    old = refreshed_copy
    conn = sqlite3.connect(old)
    before = conn.execute("SELECT id, source, source_id FROM stories ORDER BY id").fetchall()
    conn.executescript("""
        PRAGMA foreign_keys = OFF;
        DROP VIEW digest_stories;
        CREATE TABLE sources_old (slug TEXT PRIMARY KEY CHECK (slug IN ('hn', 'lobsters')),
            name TEXT NOT NULL, base_url TEXT NOT NULL) STRICT;
        INSERT INTO sources_old VALUES ('hn', 'Hacker News', 'https://news.ycombinator.com'),
                                       ('lobsters', 'Lobsters', 'https://lobste.rs');
        DROP TABLE sources; ALTER TABLE sources_old RENAME TO sources;
        PRAGMA user_version = 12;
    """)
    conn.close()
    db = store.open_db(old)
    assert db.conn.execute("SELECT slug, kind, name, label FROM sources ORDER BY slug").fetchall() == [
        ("hn", "hn", "Hacker News", "HN"), ("lobsters", "lobsters", "Lobsters", "Lobsters")]
    assert db.conn.execute("SELECT id, source, source_id FROM stories ORDER BY id").fetchall() == before
    assert db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.conn.execute("SELECT count(*) FROM digest_stories").fetchone()[0] > 0


PAGE = """<!doctype html><html><head><title>A blog</title>
<link rel="alternate" type="application/rss+xml" title="A blog" href="/feed.xml">
<link rel="stylesheet" href="/style.css"></head><body>Hello</body></html>"""
HOSTILE_FEED = """<?xml version="1.0"?><rss version="2.0"><channel>
<title>Evil" \\ [model]
id = "gpt" ]]</title><link>https://example.org/</link>
<item><title>One</title><link>https://example.org/1</link></item></channel></rss>"""


def sources_cli(workdir, *args):
    (workdir / "newsreader.toml").touch()
    return CliRunner().invoke(cli, ["--config", str(workdir / "newsreader.toml"), *args])


def test_sources_add_finds_a_pages_feed_and_the_config_then_has_it(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "feed.xml").write_text(HOSTILE_FEED)
    (tmp_path / "plain.html").write_text("<html><body>no feed here</body></html>")
    server = FeedServer(tmp_path)
    try:
        added = sources_cli(tmp_path, "sources", "add", server.url("index.html"))
        again = sources_cli(tmp_path, "sources", "add", server.url("feed.xml"))
        named = sources_cli(tmp_path, "sources", "add", server.url("feed.xml"), "--name", "other")
        plain = sources_cli(tmp_path, "sources", "add", server.url("plain.html"))
        listed = sources_cli(tmp_path, "sources", "list")
    finally:
        server.close()
    assert added.exit_code == 0, added.output
    assert f"feed = {server.url('feed.xml')}" in added.output
    assert again.exit_code == 1 and "is already a source" in again.output
    assert named.exit_code == 1 and "is already a source" in named.output  # under another name too
    assert plain.exit_code == 1 and "is not a feed, and names none" in plain.output
    config = sources_cli(tmp_path, "config")
    assert config.exit_code == 0, config.output
    assert "model.id = 'rules'  # default" in config.output  # the feed's title did not write a [model] table
    text = (tmp_path / "newsreader.toml").read_text()
    assert text.count("[sources.") == 1 and "\n[model]" not in text and 'id = \\"gpt\\"' in text
    assert listed.exit_code == 0 and "evil_model_id_gpt" in listed.output and "feed" in listed.output


def test_opml_import_adds_each_feed_once_and_export_gives_them_back(tmp_path):
    (tmp_path / "subs.opml").write_text("""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Tech"><outline text="Arch news" type="rss" xmlUrl="https://archlinux.org/feeds/news/"/>
        <outline text="QEMU" xmlUrl="https://www.qemu.org/feed.xml"/></outline>
      <outline text="Arch again" xmlUrl="https://archlinux.org/feeds/news/"/>
      <outline text="Not a feed" xmlUrl="javascript:alert(1)"/></body></opml>""")
    first = sources_cli(tmp_path, "sources", "import", str(tmp_path / "subs.opml"))
    second = sources_cli(tmp_path, "sources", "import", str(tmp_path / "subs.opml"))
    assert first.exit_code == 0 and "added 2 of the 3 feeds" in first.output, first.output
    assert second.exit_code == 0 and "added 0 of the 3 feeds" in second.output
    exported = sources_cli(tmp_path, "sources", "export")
    assert exported.exit_code == 0
    (tmp_path / "back.opml").write_text(exported.output)
    from pipeline.sites import feed

    assert feed.opml_feeds((tmp_path / "back.opml").read_bytes()) == [
        ("https://archlinux.org/feeds/news/", "Arch news"), ("https://www.qemu.org/feed.xml", "QEMU")]
    broken = tmp_path / "broken.opml"
    broken.write_text("this is not xml at all")
    out = sources_cli(tmp_path, "sources", "import", str(broken))
    assert out.exit_code == 1 and "not an OPML file" in out.output and "Traceback" not in out.output


def test_with_more_than_two_sources_the_page_the_markdown_and_atom_group_by_source(tmp_path):
    """The day's page: a section per source, a filter by source; the Markdown digest and the Atom feed alike."""
    import asyncio
    from xml.etree import ElementTree

    from pipeline import refresh, serve

    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    shutil.copy(FEEDS / "hn-frontpage.xml", snapshot / "hnrss.xml")
    feed = Source("hnrss", plugins.site_kinds()["feed"], "https://hnrss.example/rss", "HN RSS", "HN RSS", 30)
    options = refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot, sources=("hn", "lobsters", "hnrss"))
    options.configured = {**options.configured, "hnrss": feed}
    report = refresh.refresh(options)
    assert report.status == "ok", report.errors
    app = serve.app(tmp_path / "news.db")
    page = asyncio.run(app.client.get("/digest")).text
    assert all(f'id="source-{slug}"' in page for slug in ("hn", "lobsters", "hnrss"))
    assert 'href="/digest/' in page and "?source=hnrss" in page
    only = asyncio.run(app.client.get(f"/digest/{report_day(tmp_path)}?source=hnrss")).text
    assert 'id="story-' in only
    assert set(re.findall(r'class="badge"[^>]*>([^<]+)<', only)) == {"HN RSS"}  # its stories alone
    digest = (tmp_path / "digests" / f"{report_day(tmp_path)}.md").read_text()
    assert "## HN RSS" in digest and "## HN" in digest and "## Lobsters" in digest
    atom = asyncio.run(app.client.get("/news/digest_feed.atom")).content
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in
              ElementTree.fromstring(atom).findall("{http://www.w3.org/2005/Atom}entry")]
    assert any(t.startswith("[HN RSS] ") for t in titles) and any(t.startswith("[Lobsters] ") for t in titles)
    one = asyncio.run(app.client.get("/news/digest_feed.atom?source=hnrss")).content
    assert all(e.findtext("{http://www.w3.org/2005/Atom}title").startswith("[HN RSS] ")
               for e in ElementTree.fromstring(one).findall("{http://www.w3.org/2005/Atom}entry"))


def report_day(folder) -> str:
    return sqlite3.connect(folder / "news.db").execute("SELECT substr(max(started_at), 1, 10) FROM runs").fetchone()[0]


def test_a_feed_item_also_on_hacker_news_is_one_story_with_both_discussions(tmp_path):
    from pipeline import refresh

    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    on_hn = [s for s in parse.parse_hn((SNAPSHOT / "hn.html").read_bytes()).stories if s.url][:3]
    items = "".join(f"<item><title>{s.title} (from the feed)</title><link>{s.url}</link>"
                    f"<guid>{s.source_id}</guid></item>" for s in on_hn)
    (snapshot / "blog.xml").write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
                                       f"{items}</channel></rss>")
    blog = Source("blog", plugins.site_kinds()["feed"], "https://blog.example/rss", "A blog", "Blog", 30)
    options = refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot, sources=("hn", "blog"))
    options.configured = {**options.configured, "blog": blog}
    assert refresh.refresh(options).status == "ok"
    conn = sqlite3.connect(tmp_path / "news.db")
    linked = conn.execute("SELECT a.source, b.source, a.canonical_url = b.canonical_url FROM story_links AS l "
                          "JOIN stories AS a ON a.id = l.story_id JOIN stories AS b ON b.id = l.linked_story_id "
                          "WHERE a.source = 'blog'").fetchall()
    assert linked == [("blog", "hn", 1)] * 3
    shown = conn.execute("SELECT canonical_url, count(*) FROM digest_stories JOIN stories AS s ON s.id = story_id "
                         "WHERE canonical_url IS NOT NULL GROUP BY canonical_url HAVING count(*) > 1").fetchall()
    assert shown == []  # each article once in the digest, whichever site it came from


def test_a_listing_shorter_than_its_kind_allows_is_a_layout_error_whatever_its_parser_says():
    from pipeline import refresh, sources

    class Strict(Listing):
        min_stories = 5

    source = Source("mine", Strict(), "https://example.org/list.json", "Mine", "Mine")
    body = json.dumps([{"id": 1, "title": "One story", "url": "https://example.org/1", "points": 1}]).encode()
    with pytest.raises(parse.LayoutError, match="only 1 stories on the listing .* has at least 5"):
        refresh.parse_listing(source, sources.Page("mine", body, None, source.url, "application/json"))
