"""Read before judging: a refresh reads each story's article and discussion, and the judge quotes them.

The snapshot here is the real front pages plus an articles.warc.gz built from real article pages
and real discussion pages (tests/helpers.py: snapshot_with_articles). A live refresh is the
same with an httpx transport standing in for the network.
"""

import gzip
import json
import sqlite3
import threading
import time

import httpx
from click.testing import CliRunner

from pipeline import agent, articles, models, parse, prompt, refresh, rules
from pipeline.cli import cli
from pipeline.progress import Reporter
from pipeline.settings import Judge

from .helpers import FIXTURES, SNAPSHOT, ScriptedModel, snapshot_with_articles


def quoted(db):
    """(story, has an article, evidence, evidence found in its article text) for every judgment."""
    return sqlite3.connect(db).execute(
        """SELECT j.story_id, a.text IS NOT NULL, j.evidence, instr(a.text, j.evidence) > 0, j.discussion
           FROM judgments j LEFT JOIN story_articles a ON a.story_id = j.story_id""").fetchall()


def test_every_story_with_an_article_gets_evidence_quoted_from_it(tmp_path):
    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot))
    assert report.status == "ok" and report.judged == 55
    rows = quoted(tmp_path / "news.db")
    with_article = [r for r in rows if r[1]]
    assert len(with_article) >= 30  # two in three linked stories have an article in the WARC
    assert all(evidence and found for _, _, evidence, found, _ in with_article)
    assert all(evidence is None for _, has, evidence, _, _ in rows if not has)  # judged from the front page
    assert sum(1 for *_, said in rows if said and said.startswith("Top comment: ")) >= 40
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] > 500
    summaries = conn.execute("SELECT j.summary, s.title FROM judgments j JOIN stories s ON s.id = j.story_id "
                             "JOIN story_articles a ON a.story_id = j.story_id").fetchall()
    assert all(not summary.startswith("Article from") for summary, _ in summaries)  # from the article itself
    digest = conn.execute("SELECT body FROM digests").fetchone()[0]
    assert "\n  > " in digest and "\n  Top comment: " in digest
    assert conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH 'government'").fetchone()[0] > 0
    conn.close()
    assert refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot)).status == "ok"


def test_a_made_up_quote_is_refused_and_the_model_is_told_why(tmp_path, monkeypatch):
    snapshot = snapshot_with_articles(tmp_path / "snapshot")

    def made_up(task):
        return ("print(sql('INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence) '\n"
                "          'VALUES (?, 1, 1, 80, ?, ?, ?)', [run_id, 'A summary that says what the story is.', 'x',\n"
                "          'A sentence this article never contained.']))")

    queue = iter([ScriptedModel(made_up, rules.code_for), rules.RulesModel()])
    monkeypatch.setattr(models, "make_model", lambda *a, **k: next(queue, rules.RulesModel()))
    reporter = Reporter(tmp_path / "logs", quiet=True)
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot, sources=("hn",),
                                             reporter=reporter))
    assert report.status == "ok"  # the model's next step judged without the made-up quote
    steps = [json.loads(line) for path in (tmp_path / "logs").glob("*.jsonl") for line in path.read_text().splitlines()]
    first = next(s["detail"] for s in steps if s.get("status") == "step")
    assert ("error: evidence must be at least four whole words copied exactly from this story's text in "
            "story_articles") in first, first
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT count(*) FROM judgments WHERE evidence = 'A sentence this article never contained.'"
                        ).fetchone() == (0,)


def test_the_schema_refuses_a_quote_the_article_does_not_contain(tmp_path):
    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot, sources=("hn",)))
    conn = sqlite3.connect(tmp_path / "news.db")
    story, run = conn.execute("SELECT j.story_id, j.run_id FROM judgments j JOIN story_articles a "
                              "ON a.story_id = j.story_id LIMIT 1").fetchone()
    try:
        conn.execute("UPDATE judgments SET evidence = 'Words the article never had.' WHERE story_id = ? AND run_id = ?",
                     [story, run])
    except sqlite3.IntegrityError as exc:
        assert "copied exactly from this story's text" in str(exc)
    else:
        raise AssertionError("a made-up quote was stored")


