"""Page fuzz: the real front pages, mutated the way a stranger or a broken proxy could, through the parsers.

Mutations: numbers (huge, negative, Unicode digits, empty), dates and time attributes,
hrefs (hostile schemes, user info, broken IPv6, protocol-relative, invisible characters),
titles and authors (bidi, zero-width, control characters, markup, very long), attributes
(class and id removed or changed), truncation anywhere, nesting (rows duplicated, wrapped,
unclosed), and bytes that are not UTF-8. Properties, on every page:

- the parser returns stories and refused rows, or says the page is not a front page
  (`LayoutError`); nothing else ever escapes it (no traceback);
- every story it returns passes schema.sql (inserted into a database built from it); the
  ones the schema would refuse are refused by the parser itself, with SQLite's reason;
- on a sample of pages, the whole host path runs: sandbox preload, the rules model's
  judgments, validation and the atomic sync, with every story landed or refused.
"""

import random
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import agent, parse, prompt, rules, sandbox, schema, sqltool, store, sync

from ..helpers import FIXTURES, SNAPSHOT, with_sites
from .figures import after_module, record, scale


def trimmed(html: str, row_start: str, keep: int) -> str:
    """The page with only its first `keep` story rows (same markup, faster to parse many times)."""
    starts = [m.start() for m in re.finditer(row_start, html)]
    if len(starts) <= keep:
        return html
    end_of_list = html.find("</table>" if "athing" in row_start else "</ol>", starts[-1])
    return html[:starts[keep]] + html[end_of_list:]


PAGES = []
for path, source in [(SNAPSHOT / "hn.html", "hn"), (SNAPSHOT / "lobsters.html", "lobsters"),
                     (FIXTURES / "html" / "hn_karakanb-2018-05-04.html", "hn"),
                     (FIXTURES / "html" / "lobsters_claw-front-2023-03.html", "lobsters")]:
    text = path.read_text(encoding="utf-8")
    row = r"<tr class=.athing" if source == "hn" else r"<li id=\"story_"
    PAGES.append((source, trimmed(text, row, 14)))
for source, html in PAGES:
    assert len(parse.parse(source, html)) >= parse.MIN_STORIES, source

NUMBERS = ["", "-1", "0", "9" * 5000, "1e9", "\u00b2", "\u0663", "12,345,678,901", "NaN", "0x10", "99999999999"]
TIMES = ["yesterday", "", "9999-12-31 23:59:59 -2359", "0000-00-00T00:00:00", "2024-02-30T25:61:61",
         "2024-08-29T15:53:08 " + "9" * 20, "2024-08-29T15:53:08 17248\u00b2646", "-1", "1e30", "\x00"]
HREFS = ["javascript:alert(1)", "http://[::1/x", "https://u:p@evil.example/", "//evil.example/x", "data:text/html,x",
         "https://ex\u200bample.com/", "https://example.com/a)[x](javascript:alert(1)", "http://", "", " ",
         "https://" + "a" * 3000 + ".com/", "item?id=" + "9" * 30, "/s/\u202eabc", "https://example.com/\x85"]
TEXTS = ["\u202e", "\u200b", "\u2066", "\x85", "\x01", "<script>alert(1)</script>", "&amp;lt;b&amp;gt;", "x" * 400,
         "\ufeff", "\u2028", "   ", "\U0001f389", "' OR 1=1 --", "&#0;", "\ud800"]
ATTRS = [("class=", "data-x="), ("id=", "data-id="), ("class=\"age\"", ""), ("title=", "data-title="),
         ("data-shortid=", "data-short="), ("href=", "data-href=")]


def mutate(html: str, rng: random.Random) -> str | bytes:
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0:  # a number
            spots = [m for m in re.finditer(r"(?<=[>\s\"'])[0-9][0-9,]*(?=[<\s.\"'&])", html)]
            if spots:
                m = rng.choice(spots)
                html = html[:m.start()] + rng.choice(NUMBERS) + html[m.end():]
        elif op == 1:  # a time attribute
            spots = list(re.finditer(r'(title|data-at-unix)="[^"]*"', html))
            if spots:
                m = rng.choice(spots)
                html = html[:m.start()] + f'{m.group(1)}="{rng.choice(TIMES)}"' + html[m.end():]
        elif op == 2:  # an href
            spots = list(re.finditer(r'href="[^"]*"', html))
            if spots:
                m = rng.choice(spots)
                html = html[:m.start()] + f'href="{rng.choice(HREFS)}"' + html[m.end():]
        elif op == 3:  # text inside a link (titles, authors, tags)
            spots = list(re.finditer(r"<a [^>]*>([^<]{1,200})</a>", html))
            if spots:
                m = rng.choice(spots)
                at = rng.randint(m.start(1), m.end(1))
                html = html[:at] + rng.choice(TEXTS) + html[at:]
        elif op == 4:  # an attribute renamed or removed
            old, new = rng.choice(ATTRS)
            spots = [m.start() for m in re.finditer(re.escape(old), html)]
            if spots:
                at = rng.choice(spots)
                html = html[:at] + new + html[at + len(old):]
        elif op == 5:  # truncated anywhere
            html = html[: rng.randint(0, len(html))]
        elif op == 6:  # a row duplicated, or a segment wrapped in unclosed markup
            start = rng.randint(0, max(len(html) - 1, 0))
            chunk = html[start:start + rng.randint(1, 3000)]
            html = html[:start] + rng.choice(["<table><tr>", "<li class=\"story\">", "<div>", chunk]) + html[start:]
        elif op == 7:  # bytes that are not UTF-8
            data = html.encode("utf-8", "surrogatepass")
            at = rng.randint(0, len(data))
            return data[:at] + rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + data[at:]
        else:  # an entity or tag split
            at = rng.randint(0, len(html))
            html = html[:at] + rng.choice(["&", "<", ">", "\"", "'", "</tr>", "</li>", "<!--"]) + html[at:]
    return html


