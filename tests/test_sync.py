"""Host sync: tampered sandboxes are refused with a reason, history is all-or-nothing, runs are recorded."""




import sqlite3
import threading

import pytest
from click.testing import CliRunner

from pipeline import agent, models, refresh, sandbox, store, sync
from pipeline.cli import cli
from pipeline.settings import Judge

from .helpers import SNAPSHOT, ScriptedModel, judged_box, with_sites


def dump(path):
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def hist(tmp_path):
    path = tmp_path / "news.db"
    db = with_sites(store.open_db(path))
    run_id, _ = sync.start_run(db.conn, "rules", "local")
    return path, db.conn, run_id


def merge(conn, run_id, *results):
    return sync.merge(conn, run_id, list(results), model="rules", executor="local")


def test_a_sound_sandbox_lands(tmp_path, hist):
    path, conn, run_id = hist
    report = merge(conn, run_id, judged_box(tmp_path, run_id=run_id))
    assert (report.status, report.stories, report.judged, report.rejected) == ("ok", 30, 30, 0)
    assert conn.execute("SELECT status, stories FROM runs WHERE id = ?", [run_id]).fetchone() == ("ok", 30)
    assert conn.execute("SELECT count(*) FROM story_tags").fetchone()[0] >= 30


def raw(box):
    """A connection to the sandbox file with no authorizer: what a hostile process could do."""
    return sqlite3.connect(box.path, isolation_level=None)


def add_table(conn):
    conn.execute("CREATE TABLE loot (x TEXT)")


def drop_check(conn):
    conn.execute("PRAGMA foreign_keys = OFF")
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'judgments'").fetchone()[0]
    conn.execute("ALTER TABLE judgments RENAME TO judgments_old")
    loose = sql.replace("CHECK (score BETWEEN 0 AND 100)", "").replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE")
    conn.execute(loose)
    conn.execute("INSERT INTO judgments SELECT * FROM judgments_old")
    conn.execute("UPDATE judgments SET score = 1000 WHERE story_id = 1")
    conn.execute("DROP TABLE judgments_old")


def orphan_rows(conn):
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("INSERT INTO story_tags VALUES (1, 9999, 'ai')")


def add_trigger(conn):
    conn.execute("CREATE TRIGGER spy AFTER INSERT ON judgments BEGIN SELECT 1; END")


def add_view(conn):
    conn.execute("CREATE VIEW v AS SELECT * FROM stories")


@pytest.mark.parametrize(
    "tamper,reason",
    [
        (add_table, "unexpected table 'loot'"),
        (drop_check, "table 'judgments' differs from schema.sql"),
        (orphan_rows, "foreign_key_check: 1 orphan row(s) in story_tags"),
        (add_trigger, "unexpected trigger 'spy'"),
        (add_view, "unexpected view 'v'"),
    ],
)
def test_tampered_sandbox_is_rejected_and_history_unchanged(tmp_path, hist, tamper, reason):
    path, conn, run_id = hist
    result = judged_box(tmp_path, run_id=run_id)
    tamper(raw(result.box))
    before = [line for line in dump(path) if "INSERT INTO \"runs\"" not in line and "run_sites" not in line
              and "rejections" not in line]
    report = merge(conn, run_id, result)
    assert report.status == "failed"
    assert any(reason in e for e in report.errors), report.errors
    after = [line for line in dump(path) if "INSERT INTO \"runs\"" not in line and "run_sites" not in line
             and "rejections" not in line]
    assert after == before  # no story, sighting, judgment or tag landed
    rejection = conn.execute("SELECT item, reason FROM rejections WHERE run_id = ?", [run_id]).fetchone()
    assert rejection[0] == "sandbox" and reason in rejection[1]


def test_summary_equal_to_title_through_a_constraint_free_copy_is_rejected_by_the_host(tmp_path, hist):
    """Same schema text, but the trigger was dropped and re-created after writing a bad row."""
    path, conn, run_id = hist
    result = judged_box(tmp_path, run_id=run_id)
    c = raw(result.box)
    trigger = c.execute("SELECT sql FROM sqlite_master WHERE name = 'judgments_summary_not_title_update'").fetchone()[0]
    c.execute("DROP TRIGGER judgments_summary_not_title_update")
    c.execute("UPDATE judgments SET summary = (SELECT title FROM stories WHERE id = 3) WHERE story_id = 3")
    c.execute(trigger)
    assert sandbox.validate(result.box.path) == []  # looks sound: the host must re-enforce on insert
    report = merge(conn, run_id, result)
    assert report.status == "partial"
    assert (report.judged, report.rejected) == (29, 1 + conn.execute(
        "SELECT count(*) FROM rejections WHERE item LIKE 'tag % for story 3'").fetchone()[0])
    reasons = [r[0] for r in conn.execute("SELECT reason FROM rejections WHERE item = 'judgment for story 3'")]
    assert reasons == ["summary repeats the title: say what the story is and why it matters"]
    assert conn.execute("SELECT count(*) FROM judgments j JOIN stories s ON s.id = j.story_id "
                        "WHERE lower(j.summary) = lower(s.title)").fetchone() == (0,)


def test_judgment_for_a_story_that_is_not_a_candidate_is_filtered(tmp_path, hist):
    path, conn, run_id = hist
    result = judged_box(tmp_path, run_id=run_id)
    c = raw(result.box)
    c.execute("INSERT INTO stories (id, source, source_id, title, discussion_url) VALUES "
              "(500, 'hn', '1', 'Smuggled in', 'https://news.ycombinator.com/item?id=1')")
    c.execute("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
              "VALUES (?, 500, 1, 100, 'A story the host never offered to the agent.', 'x')",
              [run_id])
    report = merge(conn, run_id, result)
    assert report.status == "partial"
    assert conn.execute("SELECT item, reason FROM rejections").fetchall() == [
        ("judgment for story 500", "not one of this run's candidates")]
    assert conn.execute("SELECT count(*) FROM stories WHERE title = 'Smuggled in'").fetchone() == (0,)


