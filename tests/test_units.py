"""Unit tests for the pieces the end-to-end tests exercise only as a whole: the rules classifier,
canonical URLs, cross-posts and the Markdown digest."""

import sqlite3

import pytest

from pipeline import collect, parse, rules, schema, store, sync, text
from pipeline.prompt import Candidate

from .helpers import LoopbackServer, with_sites

VOCABULARY = set(schema.reference_vocabulary())


def candidate(title, domain=None, site_tags=(), kind="story", points=10, comments=2):
    return Candidate(1, title, domain, list(site_tags), points, comments, kind)


@pytest.mark.parametrize("title, domain, site_tags, relevant, tag", [
    ("Rust 1.80 stabilises lazy cell and exclusive ranges", "blog.rust-lang.org", (), 1, "rust"),
    ("Postgres 17 query planner improvements for large joins", "postgresql.org", (), 1, "databases"),
    ("A kernel bug in io_uring led to a local privilege escalation", None, ("security",), 1, "security"),
    ("Fintech startup raises $50M Series B to expand into Europe", "techcrunch.com", (), 0, "business"),
    ("The history of the Roman aqueducts", "wikipedia.org", ("historical",), 0, "culture"),
])
def test_the_rules_classifier_on_plain_cases(title, domain, site_tags, relevant, tag):
    verdict = rules.judge(candidate(title, domain, site_tags), VOCABULARY, "hn")
    assert verdict.relevant == relevant and tag in verdict.tags
    assert 1 <= len(verdict.tags) <= 3 and set(verdict.tags) <= VOCABULARY
    assert 0 <= verdict.score <= 100 and (verdict.score >= 50) == bool(relevant)
    assert title.lower() not in verdict.summary.lower() and 10 <= len(verdict.summary) <= 400


def test_a_job_post_is_never_relevant():
    verdict = rules.judge(candidate("Acme (YC S24) is hiring Rust engineers", kind="job", points=None), VOCABULARY,
                          "hn")
    assert verdict.relevant == 0


def test_the_profile_moves_topics_in_and_out():
    interests = rules.interests_from("Business strategy and science. Not interested in security or rust.",
                                     VOCABULARY)
    assert {"business", "science"} <= interests.core
    assert {"security", "rust"} <= interests.other and not {"security", "rust"} & interests.core
    startup = candidate("Startup raises $50M Series B to expand into Europe", "techcrunch.com")
    assert rules.judge(startup, VOCABULARY, "hn", interests).relevant == 1
    assert rules.judge(candidate("A new Rust borrow checker", "rust-lang.org"), VOCABULARY, "hn",
                       interests).relevant == 0


@pytest.mark.parametrize("url, key", [
    ("https://www.Example.com/post/", "example.com/post"),
    ("http://example.com/post#comments", "example.com/post"),
    ("https://example.com/post?utm_source=hn&utm_medium=x&id=3", "example.com/post?id=3"),
    ("https://example.com/post?ref=lobsters&fbclid=abc", "example.com/post"),
    ("https://example.com/", "example.com"),
    ("https://example.com/a?b=1&a=2", "example.com/a?b=1&a=2"),  # meaningful query order is kept
    (None, None),
    ("", None),
])
def test_canonical_urls(url, key):
    assert parse.canonical_url(url) == key


def test_the_same_article_on_both_sites_is_one_cross_post():
    def story(source, sid, url):
        return parse.Story(source, sid, 1, "A title", url, f"https://{source}.example/{sid}", None, 1, 1, None, None)

    hn = [story("hn", "1", "https://www.example.com/a/?utm_source=hn"), story("hn", "2", None)]
    lobsters = [story("lobsters", "x1", "http://example.com/a"), story("lobsters", "x2", "https://other.example/")]
    assert collect.cross_posts([*hn, *lobsters]) == [(("hn", "1"), ("lobsters", "x1"))]


def test_the_markdown_digest_groups_by_tag_and_escapes(tmp_path):
    history = with_sites(store.open_db(tmp_path / "news.db"))
    conn = history.conn
    run_id, _ = sync.start_run(conn, "rules", "jail")
    with schema.transaction(conn):
        for i, (title, url, tags) in enumerate([
            ("Rust *traits* [explained]", "https://example.com/a(1)", ["rust"]),
            ("Postgres internals", "https://example.com/pg", ["databases"]),
            ("More Rust", "https://example.com/more", ["rust"]),
        ], start=1):
            story = parse.Story("hn", str(i), i, title, url, f"https://news.ycombinator.com/item?id={i}",
                                "example.com", 10 * i, i, "someone", None)
            story_id = schema.insert_story(conn, None, story, run_id)
            schema.insert_sighting(conn, run_id, story_id, story)
            conn.execute("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                         "VALUES (?, ?, 1, ?, ?, 'on topic')",
                         [run_id, story_id, 90 - i, f"Why story number {i} matters to this reader."])
            for tag in tags:
                conn.execute("INSERT INTO story_tags VALUES (?, ?, ?)", [run_id, story_id, tag])
    digest = collect.compose_digest(conn, run_id, None)
    lines = digest.splitlines()
    assert lines[0].startswith("# newsreader digest — ")
    assert lines[2] == "3 relevant stories today: rust (2), databases (1)."
    assert lines.index("## rust") < lines.index("## databases")
    assert ("- [Rust \\*traits\\* \\[explained\\]](https://example.com/a%281%29) — Why story number 1 matters "
            "to this reader. ([HN](https://news.ycombinator.com/item?id=1); 10 points · 1 comments)") in lines
    assert collect.compose_digest(conn, run_id + 1, None) is None
    with pytest.raises(sqlite3.IntegrityError):  # the schema still guards what the digest reads
        conn.execute("INSERT INTO story_tags VALUES (?, 1, 'not-a-tag')", [run_id])


def test_stored_errors_name_files_without_their_folders_and_keep_closing_tags(tmp_path):
    """A run record names a file by its last part (Datasette publishes it); `</code>` in a model's error is
    a closing tag, not a path (it read `<code>`, and the model was told the wrong tag)."""
    stored = text.without_paths(f"no <code>x</code> in {tmp_path}/sandboxes/1/hn.db or /home/me/.ssh/id", tmp_path)
    assert stored == "no <code>x</code> in sandboxes/1/hn.db or id"


def test_a_loopback_server_is_silent_about_a_client_that_went_away_and_not_about_a_bug(capfd):
    """Many tests' clients give up on purpose; a traceback of that on stderr would land in whatever later test
    of the same worker is capturing a command's output. A handler's own bug is still printed."""
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            raise BrokenPipeError if self.path == "/gone" else ValueError("a bug in the handler")

    server = LoopbackServer(Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in ("/gone", "/bug"):
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5)
            if path == "/gone":
                assert capfd.readouterr().err == ""
    finally:
        server.shutdown()
        server.server_close()
    assert "ValueError: a bug in the handler" in capfd.readouterr().err
