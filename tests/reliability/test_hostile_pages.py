"""Hostile front pages through the real CLI: a bad story costs that story, never the site, never a traceback.

Each case edits one story of the real snapshot the way a stranger could (a title, a link,
a number, a date) and runs `newsreader refresh`. The story is either refused with a
reason (a row in `rejections`, the run `partial`) or lands with the field made safe;
every other story of both sites lands, and the history holds nothing malformed.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import SNAPSHOT, run_one_rows
from .figures import after_module, record

NEWSREADER = str(Path(sys.executable).with_name("newsreader"))
HN_TITLE = "Bypassing airport security via SQL injection"
HN_LINK = 'href="https://ian.sh/tsa"'
HN_AGE = 'title="2024-08-29T15:53:08"'
LOBSTERS_LINK = 'href="https://dillo-browser.org/lab/web-fork/"'
LOBSTERS_TIME = 'data-at-unix="1778320997"'

# name: (site, text in the page, replacement, what must happen to that story)
CASES = {
    "HN age that is not a time": ("hn", HN_AGE, 'title="yesterday"', {"submitted_at": None}),
    "HN Unix time of 20 digits": ("hn", HN_AGE, 'title="2024-08-29T15:53:08 12345678901234567890"',
                                  {"submitted_at": "2024-08-29T15:53:08Z"}),
    "HN Unix time with a superscript digit": ("hn", HN_AGE, 'title="2024-08-29T15:53:08 17248\u00b2646"',
                                              {"submitted_at": "2024-08-29T15:53:08Z"}),
    "HN ISO time out of range": ("hn", HN_AGE, 'title="99999-01-01T00:00:00"', {"submitted_at": None}),
    "HN rank of 5,000 digits": ("hn", 'class="rank">1.', 'class="rank">' + "9" * 5000 + ".", "refused"),
    "HN comment count of 5,000 digits": ("hn", "96&nbsp;comments", "9" * 5000 + "&nbsp;comments", "refused"),
    "HN points of 5,000 digits": ("hn", "412 points", "9" * 5000 + " points", "refused"),
    "HN broken IPv6 link": ("hn", HN_LINK, 'href="http://[::1/x"', "refused"),
    "HN link with user info": ("hn", HN_LINK, 'href="https://news.ycombinator.com:pw@evil.example/x"', "refused"),
    "HN protocol-relative link": ("hn", HN_LINK, 'href="//evil.example/x"', "refused"),
    "HN javascript: link": ("hn", HN_LINK, 'href="javascript:alert(1)"', "refused"),
    "HN link with an invisible character": ("hn", HN_LINK, 'href="https://ian.sh/t\u200esa"', "refused"),
    "HN title with a bidi override": ("hn", HN_TITLE, "\u202e" + HN_TITLE, {"title": HN_TITLE}),
    "HN title with zero-width and C1 characters": ("hn", HN_TITLE, "Bypassing\u200b airport\u0085 security via "
                                                   "SQL\u2066 injection\ufeff", {"title": HN_TITLE}),
    "HN author with a bidi isolate": ("hn", ">iancarroll<", ">ian\u2067carroll<", {"author": "iancarroll"}),
    "HN item id of 40 digits": ("hn", "id='41392128'", "id='" + "4" * 40 + "'", "refused"),
    "Lobsters Unix time that overflows": ("lobsters", LOBSTERS_TIME, 'data-at-unix="' + "9" * 30 + '"',
                                          {"submitted_at": None}),
    "Lobsters time title far in the future": ("lobsters", LOBSTERS_TIME,
                                              'data-at-unix="x" title="9999-12-31 23:59:59 -2359"',
                                              {"submitted_at": None}),
    "Lobsters broken IPv6 link": ("lobsters", LOBSTERS_LINK, 'href="http://[::1/x"', "refused"),
    "Lobsters link with user info": ("lobsters", LOBSTERS_LINK, 'href="https://lobste.rs@evil.example/"', "refused"),
    "Lobsters short id with markup": ("lobsters", 'data-shortid="ho7nqt"', 'data-shortid="ho7&lt;b&gt;"', "refused"),
    "Lobsters score of 5,000 digits": ("lobsters", 'href="/login">37<', 'href="/login">' + "9" * 5000 + "<",
                                       "refused"),
}
SEEN = {"cases": 0, "refused": 0, "landed": 0}


def refresh(db: Path, snapshot: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NEWSREADER, "refresh", "--db", str(db), "--snapshot", str(snapshot)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_story_costs_only_itself(tmp_path, name):
    site, old, new, expected = CASES[name]
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    page = snapshot / f"{site}.html"
    html = page.read_text(encoding="utf-8")
    assert old in html
    page.write_text(html.replace(old, new, 1), encoding="utf-8")
    db = tmp_path / "news.db"
    done = refresh(db, snapshot)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    conn = sqlite3.connect(db)
    counts = dict(conn.execute("SELECT source, count(*) FROM stories GROUP BY source"))
    expected_counts = {"hn": 30, "lobsters": 25}
    first = "41392128" if site == "hn" else "ho7nqt"
    row = conn.execute("SELECT title, author, submitted_at, url FROM stories WHERE source = ? AND source_id = ?",
                       [site, first]).fetchone()
    rejections = conn.execute("SELECT source, item, reason FROM rejections").fetchall()
    status = conn.execute("SELECT status FROM runs").fetchone()[0]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    if expected == "refused":
        expected_counts[site] -= 1
        assert row is None
        assert status == "partial" and len(rejections) == 1, rejections
        assert rejections[0][0] == site and rejections[0][2].startswith("refused at parse: ")
        assert "\n" not in rejections[0][2] and len(rejections[0][2]) < 200
        SEEN["refused"] += 1
    else:
        assert status == "ok" and rejections == []
        found = dict(zip(["title", "author", "submitted_at", "url"], row, strict=False))
        assert {key: found[key] for key in expected} == expected
        SEEN["landed"] += 1
    assert counts == expected_counts  # every other story of both sites landed
    SEEN["cases"] += 1


def test_every_hostile_edit_at_once_leaves_earlier_history_unchanged(tmp_path, refreshed_copy):
    """All the edits above on one day's pages, refreshed into a history that has a day already."""
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    refused = {"hn": set(), "lobsters": set()}
    for site, old, new, expected in CASES.values():
        page = snapshot / f"{site}.html"
        html = page.read_text(encoding="utf-8")
        if old in html:  # edits of the same spot: the first one wins
            page.write_text(html.replace(old, new, 1), encoding="utf-8")
            if expected == "refused":
                refused[site].add(old)
    before = run_one_rows(refreshed_copy)
    done = refresh(refreshed_copy, snapshot)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert run_one_rows(refreshed_copy) == before  # every row of the earlier run, and the schema, unchanged
    conn = sqlite3.connect(refreshed_copy)
    assert conn.execute("SELECT status FROM runs WHERE id = 2").fetchone() == ("partial",)
    assert dict(conn.execute("SELECT source, status FROM run_sites WHERE run_id = 2")) == {"hn": "ok",
                                                                                           "lobsters": "ok"}
    assert conn.execute("SELECT count(*) FROM rejections WHERE run_id = 2").fetchone()[0] >= 2
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_parse_reports_refused_rows_on_stderr_and_prints_the_rest(tmp_path):
    html = (SNAPSHOT / "hn.html").read_text(encoding="utf-8")
    page = tmp_path / "hn.html"
    page.write_text(html.replace(HN_LINK, 'href="http://[::1/x"', 1).replace(HN_AGE, 'title="yesterday"'),
                    encoding="utf-8")
    done = subprocess.run([NEWSREADER, "parse", "hn", str(page)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 29
    assert done.stderr.strip().splitlines() == [
        "warning: story 41392128 refused at parse: unreadable link (Invalid IPv6 URL)"]


@after_module(lambda: any(SEEN.values()))
def hostile_page_figures():
    record("hostile front pages through the CLI (one story edited each)", len(CASES), len(CASES), 0, 0,
           f"{SEEN['refused']} stories refused with a reason, {SEEN['landed']} landed made safe; "
           "every other story of both sites landed; 0 tracebacks")


def test_a_url_with_a_parenthesis_stays_one_link_in_the_markdown_digest(tmp_path):
    """`)` in a story's URL must not close the digest's Markdown link and open a `javascript:` one."""
    import lxml.html
    import markdown

    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    page = snapshot / "hn.html"
    hostile = "https://ian.sh/tsa)[click](javascript:alert(1)"
    page.write_text(page.read_text(encoding="utf-8").replace(HN_LINK, f'href="{hostile}"', 1), encoding="utf-8")
    done = refresh(tmp_path / "news.db", snapshot)
    assert done.returncode == 0, done.stderr
    digest = next((tmp_path / "digests").glob("*.md")).read_text(encoding="utf-8")
    hrefs = lxml.html.fromstring(markdown.markdown(digest)).xpath("//a/@href")
    assert hrefs and all(href.startswith(("https://", "http://")) for href in hrefs), hrefs
    assert "https://ian.sh/tsa%29%5Bclick%5D%28javascript:alert%281%29" in hrefs


def test_a_page_of_hundreds_of_rows_is_capped_at_max_candidates(tmp_path):
    """A front page has 30 stories; a page with 900 more gets its first 100 judged and one line about the rest."""
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    page = snapshot / "hn.html"
    html = page.read_text(encoding="utf-8")
    start = html.index("<tr class='athing' id='41392128'>")
    end = html.index("<tr class='athing' id='41393475'>")
    row = html[start:end]
    rows = "".join(row.replace("41392128", str(50_000_000 + i)).replace('class="rank">1.', f'class="rank">{i + 1}.')
                   for i in range(900))
    page.write_text(html[:start] + rows + html[start:], encoding="utf-8")
    done = refresh(tmp_path / "news.db", snapshot)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT count(*) FROM sightings s JOIN stories t ON t.id = s.story_id "
                        "WHERE t.source = 'hn'").fetchone() == (100,)
    assert conn.execute("SELECT count(*) FROM judgments").fetchone() == (125,)  # 100 hn + 25 lobsters
    assert conn.execute("SELECT item, reason FROM rejections").fetchall() == [
        ("page", "830 stories after the first 100 not judged (max_candidates)")]
    conn.close()