TOTALS = {"pages": 0, "layout": 0, "stories": 0, "refused": 0, "schema_refused": 0, "synced": 0, "landed": 0}


def schema_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.apply_schema(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO runs (id, started_at) VALUES (1, '2026-11-25T00:00:00Z')")
    with_sites(conn)
    return conn


SCHEMA = schema_db()
VOCABULARY = schema.reference_vocabulary()
INTERESTS = rules.interests_from("systems, security and databases", set(VOCABULARY))


@pytest.mark.long
@settings(max_examples=scale(3000, 20000), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(page=st.integers(0, len(PAGES) - 1), seed=st.integers(0, 2**32 - 1))
def test_mutated_pages_parse_or_say_why(tmp_path_factory, page, seed):
    source, html = PAGES[page]
    mutated = mutate(html, random.Random(seed))
    TOTALS["pages"] += 1
    try:
        parsed = parse.parse_page(source, mutated)
    except parse.LayoutError:
        TOTALS["layout"] += 1
        return
    TOTALS["stories"] += len(parsed.stories)
    TOTALS["refused"] += len(parsed.refused)
    SCHEMA.execute("SAVEPOINT page")
    try:
        for n, story in enumerate(parsed.stories, start=1000):
            schema.insert_story(SCHEMA, n, story, 1)  # raises if schema.sql refuses a story the parser gave
            schema.insert_sighting(SCHEMA, 1, n, story)
    finally:
        SCHEMA.execute("ROLLBACK TO page")
        SCHEMA.execute("RELEASE page")
    TOTALS["schema_refused"] += sum("schema.sql refuses it" in reason for _, reason in parsed.refused)
    if seed % 25 == 0:  # the whole host path on a sample
        sync_page(tmp_path_factory.mktemp("page"), source, parsed)


def sync_page(folder, source, parsed):
    history = with_sites(store.open_db(folder / "news.db"))
    run_id, started_at = sync.start_run(history.conn, "rules", "local")
    box = sandbox.create(folder / "box.db", source, run_id, started_at, parsed.stories,
                         VOCABULARY)
    box.rejected[:0] = parsed.refused
    assert box.rejected == parsed.refused  # every story the parser gave was a valid candidate
    tool = sqltool.SqlTool(str(box.path))
    task = "\n".join([f"You are judging today's {source} front page.", f"run_id: {run_id}", f"site: {source}",
                      "READER'S INTERESTS: systems", "TAG VOCABULARY (use only these slugs):",
                      *(f"- {slug}: {meaning}" for slug, meaning in VOCABULARY.items()),
                      prompt.CANDIDATES_MARKER,
                      *(repr_candidate(i, s) for i, s in box.candidates.items())])
    for c in prompt.parse_task(task)[3]:  # the rules model's verdicts, written through the agent's tool
        v = rules.judge(c, set(VOCABULARY), source, INTERESTS)
        tool("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) VALUES (?, ?, ?, ?, ?, ?)",
             [run_id, c.id, v.relevant, v.score, v.summary, v.reason])
        for tag in v.tags:
            tool("INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)", [run_id, c.id, tag])
    report = sync.merge(history.conn, run_id, [agent.SiteResult(source=source, status="ok", site=agent.Site(box))],
                        model="rules", executor="local")
    landed = history.conn.execute("SELECT count(*) FROM sightings WHERE run_id = ?", [run_id]).fetchone()[0]
    assert landed == len(box.candidates) and report.sites == {source: "ok"}
    history.conn.close()
    TOTALS["synced"] += 1
    TOTALS["landed"] += landed


def repr_candidate(i, story):
    import json

    return json.dumps([i, story.title, story.domain, story.tags, story.points, story.comments, story.kind],
                      ensure_ascii=False)


@after_module(lambda: any(TOTALS.values()))
def page_fuzz_figures():
    record("page fuzz: mutated real front pages through the parsers", TOTALS["pages"], TOTALS["pages"], 0, 0,
           f"0 tracebacks; {TOTALS['layout']} pages declared not a front page, {TOTALS['stories']} stories "
           f"parsed, every one passing schema.sql; {TOTALS['refused']} rows refused at parse with a reason "
           f"({TOTALS['schema_refused']} of them in schema.sql's words); {TOTALS['synced']} "
           f"pages through sandbox, rules judgments and sync ({TOTALS['landed']} stories landed)")
