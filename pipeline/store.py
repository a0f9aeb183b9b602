"""The history database: open or create it from schema.sql, migrate it, keep it in WAL.

Every table and constraint comes from ``schema.sql`` at the repository root; this
module only applies that file. The schema version lives in that file too (a
``-- schema_version: N`` line) and is stored in ``PRAGMA user_version``, so an
older database is migrated forward when it is opened instead of breaking.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from pathlib import Path

import sqlite_utils

from . import learn, shipped
from .schema import (
    StoreError,
    apply_schema,
    connect_ro,
    reference_schema,
    schema_of,
    schema_version,
    statements,
    transaction,
)

METADATA_PATH = shipped("metadata.yml")
FEEDBACK_SQL = shipped("feedback.sql")
DEFAULT_DB = Path("data") / "news.db"

# Re-applying schema.sql adds missing tables, indexes, triggers, views and seed rows, and
# `rebuild_changed_tables` brings a table whose definition changed up to date with its rows.
# What neither expresses (a changed trigger or view): statements keyed by the version they
# bring a database up to. They run before schema.sql is re-applied, so dropping an object
# here makes schema.sql create its new definition.
MIGRATIONS: dict[int, list[str]] = {
    4: ["DROP TRIGGER IF EXISTS story_tags_at_most_three"],  # re-inserting an existing tag was refused
    7: ["DROP VIEW IF EXISTS digest_stories"],  # shows each story's evidence and discussion line
    8: ["DROP VIEW IF EXISTS digest_stories"],  # tags also as a JSON array, so a facet counts single tags
    10: ["DROP TRIGGER IF EXISTS judgments_evidence_insert",  # evidence: four whole words at least
         "DROP TRIGGER IF EXISTS judgments_evidence_update"],
    11: ["DROP VIEW IF EXISTS digest_stories"],  # judgments gained discussion_evidence (the table is rebuilt)
    # sources are any site, no longer seeded by schema.sql: the two it seeded keep their rows, as their own kind
    13: ["PRAGMA defer_foreign_keys = ON", "CREATE TEMP TABLE source_names AS SELECT slug, name, base_url FROM sources",
         "DROP TABLE sources", "CREATE TABLE sources (slug TEXT PRIMARY KEY, kind TEXT, name TEXT, label TEXT, "
         "base_url TEXT)",
         "INSERT INTO sources SELECT slug, slug, name, CASE slug WHEN 'hn' THEN 'HN' ELSE name END, base_url "
         "FROM temp.source_names",
         "DROP TABLE temp.source_names", "DROP VIEW IF EXISTS digest_stories"],
}

FTS_COLUMNS = {"stories": ["title", "summary"], "articles": ["title", "text"]}  # full-text search, per table


def db_path(explicit: str | os.PathLike | None = None) -> Path:
    """--db, else $NEWSREADER_DB, else data/news.db."""
    return Path(explicit or os.environ.get("NEWSREADER_DB") or DEFAULT_DB)


def connect(path: str | os.PathLike, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection with the settings every writer uses: autocommit, FKs on, WAL."""
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to the schema version; return the version it had.

    One IMMEDIATE transaction, so two processes opening a new database at once
    cannot both create it, and a crash leaves the old version intact.
    """
    target = schema_version()
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current == target:
        return current
    if current > target:
        raise StoreError(
            f"database schema version {current} is newer than this newsreader ({target}); upgrade newsreader"
        )
    with transaction(conn):
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current < target:
            if current > 0:  # a versioned database: bring its existing objects forward first
                for version in range(current + 1, target + 1):
                    for stmt in MIGRATIONS.get(version, []):
                        conn.execute(stmt)
                rebuilt = rebuild_changed_tables(conn)
            apply_schema(conn)
            db = sqlite_utils.Database(conn)
            for table, columns in FTS_COLUMNS.items():
                if current > 0 and table in rebuilt:  # its search triggers went with the old table
                    db[table].disable_fts()
                if not db[table].detect_fts():
                    db[table].enable_fts(columns, create_triggers=True, tokenize="porter")
            conn.execute(f"PRAGMA user_version = {target}")
    return current


def rebuild_changed_tables(conn: sqlite3.Connection) -> list[str]:
    """Re-create every table whose definition differs from schema.sql, keeping its rows.

    SQLite cannot alter a CHECK or add a constrained column in place, so (as its docs
    advise) each such table is copied aside, dropped, created from schema.sql and filled
    again, columns matched by name. Foreign keys are deferred to the caller's commit, so
    a parent table can be rebuilt under its children; rows the new definition refuses
    make the whole migration fail, and the old database stays as it was.
    """
    have = {name: sql for kind, name, sql in schema_of(conn) if kind == "table"}
    want = {name: sql for kind, name, sql in reference_schema() if kind == "table"}
    changed = [name for name in want if name in have and have[name] != want[name]]
    if not changed:
        return []
    conn.execute("PRAGMA defer_foreign_keys = ON")
    columns = {}
    for name in changed:
        columns[name] = [row[1] for row in conn.execute(f"PRAGMA main.table_info({name})")]
        conn.execute(f"CREATE TEMP TABLE old_{name} AS SELECT * FROM main.{name}")
        conn.execute(f"DROP TABLE main.{name}")
    apply_schema(conn)
    for name in changed:
        kept = [c for c in columns[name] if c in {row[1] for row in conn.execute(f"PRAGMA main.table_info({name})")}]
        listed = ", ".join(kept)
        conn.execute(f"INSERT INTO main.{name} ({listed}) SELECT {listed} FROM temp.old_{name}")
        conn.execute(f"DROP TABLE temp.old_{name}")
    return changed


def refuse_foreign(path: Path) -> None:
    """Leave someone else's database alone: refuse, before any write or journal-mode change, an existing
    non-empty file holding tables that schema.sql does not create (a read-only look)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        conn = connect_ro(path)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open history database {path}: {exc}") from None
    ours = {name for kind, name, _ in reference_schema() if kind == "table"}
    searchable = tuple(f"{table}_fts" for table in FTS_COLUMNS)  # sqlite-utils' full-text tables for ours
    foreign = {t for t in tables - ours if not t.startswith((*searchable, "sqlite_"))}
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
        raise StoreError(f"{path} is another application's SQLite database (tables newsreader does not have: "
                         f"{shown}); newsreader leaves it untouched: choose another --db")


