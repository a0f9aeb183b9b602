"""Helpers shared by test modules (fixtures live in conftest.py; plain functions live here)."""

import hashlib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from smolagents import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from pipeline import agent, parse, prompt, rules, sandbox, schema

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"  # the team's labelled pages, beside the repo
FRESH = SHARED / "fresh" / "labels.csv"  # four pages the rules were never written on: they measure learning
DEV = SHARED / "labels.csv"  # the four development pages the rules were written on
SNAPSHOT = FIXTURES / "snapshot"


class LoopbackServer(ThreadingHTTPServer):
    """A test's HTTP server on 127.0.0.1 (a free port), each request in a daemon thread. Many tests are about
    a client giving up (a timeout, a cap, a deadline), so a request whose client has gone (an OSError) is not
    printed: socketserver would print it on whatever stderr is current, which a later test of the same worker
    may be capturing as a command's output."""

    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(db, *args: str):
    """`newsreader serve --db DB` on a free loopback port; yields (base URL, the banner line it printed)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--db", str(db), "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    banner = proc.stdout.readline()
    # Keep reading its log: a full pipe would block the server on its next log line.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"newsreader serve did not start: {proc.stdout.read()}")
    try:
        yield f"http://127.0.0.1:{port}", banner
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# Out of the interpreter, lazily through map() so no module object is ever checked: the escape
# issue 14 describes. `run(cmd)` is subprocess.getoutput in whatever process runs this code,
# `environ` its os.environ, `mods` its sys.modules.
ESCAPE_TO_PROCESS = """
g = (x for x in [1])
fr = g.gi_frame
ga = fr.f_locals['static_tools']['getattr']
get = next(map(ga, map(ga, [fr], ['f_globals']), ['get']))
mods = next(map(ga, map(ga, map(get, ['inspect']), ['sys']), ['modules']))
run = next(map(ga, map(mods.get, ['subprocess']), ['getoutput']))
environ = next(map(ga, map(mods.get, ['os']), ['environ']))
"""


VOCABULARY = {
    "ai": "AI", "programming": "languages", "python": "Python", "rust": "Rust", "go": "Go", "javascript": "JS",
    "web": "web", "databases": "databases", "devops": "devops", "security": "security", "systems": "systems",
    "hardware": "hardware", "science": "science", "business": "business", "culture": "culture",
}


class ScriptedModel(Model):
    """A model that answers step N with script[N](task) -> code (or a plain string reply)."""

    def __init__(self, *script, delay: float = 0.0, meet: threading.Barrier | None = None):
        super().__init__(model_id="scripted")
        self.script = list(script)
        self.calls = 0
        self.delay = delay
        self.meet = meet  # every model sharing it waits at its first call until all have arrived
        self.prompt_chars: list[int] = []  # size of what the model was shown, per call

    def generate(self, messages, stop_sequences=None, **kwargs):
        task = next(rules.text_of(m) for m in messages if prompt.CANDIDATES_MARKER in rules.text_of(m))
        self.prompt_chars.append(sum(len(rules.text_of(m)) for m in messages))
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.meet is not None and self.calls == 1:
            self.meet.wait()
        code = step(task) if callable(step) else step
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: scripted.\n<code>\n{code}\n</code>",
                           token_usage=TokenUsage(100, 20))


def make_box(tmp_path, source="hn", run_id=1):
    html = (SNAPSHOT / f"{source}.html").read_text()
    return sandbox.create(tmp_path / f"{source}-{run_id}.db", source, run_id, "2026-11-25T08:00:00Z",
                          parse.parse(source, html))


def judged_box(tmp_path, source="hn", run_id=1):
    """A sandbox the rules model has fully judged, for a run started in `history`."""
    box = make_box(tmp_path, source, run_id=run_id)
    result = agent.judge_site(agent.Site(box), ScriptedModel(rules.code_for), vocabulary=VOCABULARY)
    assert result.status == "ok", result.error
    return result


def judgments(db):
    conn = sqlite3.connect(db)
    return conn.execute(
        """
        SELECT s.source, s.source_id, j.relevant, j.score, j.summary, j.reason,
               (SELECT group_concat(tag) FROM (SELECT tag FROM story_tags t WHERE t.run_id = j.run_id
                 AND t.story_id = j.story_id ORDER BY tag))
        FROM judgments j JOIN stories s ON s.id = j.story_id ORDER BY s.source, s.source_id
        """
    ).fetchall()


def run_one_rows(db) -> str:
    """Content hash of everything run 1 wrote (rows later runs never change), and the schema."""
    conn = sqlite3.connect(db)
    digest = hashlib.sha256()
    for query in ("SELECT * FROM runs WHERE id = 1", "SELECT * FROM run_sites WHERE run_id = 1",
                  "SELECT * FROM sightings WHERE run_id = 1", "SELECT * FROM judgments WHERE run_id = 1",
                  "SELECT * FROM story_tags WHERE run_id = 1", "SELECT * FROM digests WHERE run_id = 1",
                  "SELECT id, source, source_id, title, url FROM stories WHERE first_seen_run = 1",
                  "SELECT * FROM tags", "SELECT * FROM sources"):
        rows = conn.execute(query).fetchall()
        assert rows or "digests" in query or "FROM tags" not in query
        for row in sorted(map(repr, rows)):
            digest.update(row.encode())
    digest.update(repr(schema.schema_of(conn)).encode())
    conn.close()
    return digest.hexdigest()


def snapshot_with_articles(dest: Path, skip: int = 3) -> Path:
    """The real snapshot plus an articles.warc.gz built from real pages: each linked story's URL answers
    with one of the shared benchmark's article pages, each discussion with a real HN item page or Lobsters
    story JSON. Every `skip`-th linked story gets no article (a 404), as some links always fail."""
    import gzip
    import shutil

    from pipeline import articles, plugins

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("hn.html", "lobsters.html"):
        shutil.copy(SNAPSHOT / name, dest / name)
    pages = [gzip.decompress(p.read_bytes()) for p in sorted((FIXTURES / "articles").glob("*.html.gz"))]
    threads = {"hn": sorted((FIXTURES / "discussions").glob("hn_item_*.html.gz")),
               "lobsters": sorted((FIXTURES / "discussions").glob("lobsters_story_*.json.gz"))}
    records, linked = [], 0
    for source in ("hn", "lobsters"):
        for i, story in enumerate(parse.parse(source, (SNAPSHOT / f"{source}.html").read_text())):
            if story.url:
                linked += 1
                if linked % skip:
                    records.append(articles.Article(url=story.url, http_status=200, content_type="text/html",
                                                    body=pages[linked % len(pages)]))
            thread = threads[source][i % len(threads[source])]
            records.append(articles.Article(url=plugins.site_kinds()[source].discussion_url(story),
                                            http_status=200, body=gzip.decompress(thread.read_bytes()),
                                            content_type="application/json" if source == "lobsters" else "text/html"))
    articles.write_warc(dest / "articles.warc.gz", records)
    return dest


def with_new_stories(snapshot_dir: Path, count: int) -> list[str]:
    """The HN snapshot with `count` stories given new ids (new stories, same titles)."""
    import re

    html = (snapshot_dir / "hn.html").read_text()
    ids = re.findall(r"<tr class=.athing[^>]*id=.(\d+)", html)[:count]
    for old in ids:
        html = re.sub(rf"\b{old}\b", old + "7", html)
    (snapshot_dir / "hn.html").write_text(html)
    return [old + "7" for old in ids]


def two_day_history(db: Path) -> Path:
    """A history of two days: yesterday's front pages (read, with articles), then today's, where 10 HN
    stories are new and the rest are still on the front page."""
    from pipeline import refresh

    snapshot = snapshot_with_articles(db.parent / "snapshot")
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=snapshot)).status == "ok"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET started_at = strftime('%Y-%m-%dT%H:%M:%SZ', started_at, '-1 day'), "
                     "finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', finished_at, '-1 day')")
    conn.close()
    with_new_stories(snapshot, 10)
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=snapshot)).status in ("ok", "partial")
    return db


def with_sites(db):
    """A history (a sqlite-utils Database or a connection) with the built-in sites in its sources table, as a
    refresh writes them: what a test that inserts stories by hand needs for their foreign key."""
    from pipeline import config, schema

    conn = getattr(db, "conn", db)
    schema.sync_sources(conn, config.defaults().all_sources().values())
    return db