def test_a_snapshot_without_articles_says_so_and_judges_from_the_front_page(tmp_path):
    out = CliRunner().invoke(cli, ["refresh", "--db", str(tmp_path / "news.db"), "--snapshot", str(SNAPSHOT)])
    assert out.exit_code == 0, out.output
    assert "articles were not available (no articles.warc.gz in" in out.output
    assert sqlite3.connect(tmp_path / "news.db").execute("SELECT count(*) FROM judgments WHERE evidence IS NULL"
                                                       ).fetchone() == (55,)


def front_pages(request: httpx.Request) -> httpx.Response:
    source = "hn" if "ycombinator" in request.url.host else "lobsters"
    return httpx.Response(200, headers={"Content-Type": "text/html; charset=utf-8"},
                          content=(SNAPSHOT / f"{source}.html").read_bytes())


def test_a_live_refresh_archives_what_it_read_and_a_replay_reads_the_same(tmp_path):
    recorded = articles.read_warc(snapshot_with_articles(tmp_path / "recorded") / "articles.warc.gz")
    asked = []

    def network(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        status, kind, body = recorded.get(str(request.url), (404, "text/plain", b"gone"))
        return httpx.Response(status, headers={"Content-Type": kind}, content=body)

    live = tmp_path / "live" / "news.db"
    options = dict(transport=httpx.MockTransport(front_pages), article_transport=httpx.MockTransport(network))
    assert refresh.refresh(refresh.Options(db=str(live), **options)).status == "ok"
    warcs = list((live.parent / "raw").glob("*/articles.warc.gz"))
    assert len(warcs) == 1 and len(articles.read_warc(warcs[0])) == len(set(asked))
    replay = tmp_path / "replay"
    replay.mkdir()
    for name in ("hn.html", "lobsters.html"):
        (replay / name).write_text((SNAPSHOT / name).read_text())
    (replay / "articles.warc.gz").write_bytes(warcs[0].read_bytes())
    again = tmp_path / "again" / "news.db"
    assert refresh.refresh(refresh.Options(db=str(again), snapshot=replay)).status == "ok"
    assert quoted(again) == quoted(live)  # exactly what the live run read

    # A day later, judged again: recently read articles are not fetched again, discussions are.
    asked.clear()
    assert refresh.refresh(refresh.Options(db=str(live), reuse_days=0, **options)).status == "ok"
    article_urls = {u for u in recorded if "ycombinator.com/item" not in u and "lobste.rs/s/" not in u}
    assert asked and not set(asked) & article_urls


def test_a_hostile_article_costs_only_its_story(tmp_path):
    page = gzip.decompress(sorted((FIXTURES / "articles").glob("*.html.gz"))[0].read_bytes())

    def network(request: httpx.Request) -> httpx.Response:
        if "ycombinator.com/item" in str(request.url) or "lobste.rs/s/" in str(request.url):
            return httpx.Response(404)
        if len(str(request.url)) % 2:
            return httpx.Response(200, headers={"Content-Type": "application/pdf"}, content=b"%PDF")
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=page)

    db = tmp_path / "news.db"
    report = refresh.refresh(refresh.Options(db=str(db), transport=httpx.MockTransport(front_pages),
                                             article_transport=httpx.MockTransport(network),
                                             judge=Judge(executor="local")))
    assert report.status == "ok" and report.judged == 55
    statuses = dict(sqlite3.connect(db).execute("SELECT status, count(*) FROM articles GROUP BY status"))
    assert statuses.get("ok") and statuses.get("not html")


