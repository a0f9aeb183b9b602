"""What comes back from a sandbox is decoded and bounded row by row: one bad row costs that row.

Through the real CLI with the loopback LLM: the Hacker News agent writes something the host
cannot take, Lobsters' agent is honest. The run ends `partial`, never a traceback, and the
history holds exactly the rows it should.
"""

import json
import sqlite3

from pipeline import schema, sync

from ..helpers import ESCAPE_TO_PROCESS, with_sites
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

    history = with_sites(store.open_db(tmp_path / "news.db"))
    conn = history.conn
    run_id, _ = sync.start_run(conn, "rules", "jail")
    with schema.transaction(conn):
        for i in range(sync.MAX_REJECTIONS + 250):
            sync.reject(conn, run_id, "hn", f"row {i}", "refused \udcff with a lone surrogate")
    rows = conn.execute("SELECT item, reason FROM rejections").fetchall()
    assert len(rows) == sync.MAX_REJECTIONS + 1
    assert rows[0] == ("row 0", "refused \\udcff with a lone surrogate")
    assert rows[-1] == ("more rows", "250 more rows refused (not recorded one by one)")


# Cheap when built (an index on x), costly afterwards: its SQL is rewritten to an expression that
# integrity_check would compute for every row (4 ms a row here: 40 s for 10,000 rows).
COSTLY_INDEX = (
    "c = connect('sandbox.db', isolation_level=None)\n"
    "c.execute('CREATE TABLE IF NOT EXISTS t(x)')\n"
    "c.execute('CREATE INDEX IF NOT EXISTS ti ON t(x)')\n"
    "c.executemany('INSERT INTO t VALUES (?)', map(lambda i: (10000,), range(10000)))\n"
    "c.execute('PRAGMA writable_schema = ON')\n"
    "c.execute(\"UPDATE sqlite_master SET sql = 'CREATE INDEX ti ON t(instr(hex(zeroblob(x * 2)) || ''1'', "
    "hex(zeroblob(x)) || ''1''))' WHERE name = 'ti'\")\n"
    "c.close()\n"
)


def test_a_costly_extra_index_is_refused_before_any_check_computes_it(tmp_path):
    """validate() ran integrity_check (which computes every index expression) before comparing the schema:
    a 20 s site limit refresh took 87 s and held the other site. The schema is compared first now."""
    import time

    from pipeline import rules

    def attack(step):
        if step > 1:  # the final answer was refused with the check's reason: answer again
            return "final_answer('done')"
        honest = rules.code_for(TASK["hn"])
        return honest[: honest.index("final_answer(")] + ESCAPE + COSTLY_INDEX + "final_answer('done')"

    config = tmp_path / "newsreader.toml"
    config.write_text("site_timeout = 20\n")
    t0 = time.monotonic()
    with StubLLM([capture_task(honest_or(attack))]) as stub:
        done = cli_refresh(tmp_path / "news.db", stub, "--max-steps", "2", env={"NEWSREADER_CONFIG": str(config)})
        seen = json.dumps(stub.requests)
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    judged, rejections, sites, _ = hn_rows(tmp_path / "news.db")
    assert sites == {"hn": "failed", "lobsters": "ok"} and judged == 0
    assert "unexpected index 'ti'" in seen and "unexpected table 't'" in seen  # the check the model was shown
    assert elapsed < 30, elapsed
    record("an extra table with a costly expression index, written around the sql tool, through the CLI", 1, 1, 0,
           0, f"hn refused by the schema comparison ({elapsed:.1f} s for the whole refresh); lobsters landed")


def test_every_check_of_a_returned_sandbox_is_bounded_in_time(tmp_path):
    """Even a sandbox whose schema is exactly schema.sql is checked on a connection with a deadline."""
    from pipeline import sandbox

    from ..helpers import make_box

    box = make_box(tmp_path)
    assert sandbox.validate(box.path) == []
    assert sandbox.validate(box.path, seconds=0) == ["sandbox checks ran past their 0 s bound; refused"]