def feedback_path(history: str | os.PathLike) -> Path:
    """The reader's votes live beside the history, in feedback.db."""
    return Path(history).parent / "feedback.db"


def secret_path(history: str | os.PathLike) -> Path:
    """The key that signs the vote links a mail carries, beside the history (news.secret for news.db)."""
    return Path(history).with_suffix(".secret")


def token_secret(history: str | os.PathLike) -> bytes:
    """The history's signing key: made once (32 random bytes, readable by its owner only), then read."""
    import secrets

    path = secret_path(history)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def open_feedback(history: str | os.PathLike) -> sqlite3.Connection:
    """The votes database beside `history`, created from feedback.sql when missing."""
    path = feedback_path(history)
    if path.resolve() == Path(history).resolve():
        raise StoreError(f"{history} is named feedback.db, the name of the votes database beside it: rename it")
    try:
        conn = connect(path)
        with transaction(conn):
            for stmt in statements(FEEDBACK_SQL.read_text(encoding="utf-8")):
                conn.execute(stmt)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open the votes database {path}: {exc}") from exc
    return conn


def reader_votes(history: sqlite3.Connection, feedback: str | os.PathLike, limit: int, text_chars: int
                 ) -> list[learn.Vote]:
    """The reader's most recent votes (newest first, at most `limit`) on stories in this history: each story's
    title, domain, site tags, source and kind, the first `text_chars` of its article (if it was read), the
    vote, and the reader's own tags if they corrected them. StoreError if the file is not a votes database."""
    if not Path(feedback).is_file():
        return []
    conn = connect_ro(feedback)
    try:
        votes = conn.execute("SELECT story_id, vote FROM feedback ORDER BY voted_at DESC, story_id DESC LIMIT ?",
                             [limit]).fetchall()
        tags = {}
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_tags'").fetchone():  # older files lack it
            for story_id, tag in conn.execute("SELECT story_id, tag FROM feedback_tags ORDER BY story_id, tag"):
                tags.setdefault(story_id, []).append(tag)
    except sqlite3.DatabaseError as exc:  # the caller says so and goes on without the votes
        raise StoreError(f"cannot read the votes database {feedback}: {exc}") from None
    finally:
        conn.close()
    found = []
    for story_id, vote in votes:
        row = history.execute(
            "SELECT title, domain, native_tags, source, kind, (SELECT substr(text, 1, ?) FROM story_articles "
            "WHERE story_id = stories.id LIMIT 1) FROM stories WHERE id = ?", [text_chars, story_id]).fetchone()
        if row is not None:
            found.append(learn.Vote(row[0], row[1], json.loads(row[2] or "[]"), int(vote == "up"),
                                    tags.get(story_id), row[3], row[4], row[5] or "", story_id))
    return found


def record_vote(conn: sqlite3.Connection, story_id: int, choice: str, tags: list[str] | None = None) -> None:
    """One vote ("up", "down" or "clear") in feedback.db, by the same SQL as the page's buttons (metadata.yml's
    canned queries). `tags`: the reader's own tags for the story, replacing any earlier ones (None: kept; a
    cleared vote clears them too); a tag given twice is stored once."""
    conn.execute(feedback_query("clear_vote" if choice == "clear" else "vote"), {"story_id": story_id, "vote": choice})
    if tags is not None or choice == "clear":
        conn.execute("DELETE FROM feedback_tags WHERE story_id = ?", [story_id])
    conn.executemany("INSERT OR IGNORE INTO feedback_tags (story_id, tag) VALUES (?, ?)",
                     [(story_id, tag) for tag in tags or []])


@functools.cache
def feedback_query(name: str) -> str:
    """The SQL of one of feedback.db's writable canned queries in metadata.yml (`vote`, `clear_vote`)."""
    import yaml

    metadata = yaml.safe_load(METADATA_PATH.read_text(encoding="utf-8"))
    return metadata["databases"]["feedback"]["queries"][name]["sql"]


def open_db(path: str | os.PathLike | None = None) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) the history database."""
    path = db_path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
        refuse_foreign(path)
    try:
        conn = connect(path)
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open history database {path}: {exc}") from exc
    return sqlite_utils.Database(conn)