def test_no_site_waits_for_the_other_sites_articles(tmp_path):
    """HN's articles answer 3 s late; Lobsters reads and its agent judges meanwhile (its steps are logged
    as they happen, before HN's reading ends)."""
    recorded = articles.read_warc(snapshot_with_articles(tmp_path / "recorded") / "articles.warc.gz")
    hn_urls = {s.url for s in parse.parse("hn", (SNAPSHOT / "hn.html").read_text()) if s.url}

    def network(request: httpx.Request) -> httpx.Response:
        if str(request.url) in hn_urls:
            time.sleep(3)
        status, kind, body = recorded.get(str(request.url), (404, "text/plain", b"gone"))
        return httpx.Response(status, headers={"Content-Type": kind}, content=body)

    reporter = Reporter(tmp_path / "logs", quiet=True)
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), reporter=reporter,
                                             transport=httpx.MockTransport(front_pages),
                                             article_transport=httpx.MockTransport(network)))
    assert report.status == "ok"
    events = [json.loads(line) for path in (tmp_path / "logs").glob("*.jsonl")
              for line in path.read_text().splitlines()]
    order = [(e.get("site"), e.get("stage"), e.get("status")) for e in events if e.get("stage") in ("read", "judge")]
    lobsters_steps = [i for i, (site, _, status) in enumerate(order) if site == "lobsters" and status == "step"]
    assert lobsters_steps and max(lobsters_steps) < order.index(("hn", "read", "ok")), order


def test_the_latest_output_is_shown_whole_up_to_the_cap_the_prompt_states():
    """A model that prints a story's text to read it must see what it asked for: the latest step's output
    is kept up to OUTPUT_KEPT characters (the system prompt says how many), earlier ones shorter."""
    from smolagents import ActionStep, TaskStep
    from smolagents.monitoring import Timing

    printed = "\n".join(f"line {i} of an article the model asked to read, all of it" for i in range(100))
    assert 4000 < len(printed) < agent.OUTPUT_KEPT
    judge = agent.JudgeAgent(facts={"run_id": 1, "first_id": 1, "last_id": 100}, tools=[], model=ScriptedModel())
    judge.memory.steps = [TaskStep(task=f"{prompt.CANDIDATES_MARKER} ..."),
                          ActionStep(step_number=1, timing=Timing(start_time=0.0), observations="x" * 5000),
                          ActionStep(step_number=2, timing=Timing(start_time=0.0), observations=printed)]
    shown = "\n".join(rules.text_of(m) for m in judge.write_memory_to_messages())
    assert printed in shown and "x" * agent.EARLIER_OUTPUT_KEPT in shown and "x" * 5000 not in shown
    assert f"{agent.OUTPUT_KEPT:,}" in judge.initialize_system_prompt()


def test_no_two_threads_are_in_libxml2_at_once(tmp_path, monkeypatch):
    """Both sites read at once, each in its own threads, but libxml2 (lxml's parsers, trafilatura over
    them) is entered by one thread at a time: two at once crashed the process ("Fatal Python error:
    Aborted", an extraction beside a discussion's parse). Each entry point waits a little inside, so
    an overlap, were it allowed, would happen here."""
    import lxml.html
    import trafilatura

    inside: dict[int, int] = {}  # thread -> depth (a parse may parse a fragment inside itself)
    most, guard = [0], threading.Lock()

    def watched(call):
        def entered(*args, **kwargs):
            me = threading.get_ident()
            with guard:
                inside[me] = inside.get(me, 0) + 1
                most[0] = max(most[0], len(inside))
            try:
                time.sleep(0.002)
                return call(*args, **kwargs)
            finally:
                with guard:
                    inside[me] -= 1
                    if not inside[me]:
                        del inside[me]
        return entered

    for module, name in ((lxml.html, "fromstring"), (lxml.html, "document_fromstring"),
                         (lxml.html, "fragment_fromstring"), (trafilatura, "bare_extraction")):
        monkeypatch.setattr(module, name, watched(getattr(module, name)))
    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot))
    assert report.status == "ok"
    assert most[0] == 1
