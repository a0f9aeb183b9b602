"""The day's page, a story's page and a tag's page, served whatever the history file is called.

In process (Datasette's own client, as `newsreader serve` configures it); the real-browser
checks (widths, clicks) are in test_browser.py.
"""

import asyncio
import re
import sqlite3

import markupsafe
import pytest
import requests

from pipeline import serve, store

from .helpers import served, two_day_history


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory):
    """A two-day history in somewhere/else.db (not news.db), served with voting on."""
    db = two_day_history(tmp_path_factory.mktemp("somewhere") / "else.db")
    return db, serve.app(db)


def get(ds, path, **kwargs):
    return asyncio.run(ds.client.get(path, **kwargs))


def test_every_page_answers_whatever_the_history_is_called(elsewhere):
    db, ds = elsewhere
    day = sqlite3.connect(db).execute("SELECT substr(max(started_at), 1, 10) FROM runs").fetchone()[0]
    for path in ("/", "/else", "/digest", f"/digest/{day}", "/story/1", "/tag/security", "/else/search?q=",
                 "/else/search?q=security", "/else/digest_feed.atom", "/-/dashboards/trends", "/else/runs_health",
                 "/else/digest", "/else/story_history?story_id=1", "/feedback"):
        response = get(ds, path)
        assert response.status_code == 200, (path, response.text[:300])
        assert "Database does not exist" not in response.text and "Table not found" not in response.text
    assert get(ds, "/digest/1999-01-01").status_code == 404 and get(ds, "/story/999999").status_code == 404
    assert get(ds, "/tag/no-such-tag").status_code == 404


def test_the_day_shows_every_relevant_story_new_ones_first(elsewhere):
    db, ds = elsewhere
    page = get(ds, "/digest").text
    conn = sqlite3.connect(db)
    rows = conn.execute("""SELECT d.story_id, d.title, d.summary, d.tags, s.first_seen_run = d.run_id
                           FROM digest_stories d JOIN stories s ON s.id = d.story_id
                           WHERE d.run_id = (SELECT max(id) FROM runs)""").fetchall()
    new, still = page.index('id="new-today"'), page.index('id="still-on-front-page"')
    assert new < still
    assert sum(1 for *_, is_new in rows if is_new) >= 5 and sum(1 for *_, is_new in rows if not is_new) >= 20
    for story_id, title, summary, tags, is_new in rows:
        block = page.index(f'id="story-{story_id}"')
        assert (new < block < still) if is_new else (block > still), title
        assert escape(title) in page and escape(summary) in page
        for tag in tags.split(", "):
            assert f'href="/tag/{tag}"' in page
    yesterday = conn.execute("SELECT substr(min(started_at), 1, 10) FROM runs").fetchone()[0]
    assert f'href="/digest/{yesterday}"' in page  # the previous day
    assert "Nothing new since the day before" in get(ds, f"/digest/{yesterday}").text or \
        'id="new-today"' in get(ds, f"/digest/{yesterday}").text


def escape(text: str) -> str:
    """As the templates escape text (Jinja's markupsafe)."""
    return str(markupsafe.escape(text))


def csrf(ds, path: str):
    response = get(ds, path)
    token = re.search(r'name="csrftoken" value="([^"]+)"', response.text).group(1)
    return token, response.cookies


def test_a_vote_is_stored_in_feedback_db_and_shown_on_the_page(elsewhere):
    db, ds = elsewhere
    story = sqlite3.connect(db).execute("SELECT story_id FROM digest_stories ORDER BY run_id DESC LIMIT 1"
                                        ).fetchone()[0]
    token, cookies = csrf(ds, "/digest")
    response = asyncio.run(ds.client.post("/feedback/vote", data={"story_id": story, "vote": "up",
                                                                  "csrftoken": token}, cookies=dict(cookies),
                                          headers={"Origin": "http://localhost"}))
    assert response.status_code == 302 and response.headers["location"] == "/digest"
    assert sqlite3.connect(store.feedback_path(db)).execute("SELECT vote FROM feedback WHERE story_id = ?",
                                                            [story]).fetchone() == ("up",)
    assert f'id="story-{story}" data-story="{story}" data-vote="up"' in get(ds, "/digest").text
    assert sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master WHERE name = 'feedback'").fetchone() == (0,)


