"""The history database: created from schema.sql, idempotent, migrated forward, searchable."""

import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from pipeline import schema, store
from pipeline.cli import cli
from tests.helpers import FIXTURES


def schema_dump(path):
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)
    finally:
        conn.close()


def test_init_twice_leaves_one_schema_and_one_vocabulary(tmp_path):
    db = tmp_path / "news.db"
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--db", str(db)])
    assert first.exit_code == 0, first.output
    before = schema_dump(db)
    second = runner.invoke(cli, ["init", "--db", str(db)])
    assert second.exit_code == 0, second.output
    assert schema_dump(db) == before
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM tags").fetchone() == (15,)
    assert conn.execute("SELECT count(*) FROM sources").fetchone() == (0,)  # a refresh writes the configured ones
    assert conn.execute("PRAGMA user_version").fetchone() == (schema.schema_version(),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_every_table_is_strict_and_comes_from_schema_sql(history):
    declared = {stmt.split()[5] for stmt in schema.statements(schema.schema_sql()) if stmt.startswith("CREATE TABLE")}
    tables = {row[0]: row[1] for row in history.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")}
    assert declared <= set(tables)
    for name in declared:
        assert tables[name].rstrip().endswith("STRICT"), name


def test_older_database_is_migrated_forward(tmp_path):
    """A database from before versioning (user_version 0, part of the schema) is brought up to date."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tags (slug TEXT PRIMARY KEY, description TEXT NOT NULL)")
    conn.execute("INSERT INTO tags VALUES ('ai', 'kept as it was')")
    conn.commit()
    conn.close()

    db = store.open_db(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.schema_version()
    assert {"runs", "stories", "judgments", "story_tags", "sightings"} <= set(db.table_names())
    assert db.execute("SELECT description FROM tags WHERE slug='ai'").fetchone() == ("kept as it was",)
    assert db["tags"].count == 15
    assert db["stories"].detect_fts() == "stories_fts"


def test_migrations_run_in_order(tmp_path, monkeypatch):
    """A version bump applies its statements once, inside the migration transaction."""
    path = tmp_path / "news.db"
    store.open_db(path).conn.close()
    target = schema.schema_version() + 1
    monkeypatch.setattr(store, "schema_version", lambda sql=None: target)
    monkeypatch.setitem(store.MIGRATIONS, target, ["INSERT INTO runs (started_at, status, finished_at) "
                                                   "VALUES ('2026-01-01T00:00:00Z', 'ok', '2026-01-01T00:00:01Z')"])
    db = store.open_db(path)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == target
    assert store.open_db(path).execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # current: not re-applied


def test_a_newer_database_is_refused_clearly(tmp_path):
    path = tmp_path / "news.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = CliRunner().invoke(cli, ["init", "--db", str(path)])
    assert result.exit_code != 0
    assert "newer than this newsreader" in result.output


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "news.db"
    path.write_text("this is not sqlite" * 100)
    result = CliRunner().invoke(cli, ["init", "--db", str(path)])
    assert result.exit_code == 1
    assert "cannot open history database" in result.output
    assert "Traceback" not in result.output


def test_full_text_search_covers_titles_and_summaries(history):
    run_id = history.execute("INSERT INTO runs (started_at) VALUES ('2026-11-25T08:00:00')").lastrowid
    history["stories"].insert(
        dict(source="hn", source_id="1", title="A new query planner", discussion_url="https://news.ycombinator.com/item?id=1",
             summary="How SQLite picks indexes for joins", first_seen_run=run_id)
    )
    assert [r["source_id"] for r in history["stories"].search("planner")] == ["1"]
    assert [r["source_id"] for r in history["stories"].search("indexes")] == ["1"]


def test_runs_command_on_an_empty_history(tmp_path):
    result = CliRunner().invoke(cli, ["runs", "--db", str(tmp_path / "news.db")])
    assert result.exit_code == 0
    assert "no runs yet" in result.output


def test_version_3_database_gets_the_new_tag_trigger(tmp_path):
    """v4 changed a trigger: an existing database has it dropped and re-created from schema.sql."""
    path = tmp_path / "news.db"
    db = store.open_db(path)
    old = ("CREATE TRIGGER story_tags_at_most_three BEFORE INSERT ON story_tags WHEN (SELECT count(*) FROM story_tags "
           "WHERE run_id = NEW.run_id AND story_id = NEW.story_id) >= 3 BEGIN SELECT RAISE(ABORT, 'old'); END")
    db.execute("DROP TRIGGER story_tags_at_most_three")
    db.execute(old)
    db.execute("PRAGMA user_version = 3")
    db.conn.close()
    sql = store.open_db(path).execute(
        "SELECT sql FROM sqlite_master WHERE name = 'story_tags_at_most_three'").fetchone()[0]
    assert "NOT EXISTS" in sql and "'old'" not in sql


def test_re_inserting_a_tag_of_a_story_with_three_tags_is_a_no_op(history):
    run_id = history.execute("INSERT INTO runs (started_at) VALUES ('2026-11-25T08:00:00')").lastrowid
    history.execute("INSERT INTO stories (id, source, source_id, title, discussion_url) VALUES "
                    "(1, 'hn', '1', 'A title', 'https://news.ycombinator.com/item?id=1')")
    history.execute("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                    "VALUES (?, 1, 1, 50, 'A summary that says more.', 'x')", [run_id])
    for tag in ("ai", "web", "security"):
        history.execute("INSERT INTO story_tags VALUES (?, 1, ?)", [run_id, tag])
    history.execute("INSERT INTO story_tags VALUES (?, 1, 'web') ON CONFLICT DO NOTHING", [run_id])
    assert history.execute("SELECT count(*) FROM story_tags").fetchone() == (3,)


def test_a_version_5_history_is_rebuilt_to_the_current_schema_with_every_row(tmp_path):
    """v6 named the judgments' CHECK constraints and added columns: SQLite cannot alter those in place,
    so the changed tables are rebuilt from schema.sql, keeping every row (a real v5 refresh's history)."""
    path = tmp_path / "news.db"
    shutil.copy(FIXTURES / "history-v5.db", path)
    before = sqlite3.connect(path)
    counts = {t: before.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("runs", "run_sites", "stories", "judgments", "story_tags", "sightings")}
    before.close()
    db = store.open_db(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.schema_version()
    fresh = store.open_db(tmp_path / "fresh.db")
    assert schema.schema_differences(schema.schema_of(db.conn), schema.schema_of(fresh.conn)) == []
    assert {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts} == counts
    assert counts["judgments"] > 0 and db.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(sqlite3.IntegrityError, match="summary_10_to_400_chars"):
        db.execute("UPDATE judgments SET summary = 'short' WHERE rowid = 1")
    assert db.execute("SELECT count(*) FROM stories_fts WHERE stories_fts MATCH 'security'").fetchone()[0] > 0
