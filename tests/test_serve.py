"""Datasette over a history built from the shipped snapshot with the rules model (in-process client, no port)."""

import asyncio
import html
import re
import sqlite3
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
import yaml
from datasette_dashboards import replace_opts_in_query

from pipeline import refresh, serve, store

from .helpers import SNAPSHOT


@pytest.fixture(scope="module")
def datasette(refreshed):
    return serve.app(refreshed)


def get_json(ds, path):
    response = asyncio.run(ds.client.get(path))
    assert response.status_code == 200, (path, response.text[:500])
    return response.json()


@pytest.mark.parametrize(
    "query,params,columns",
    [
        ("digest", "", {"title", "url", "summary", "tags", "score", "discussion_url", "also_discussed_at", "points",
                        "comments"}),
        ("digest", "date=" + "", {"title", "summary"}),
        ("story_history", "story_id=1", {"started_at", "rank", "points", "comments", "relevant", "score"}),
        ("trending_tags", "", {"tag", "last_7_days", "previous_7_days"}),
        ("search", "q=security", {"story_id", "title", "summary", "url"}),
        ("runs_health", "", {"id", "status", "model", "input_tokens", "output_tokens", "duration_s", "rejected",
                             "error"}),
    ],
)
def test_canned_queries_return_rows(datasette, query, params, columns):
    rows = get_json(datasette, f"/news/{query}.json?_shape=array&{params}")
    assert rows, query
    assert columns <= set(rows[0])


