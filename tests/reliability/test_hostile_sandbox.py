"""What comes back from a sandbox is decoded and bounded row by row: one bad row costs that row.

Through the real CLI with the loopback LLM: the Hacker News agent writes something the host
cannot take, Lobsters' agent is honest. The run ends `partial`, never a traceback, and the
history holds exactly the rows it should.
"""

import sqlite3

from pipeline import sync

from ..helpers import ESCAPE_TO_PROCESS
from ..stub_llm import StubLLM, cli_refresh, honest_or
from .figures import record

ESCAPE = ESCAPE_TO_PROCESS + "connect = next(map(ga, map(mods.get, ['sqlite3']), ['connect']))\n"


def hn_rows(db):
    conn = sqlite3.connect(db)
    try:
        judged = conn.execute("SELECT count(*) FROM judgments j JOIN stories s ON s.id = j.story_id "
                              "WHERE s.source = 'hn'").fetchone()[0]
        rejections = conn.execute("SELECT item, reason FROM rejections WHERE source = 'hn'").fetchall()
        sites = dict(conn.execute("SELECT source, status FROM run_sites"))
        rejected = conn.execute("SELECT rejected FROM runs").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return judged, rejections, sites, rejected
    finally:
        conn.close()


def test_invalid_utf8_from_a_documented_tool_call_costs_one_row(tmp_path):
    """`CAST(x'..ff..' AS TEXT)` stores bytes that pass every CHECK; the sync refuses that row alone."""
    from pipeline import rules

    def attack(step):
        honest = rules.code_for(TASK["hn"])
        return (honest[: honest.index("final_answer(")] +
                "\nprint(sql(\"UPDATE judgments SET summary = CAST(x'41206e6f7465206f6e20ff20746f6f6c73' AS TEXT) "
                "WHERE story_id = 1\"))\nfinal_answer('done')")

    with StubLLM([capture_task(honest_or(attack))]) as stub:
        done = cli_refresh(tmp_path / "news.db", stub)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "partial" in done.stderr
    judged, rejections, sites, rejected = hn_rows(tmp_path / "news.db")
    assert sites == {"hn": "ok", "lobsters": "ok"} and judged == 29
    assert rejections[0] == ("judgment for story 1",
                             "'utf-8' codec can't encode character '\\udcff' in position 10: surrogates not allowed")
    assert rejected == len(rejections) and all(item.endswith("for story 1") for item, _ in rejections[1:])
    record("invalid UTF-8 stored through the sql tool, through the CLI", 1, 1, 0, 0,
           "that judgment (and its tags) refused with Python's reason; the other 29 and lobsters landed")


TASK = {}


def capture_task(reply):
    """Keep the hn task text so the attack can build honest code for it first."""
    def wrapped(body):
        for m in body["messages"]:
            text = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
            if "today's Hacker News front page" in text:
                TASK["hn"] = text
        return reply(body)

    return wrapped


def test_a_million_bogus_judgments_are_refused_whole(tmp_path):
    """An agent that escapes its interpreter can write its own sandbox directly: the host takes none of it."""
    attack = ESCAPE + (
        "c = connect('sandbox.db')\n"
        "c.execute('INSERT INTO runs (id, started_at) VALUES (2, \\'2026-01-01T00:00:00Z\\')')\n"
        "c.executemany('INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                       "VALUES (2, ?, 1, 50, ?, ?)', "
        "map(lambda i: (1 + i % 30, 'A bogus judgment number ' + str(i), 'bogus'), range(1000000)))\n"
        "print('wrote', c.total_changes)\n"
    )
    db = tmp_path / "news.db"
    with StubLLM([honest_or(lambda step: attack)]) as stub:
        done = cli_refresh(db, stub, "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    judged, rejections, sites, rejected = hn_rows(db)
    assert sites == {"hn": "failed", "lobsters": "ok"} and judged == 0
    assert len(rejections) <= 1
    assert db.stat().st_size < 2 * 1024 * 1024  # not a million rejection rows (+74 MB)
    record("a million bogus judgments written around the sql tool, through the CLI", 1, 1, 0, 0,
           f"hn refused whole ({len(rejections)} rejection row), history {db.stat().st_size // 1024} KB, "
           "lobsters landed")


def test_rejections_per_site_are_bounded(tmp_path):
    """Past MAX_REJECTIONS rows for one site, the rest are counted in one summary row."""
    from pipeline import store

    history = store.open_db(tmp_path / "news.db")
    conn = history.conn
    run_id, _ = sync.start_run(conn, "rules", "jail")
    with store.transaction(conn):
        for i in range(sync.MAX_REJECTIONS + 250):
            sync.reject(conn, run_id, "hn", f"row {i}", "refused \udcff with a lone surrogate")
    rows = conn.execute("SELECT item, reason FROM rejections").fetchall()
    assert len(rows) == sync.MAX_REJECTIONS + 1
    assert rows[0] == ("row 0", "refused \\udcff with a lone surrogate")
    assert rows[-1] == ("more rows", "250 more rows refused (not recorded one by one)")