def test_a_vote_without_the_csrf_token_is_refused_by_the_real_server(elsewhere):
    """A browser that has visited the page carries its cookie; a forged form posting with it, but without the
    page's token, is refused (asgi-csrf, as Datasette uses it). Datasette's in-process client skips the check."""
    db, _ = elsewhere
    with served(db) as (base, _banner), requests.Session() as browser:
        for path in ("/digest", "/story/1", "/tag/security", "/else/search?q=", "/else/digest_feed.atom",
                     "/-/dashboards/trends", "/else/digests"):  # `newsreader serve --db somewhere/else.db`
            assert browser.get(base + path, timeout=10).status_code == 200, path
        assert browser.get(f"{base}/digest", timeout=10).cookies.get("ds_csrftoken") or browser.cookies.get(
            "ds_csrftoken")
        same_origin = {"Origin": base}  # so that the token is what is checked here
        forged = browser.post(f"{base}/feedback/vote", data={"story_id": 2, "vote": "down"}, timeout=10,
                              headers=same_origin, allow_redirects=False)
        wrong = browser.post(f"{base}/feedback/vote", data={"story_id": 2, "vote": "down", "csrftoken": "x"},
                             headers=same_origin, timeout=10, allow_redirects=False)
    assert forged.status_code == 403 and wrong.status_code == 403
    assert sqlite3.connect(store.feedback_path(db)).execute("SELECT count(*) FROM feedback WHERE story_id = 2"
                                                            ).fetchone() == (0,)


def test_with_voting_off_there_are_no_buttons_and_the_query_is_refused(elsewhere):
    db, _ = elsewhere
    ds = serve.app(db, votes=False)
    page = get(ds, "/digest").text
    assert 'class="vote"' not in page and "/feedback/vote" not in page
    response = asyncio.run(ds.client.post("/feedback/vote", data={"story_id": 1, "vote": "up"},
                                          headers={"Origin": "http://localhost"}))
    assert response.status_code == 403  # refused to everyone (the in-process client skips only CSRF)
    assert sqlite3.connect(store.feedback_path(db)).execute("SELECT count(*) FROM feedback WHERE story_id = 1"
                                                            ).fetchone() == (0,)


def test_the_story_page_has_every_sighting_judgment_and_discussion(elsewhere):
    db, ds = elsewhere
    story, title = sqlite3.connect(db).execute(
        "SELECT s.id, s.title FROM stories s WHERE (SELECT count(*) FROM sightings WHERE story_id = s.id) = 2 "
        "AND s.source = 'hn' LIMIT 1").fetchone()
    page = get(ds, f"/story/{story}").text
    assert escape(title) in page and page.count("<tr><td>") == 2 and "carried over from run 1" in page
    assert 'href="https://news.ycombinator.com/item?id=' in page


def test_the_tag_page_lists_stories_with_that_tag_newest_first(elsewhere):
    db, ds = elsewhere
    page = get(ds, "/tag/security").text
    titles = [title for (title,) in sqlite3.connect(db).execute(
        "SELECT DISTINCT s.title FROM story_tags t JOIN stories s ON s.id = t.story_id WHERE t.tag = 'security'")]
    assert titles and all(escape(t) in page for t in titles)


def test_serve_takes_the_next_free_port_when_the_default_is_busy():
    import socket

    import click

    from pipeline.cli import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert free_port("127.0.0.1", port, tries=20) > port  # the default: the next free one
        with pytest.raises(click.ClickException, match=f"port {port} on 127.0.0.1 is in use: choose another"):
            free_port("127.0.0.1", port, tries=1)  # a port the user chose: one clear error


def test_a_history_file_with_spaces_and_dots_in_its_name_is_served_too(tmp_path, refreshed_copy):
    db = refreshed_copy.rename(tmp_path / "my news.v2.db")
    ds = serve.app(db)
    index = get(ds, "/").text
    links = set(re.findall(r'href="(/my\+news~2Ev2/[^"#]*)"', index))
    assert links >= {"/my+news~2Ev2/search", "/my+news~2Ev2/runs_health"}, links  # the index's own links work
    for path in ["/digest", "/story/1", "/tag/security", "/-/dashboards/trends", *links]:
        assert get(ds, path).status_code == 200, path