def test_digest_is_the_latest_runs_relevant_stories(datasette):
    rows = get_json(datasette, "/news/digest.json?_shape=array")
    assert all(r["summary"] and r["tags"] for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    day = rows[0]["started_at"][:10]
    assert get_json(datasette, f"/news/digest.json?_shape=array&date={day}") == rows
    assert get_json(datasette, "/news/digest.json?_shape=array&date=1999-01-01") == []


def test_full_text_search_finds_a_known_story(datasette):
    rows = get_json(datasette, "/news/search.json?_shape=array&q=airport+injection")
    assert rows[0]["title"] == "Bypassing airport security via SQL injection"
    rows = get_json(datasette, "/news/stories.json?_shape=array&_search=unminifying")
    assert [r["title"] for r in rows] == ["OpenAI is good at unminifying code"]


def test_search_with_fts_syntax_characters_does_not_error(datasette):
    get_json(datasette, '/news/search.json?_shape=array&q=%22unbalanced+(quote')


def test_atom_feed_has_one_entry_per_digest_story(datasette):
    digest = get_json(datasette, "/news/digest.json?_shape=array")
    response = asyncio.run(datasette.client.get("/news/digest_feed.atom"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ElementTree.fromstring(response.content)
    entries = feed.findall("a:entry", ns)
    assert [e.find("a:title", ns).text for e in entries] == [row["title"] for row in digest]
    first = entries[0]
    assert first.find("a:link", ns).get("href") == digest[0]["url"]
    assert first.find("a:content", ns).get("type") == "html"
    assert html.escape(digest[0]["summary"], quote=False) in first.find("a:content", ns).text
    assert all(e.find("a:author/a:name", ns).text == "newsreader" for e in entries)  # RFC 4287 wants an author


def test_the_feed_is_valid_on_an_empty_history(tmp_path):
    store.open_db(tmp_path / "news.db").conn.close()
    response = asyncio.run(serve.app(tmp_path / "news.db").client.get("/news/digest_feed.atom"))
    assert response.status_code == 200
    entries = ElementTree.fromstring(response.content).findall("{http://www.w3.org/2005/Atom}entry")
    assert [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries] == ["No digest yet"]


def test_search_with_an_empty_query_is_the_empty_state_not_an_error(datasette):
    for query in ("", "%20%20"):
        response = asyncio.run(datasette.client.get(f"/news/search?q={query}"))
        assert response.status_code == 200 and "syntax error" not in response.text
    assert get_json(datasette, "/news/search.json?_shape=array&q=") == []


def test_the_tag_facet_counts_single_tags(datasette):
    data = get_json(datasette, "/news/digest_stories.json?_facet_array=tag_list&_size=0")
    values = {item["value"] for item in data["facet_results"]["tag_list"]["results"]}
    assert values and all("," not in value for value in values) and "security" in values


def test_tags_over_time_chart(datasette):
    response = asyncio.run(datasette.client.get("/-/dashboards/trends"))
    assert response.status_code == 200
    assert "Stories per tag per day" in response.text
    assert "vega-lite.min.js" in response.text  # bundled with the plugin: renders offline
    chart = yaml.safe_load(store.METADATA_PATH.read_text())["plugins"]["datasette-dashboards"]["trends"]["charts"][
        "tags-over-time"]
    assert chart["display"]["encoding"]["color"]["scale"]["scheme"] == "category20"  # 15 tags, 15 distinct colours
    for options in ({}, {"tag": "security"}):  # the dashboard's tag filter, as the plugin fills it in
        sql = replace_opts_in_query(chart["query"], options)
        rows = get_json(datasette, "/news.json?_shape=array&sql=" + quote(sql) + "".join(
            f"&{key}={value}" for key, value in options.items()))
        assert {"day", "tag", "stories"} <= set(rows[0])
        assert not options or {row["tag"] for row in rows} == {"security"}


HOSTILE_TITLE = "<script>alert(1)</script> SQL injection in Postgres"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A snapshot whose pages carry a script-tag title and a javascript: link."""
    folder = tmp_path_factory.mktemp("hostile")
    snap = folder / "snap"
    snap.mkdir()
    hn = (SNAPSHOT / "hn.html").read_text().replace(
        "Bypassing airport security via SQL injection", html.escape(HOSTILE_TITLE), 1
    ).replace('href="https://blog.kagi.com/dawn-new-era-search"', 'href="javascript:alert(document.cookie)"', 1)
    (snap / "hn.html").write_text(hn)
    (snap / "lobsters.html").write_text((SNAPSHOT / "lobsters.html").read_text())
    db = folder / "news.db"
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=snap))
    assert report.status == "partial"  # the javascript: story was refused and recorded
    return serve.app(db), db


def test_javascript_link_is_refused_at_the_door_and_recorded(hostile):
    """The parser refuses it (the schema would too: test_schema.py), and says so in rejections."""
    _, db = hostile
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM stories WHERE url LIKE 'javascript:%'").fetchone() == (0,)
    item, reason = conn.execute("SELECT item, reason FROM rejections").fetchone()
    assert item == "story 41393475"
    assert reason == "refused at parse: not an http(s) link: 'javascript:alert(document.cookie)'"


@pytest.mark.parametrize(
    "path", ["/news/digest", "/news/stories", "/news/digest_stories", "/news/search?q=script", "/news/stories/1",
             "/digest", "/story/1", "/tag/security"]
)
def test_hostile_title_is_never_markup(hostile, path):
    ds, _ = hostile
    response = asyncio.run(ds.client.get(path))
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "javascript:alert" not in response.text


def test_hostile_title_is_escaped_in_feed_and_markdown_digest(hostile):
    ds, db = hostile
    feed = asyncio.run(ds.client.get("/news/digest_feed.atom")).text
    assert "<script>" not in feed and "&lt;script&gt;alert(1)&lt;/script&gt;" in feed
    body = sqlite3.connect(db).execute("SELECT body FROM digests").fetchone()[0]
    assert "\\<script\\>alert(1)\\</script\\>" in body
    rendered = asyncio.run(ds.client.get("/news/digests")).text  # the Markdown, rendered and sanitised
    assert "<script>alert(1)" not in rendered and "&lt;script&gt;alert(1)" in rendered


def test_titles_link_to_their_story_as_escaped_text(datasette, hostile):
    page = asyncio.run(datasette.client.get("/news/digest")).text
    link = '<a href="https://ian.sh/tsa" rel="nofollow noopener">Bypassing airport security via SQL injection</a>'
    assert link in page
    ds, _ = hostile
    page = asyncio.run(ds.client.get("/news/digest")).text
    assert ('<a href="https://ian.sh/tsa" rel="nofollow noopener">&lt;script&gt;alert(1)&lt;/script&gt; '
            "SQL injection in Postgres</a>") in page


def test_visitors_cannot_write(datasette):
    response = asyncio.run(datasette.client.get("/news.json?sql=" + quote("DELETE FROM stories")))
    assert response.status_code == 400
    rows = get_json(datasette, "/news.json?_shape=array&sql=" + quote("SELECT count(*) AS n FROM stories"))
    assert rows[0]["n"] == 55


BIG_TABLES = {"stories", "sightings", "judgments", "story_tags", "story_links", "rejections", "run_sites", "digests"}


def test_canned_queries_use_indexes_not_scans_of_history_tables(datasette):
    """EXPLAIN QUERY PLAN of every canned query (and the view under it): no full scan of a table that grows."""
    metadata = serve.metadata_for(datasette.databases["news"].path, votes=True)
    db = datasette.databases["news"].path
    conn = sqlite3.connect(db)
    serve.prepare_connection(conn, "news", datasette)  # the SQL functions the served queries use
    views = " ".join(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'view'"))
    params = {"date": "", "story_id": 1, "q": "security", "source": ""}
    for name, query in metadata["databases"]["news"]["queries"].items():
        sql = query["sql"].replace("escape_fts(:q)", ":q")
        aliases = {alias: table for table, alias in re.findall(r"(?:FROM|JOIN)\s+(\w+)(?:\s+AS)?\s+(\w+)", sql + views)}
        scans = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params) if row[3].startswith("SCAN ")]
        scanned = {aliases.get(line.split()[1], line.split()[1]) for line in scans}
        assert not scanned & BIG_TABLES, (name, scans)


def test_the_markdown_digest_is_rendered_where_datasette_shows_it(datasette):
    page = asyncio.run(datasette.client.get("/news/digests")).text
    assert "<h2>security</h2>" in page and "<li><a href=" in page  # rendered, by datasette-render-markdown


def test_installing_newsreader_leaves_every_other_datasette_alone(tmp_path):
    """The plugin is registered by `newsreader serve` (and serve.app), not as an entry point: a plain
    `datasette` in the same environment, on another file, keeps printf and has no /digest route."""
    import subprocess
    import sys
    from pathlib import Path

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    datasette = str(Path(sys.executable).with_name("datasette"))

    def get(path):
        return subprocess.run([datasette, "serve", str(other), "--get", path], capture_output=True, text=True,
                              timeout=60)

    printed = get("/other.json?sql=select+printf('%25s-%25s',+'a',+'b')+as+v&_shape=array")
    assert printed.returncode == 0 and '"v": "a-b"' in printed.stdout, printed.stdout + printed.stderr
    assert get("/digest").returncode != 0  # --get exits non-zero on a 404
    plugins = get("/-/plugins.json")
    assert "newsreader" not in plugins.stdout and "pipeline" not in plugins.stdout, plugins.stdout


def test_newsreader_serve_runs_datasette_with_its_plugin(tmp_path, refreshed_copy):
    """What `newsreader serve` execs: Datasette's own CLI with the plugin, so /digest is there (and the
    feedback database it names exists, on a history that never had one)."""
    import subprocess

    assert not store.feedback_path(refreshed_copy).exists()
    args = serve.datasette_args(str(refreshed_copy), "127.0.0.1", 8001, votes=True, metadata_dir=tmp_path)
    args = args[:args.index("--host")] + ["--get", "/digest"]
    page = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert page.returncode == 0 and "<html" in page.stdout.lower(), page.stderr[-2000:]
