"""Schema fuzz: generated rows, well-formed and malformed, through the agent's sql tool, then the host sync.

Properties: every row that reaches history satisfies the Python re-statement of the
rules; every row is either in history or refused (and counted); the sandbox's SQLite
verdict, the Python rules and the host's verdict agree on every row.
"""

import sqlite3
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import agent, parse, sandbox, schema, sqltool, store, sync

from ..helpers import SNAPSHOT, with_sites
from .figures import after_module, record, scale
from .rules_py import judgment_ok, story_ok

STORIES = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())
TITLES = {i: s.title for i, s in enumerate(STORIES, start=1)}
VOCABULARY = schema.reference_vocabulary()

nasty_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "   padded   ", "tab\there", "nul\x00byte", "line\nbreak", "\u202eRTL override",
                     "x" * 401, "ok summary with enough words.", "\ud800 lone surrogate",
                     "<script>alert(1)</script> is a script tag in a title"]),
    st.builds(lambda i: TITLES[i], st.integers(1, 30)),  # summary = a title
    st.builds(lambda i, f: f(TITLES[i]), st.integers(1, 30),
              st.sampled_from([str.upper, str.lower, lambda t: t + ".", lambda t: "  ".join(t.split()),
                               lambda t: t[: len(t) // 2], lambda t: t.replace(" ", "-")])),
    st.text(min_size=10, max_size=120).map(str.strip),
)
# Mostly plausible values, so that well-formed rows are exercised as hard as malformed ones.
good_summary = st.builds(lambda t: f"A write-up on {t.strip() or 'compilers'} and why it matters.",
                         st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80))
judgment = st.fixed_dictionaries({
    "story_id": st.one_of(st.integers(1, 30), st.integers(1, 30), st.integers(0, 32)),  # 0, 31, 32: no candidate
    "relevant": st.one_of(st.sampled_from([0, 1]), st.sampled_from([0, 1]), st.integers(-1, 2), st.booleans()),
    "score": st.one_of(st.integers(0, 100), st.integers(0, 100), st.integers(-5, 105),
                       st.sampled_from([2**40, -(2**40)])),
    "summary": st.one_of(good_summary, good_summary, nasty_text),
    "reason": st.one_of(st.just("fine"), st.just("on topic"), st.text(max_size=20), st.sampled_from(["", "x" * 301])),
})
tag = st.tuples(st.integers(0, 32), st.one_of(st.sampled_from(sorted(VOCABULARY)),
                                                st.sampled_from(["blockchain", "AI", "", "ai ", "rust\x00"])))

TOTALS = {"rows": 0, "refused": 0, "landed": 0, "examples": 0}


@settings(max_examples=scale(60, 400), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])
@given(judgments=st.lists(judgment, max_size=12), tags=st.lists(tag, max_size=12))
def test_generated_judgments_and_tags(tmp_path_factory, judgments, tags):
    folder = tmp_path_factory.mktemp("fuzz")
    history = with_sites(store.open_db(folder / "news.db"))
    run_id, started_at = sync.start_run(history.conn, "rules", "local")
    box = sandbox.create(folder / "box.db", "hn", run_id, started_at, STORIES, VOCABULARY)
    tool = sqltool.SqlTool(str(box.path))
    accepted, keys, tag_count = [], set(), {}
    for row in judgments:
        result = tool("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      [run_id, row["story_id"], row["relevant"], row["score"], row["summary"], row["reason"]])
        expected = judgment_ok(row, TITLES.get(row["story_id"])) and row["story_id"] not in keys
        assert result.startswith("ok") == expected, (row, result)  # differential: SQLite vs Python
        if expected:
            keys.add(row["story_id"])
            accepted.append(row)
    for story_id, slug in tags:
        result = tool("INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)", [run_id, story_id, slug])
        expected = (slug in VOCABULARY and story_id in keys and (story_id, slug) not in tag_count
                    and sum(1 for (s, _t) in tag_count if s == story_id) < 3)
        assert result.startswith("ok") == expected, (story_id, slug, result)
        if expected:
            tag_count[(story_id, slug)] = 1
    result = agent.SiteResult(source="hn", status="ok", site=agent.Site(box))
    report = sync.merge(history.conn, run_id, [result], model="rules", executor="local")
    landed = history.conn.execute(
        "SELECT j.relevant, j.score, j.summary, j.reason, s.title FROM judgments j JOIN stories s ON s.id = j.story_id "
        "WHERE j.run_id = ?", [run_id]).fetchall()
    for relevant, score, summary, reason, title in landed:
        assert judgment_ok(dict(relevant=relevant, score=score, summary=summary, reason=reason), title)
    # the host agrees with the sandbox: everything SQLite accepted there lands here, nothing else
    assert len(landed) == len(accepted) and report.rejected == 0
    tags_landed = history.conn.execute("SELECT count(*) FROM story_tags WHERE run_id = ?", [run_id]).fetchone()[0]
    assert tags_landed == len(tag_count)
    TOTALS["examples"] += 1
    TOTALS["rows"] += len(judgments) + len(tags)
    TOTALS["refused"] += len(judgments) - len(accepted) + len(tags) - len(tag_count)
    TOTALS["landed"] += len(landed) + len(tag_count)
    history.conn.close()


@after_module(lambda: any(TOTALS.values()))
def fuzz_figures():
    record("schema fuzz: judgments + tags via the sql tool, then sync", TOTALS["rows"], TOTALS["refused"],
           0, 0, f"{TOTALS['examples']} generated batches; {TOTALS['landed']} rows landed, every one re-checked")


story_text = st.one_of(st.text(max_size=40), st.sampled_from(["", " x", "x" * 301, "ok title", "a\x00b", "\ud800"]))
story_url = st.one_of(st.none(), st.sampled_from(["javascript:alert(1)", "data:text/html,x", "https://ok.example/a",
                                                   "http://", "https://a b", "ftp://x.y", "HTTPS://X.Y",
                                                   "https://" + "a" * 2050]),
                      st.text(max_size=30).map(lambda t: "https://example.com/" + t))
STORY_TOTALS = {"stories": 0, "refused": 0}


@settings(max_examples=scale(40, 300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.fixed_dictionaries({
    "i": st.integers(0, 29), "title": story_text, "url": story_url, "domain": st.one_of(st.none(), story_text),
    "author": st.one_of(st.none(), story_text),
    "source_id": st.sampled_from(["123", "", "a b", "x" * 64, "x" * 65, "ok_id-1"]),
}), max_size=6))
def test_generated_candidates_are_refused_exactly_when_the_rules_say(tmp_path_factory, changes):
    stories = list(STORIES)
    for change in changes:
        i = change.pop("i")
        stories[i] = replace(stories[i], **change)
    box = sandbox.create(tmp_path_factory.mktemp("cand") / "box.db", "hn", 1, "2026-11-25T00:00:00Z", stories)
    seen, expected = set(), []
    for story in stories:
        ok = story_ok(story) and story.source_id not in seen
        if ok:
            seen.add(story.source_id)
        expected.append(ok)
    kept = [s.source_id for s, ok in zip(stories, expected, strict=True) if ok]
    assert [s.source_id for s in box.candidates.values()] == kept
    assert len(box.rejected) == expected.count(False)  # every refusal is reported, with its reason
    STORY_TOTALS["stories"] += len(stories)
    STORY_TOTALS["refused"] += len(box.rejected)
    conn = sqlite3.connect(box.path)
    assert sandbox.validate(box.path) == []
    conn.close()


@after_module(lambda: any(STORY_TOTALS.values()))
def candidate_figures():
    record("schema fuzz: hostile candidate stories at sandbox preload", STORY_TOTALS["stories"],
           STORY_TOTALS["refused"], 0, 0, "refused candidates are reported, never silently dropped")