def test_story_facts_come_from_the_host_parse_not_the_sandbox(tmp_path, hist):
    path, conn, run_id = hist
    result = judged_box(tmp_path, run_id=run_id)
    raw(result.box).execute("UPDATE stories SET title = 'rewritten by the agent', url = 'https://evil.example/'")
    merge(conn, run_id, result)
    assert conn.execute("SELECT count(*) FROM stories WHERE title = 'rewritten by the agent'").fetchone() == (0,)


def test_a_failed_site_leaves_the_other_to_land_as_partial(tmp_path, hist):
    path, conn, run_id = hist
    ok = judged_box(tmp_path, "lobsters", run_id=run_id)
    failed = agent.SiteResult(source="hn", error="cannot reach https://news.ycombinator.com/")
    report = merge(conn, run_id, failed, ok)
    assert (report.status, report.sites) == ("partial", {"hn": "failed", "lobsters": "ok"})
    assert conn.execute("SELECT source, status, error FROM run_sites ORDER BY source").fetchall() == [
        ("hn", "failed", "cannot reach https://news.ycombinator.com/"), ("lobsters", "ok", None)]
    assert conn.execute("SELECT DISTINCT source FROM stories").fetchall() == [("lobsters",)]


def test_stale_running_runs_are_marked_failed(hist):
    path, conn, stale = hist  # started, never finished: as if the process was killed
    new_run, _ = sync.start_run(conn, "rules", "local")
    status, error = conn.execute("SELECT status, error FROM runs WHERE id = ?", [stale]).fetchone()
    assert status == "failed" and sync.STALE_NOTE in error
    assert conn.execute("SELECT status FROM runs WHERE id = ?", [new_run]).fetchone() == ("running",)


def test_rerunning_the_snapshot_adds_a_run_not_stories(tmp_path):
    db = tmp_path / "news.db"
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["refresh", "--db", str(db), "--snapshot", str(SNAPSHOT), "-q"])
        assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM stories").fetchone() == (55,)
    assert conn.execute("SELECT run_id, count(*) FROM sightings GROUP BY run_id").fetchall() == [(1, 55), (2, 55)]
    assert conn.execute("SELECT count(*) FROM judgments").fetchone() == (110,)
    assert conn.execute("SELECT id, status FROM runs").fetchall() == [(1, "ok"), (2, "ok")]
    assert conn.execute("SELECT count(DISTINCT first_seen_run) FROM stories").fetchone() == (1,)
    assert not list((tmp_path / "sandboxes").rglob("*.db"))  # landed sandboxes are removed


def test_two_refreshes_started_together_both_land(tmp_path):
    db = tmp_path / "news.db"
    store.open_db(db)
    errors, reports = [], []

    def one():
        try:
            reports.append(refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT)))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.status for r in reports) == ["ok", "ok"]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("ok",), ("ok",)]


def test_no_wait_exits_clearly_when_a_refresh_is_running(tmp_path):
    db = tmp_path / "news.db"
    with refresh.refresh_lock(db):
        result = CliRunner().invoke(cli, ["refresh", "--db", str(db), "--snapshot", str(SNAPSHOT), "--no-wait"])
    assert result.exit_code == 1
    assert "another refresh is running" in result.output and "Traceback" not in result.output


# --- crash safety --------------------------------------------------------------------------------


def test_cross_posted_story_is_linked_and_listed_once_in_the_digest(tmp_path):
    """The same article on both sites (modulo www./trailing slash/utm) becomes one digest entry with both links."""
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "hn.html").write_text((SNAPSHOT / "hn.html").read_text())
    lobsters = (SNAPSHOT / "lobsters.html").read_text().replace(
        'href="https://dillo-browser.org/lab/web-fork/"', 'href="https://ian.sh/tsa/?utm_source=lobsters"', 1)
    (snap / "lobsters.html").write_text(lobsters)
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snap))
    assert report.status == "ok"
    conn = sqlite3.connect(tmp_path / "news.db")
    pairs = conn.execute(
        "SELECT a.source, a.source_id, b.source, b.source_id FROM story_links l "
        "JOIN stories a ON a.id = l.story_id JOIN stories b ON b.id = l.linked_story_id ORDER BY a.source"
    ).fetchall()
    assert pairs == [("hn", "41392128", "lobsters", "ho7nqt"), ("lobsters", "ho7nqt", "hn", "41392128")]
    digest = conn.execute("SELECT body FROM digests").fetchone()[0]
    entry = [line for line in digest.splitlines() if "news.ycombinator.com/item?id=41392128" in line]
    assert len(entry) == 1 and "https://lobste.rs/s/ho7nqt/" in entry[0]


def test_a_model_that_never_finishes_leaves_history_without_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "make_model", lambda *a, **k: ScriptedModel("print('thinking...')"))
    db = tmp_path / "news.db"
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, judge=Judge(max_steps=2)))
    assert report.status == "failed"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM stories").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM judgments").fetchone() == (0,)
    status, error = conn.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "did not call final_answer within 2 steps" in error
    assert sorted(p.name for p in (tmp_path / "sandboxes").rglob("*.db")) == ["hn.db", "lobsters.db"]  # kept
