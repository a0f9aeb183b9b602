"""The history database: open or create it from schema.sql, migrate it, keep it in WAL.

Every table and constraint comes from ``schema.sql`` at the repository root; this
module only applies that file. The schema version lives in that file too (a
``-- schema_version: N`` line) and is stored in ``PRAGMA user_version``, so an
older database is migrated forward when it is opened instead of breaking.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from . import shipped

SCHEMA_PATH = shipped("schema.sql")
METADATA_PATH = shipped("metadata.yml")
DEFAULT_DB = Path("data") / "news.db"

# Changes that re-applying schema.sql cannot express (it only adds missing tables,
# indexes, triggers, views and seed rows): statements keyed by the version they bring
# a database up to. They run before schema.sql is re-applied, so dropping an object
# here makes schema.sql create its new definition.
MIGRATIONS: dict[int, list[str]] = {
    4: ["DROP TRIGGER IF EXISTS story_tags_at_most_three"],  # re-inserting an existing tag was refused
}

FTS_COLUMNS = ["title", "summary"]


class StoreError(Exception):
    """A history database that cannot be opened or used; the message says why."""


def schema_sql() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def schema_version(sql: str | None = None) -> int:
    match = re.search(r"^-- schema_version: (\d+)", sql or schema_sql(), re.MULTILINE)
    if not match:
        raise StoreError(f"{SCHEMA_PATH} has no '-- schema_version: N' line")
    return int(match.group(1))


def statements(sql: str) -> list[str]:
    """Split a SQL script into complete statements (trigger bodies stay whole).

    ``executescript`` would do this too, but it commits first, and migrations
    must run inside one transaction.
    """
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    leftover = [ln for ln in buf.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise ValueError(f"incomplete SQL statement at the end: {leftover[0][:80]!r}")
    return out


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE"):
    """BEGIN ... COMMIT around a block; on any error, ROLLBACK and re-raise.

    Inside a transaction the caller already holds, the block simply joins it. SQLite
    rolls back by itself on some errors (a full disk, for one); then there is nothing
    left to roll back, and the original error is the one that propagates.
    """
    if conn.in_transaction:
        yield
        return
    conn.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "row"):
    """Run a block under a SAVEPOINT: on any error only the block is undone, then the error propagates.

    Lets a caller refuse one row (and record why) without losing the rest of its transaction.
    """
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except Exception:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


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


def apply_schema(conn: sqlite3.Connection) -> None:
    """Create everything schema.sql declares, inside the caller's transaction."""
    for stmt in statements(schema_sql()):
        conn.execute(stmt)


@contextmanager
def reference_db():
    """An in-memory database holding exactly what schema.sql creates: the reference to compare against."""
    conn = sqlite3.connect(":memory:")
    try:
        apply_schema(conn)
        yield conn
    finally:
        conn.close()


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
            apply_schema(conn)
            db = sqlite_utils.Database(conn)
            if not db["stories"].detect_fts():
                db["stories"].enable_fts(FTS_COLUMNS, create_triggers=True, tokenize="porter")
            conn.execute(f"PRAGMA user_version = {target}")
    return current


def sync_tags(conn: sqlite3.Connection, vocabulary: dict[str, str]) -> None:
    """Make the tags table the configured vocabulary (inside the caller's transaction, or its own).

    A tag that history already uses cannot be removed: its judgments would lose their
    meaning. That is refused with a message saying how many story tags use it.
    """
    with transaction(conn):
        for slug, meaning in vocabulary.items():
            conn.execute(
                "INSERT INTO tags (slug, description) VALUES (?, ?) "
                "ON CONFLICT (slug) DO UPDATE SET description = excluded.description",
                [slug, meaning],
            )
        for (slug,) in conn.execute("SELECT slug FROM tags").fetchall():
            if slug in vocabulary:
                continue
            used = conn.execute("SELECT count(*) FROM story_tags WHERE tag = ?", [slug]).fetchone()[0]
            if used:
                raise StoreError(
                    f"tag '{slug}' is used by {used} story tag(s) in history and cannot be removed; "
                    f"keep it in [tags] (its description may change)"
                )
            conn.execute("DELETE FROM tags WHERE slug = ?", [slug])


def refuse_foreign(path: Path) -> None:
    """Leave someone else's database alone: refuse, before any write or journal-mode change, an existing
    non-empty file holding tables that schema.sql does not create (a read-only look)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open history database {path}: {exc}") from None
    with reference_db() as reference:
        ours = {row[0] for row in reference.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    foreign = {t for t in tables - ours if not t.startswith(("stories_fts", "sqlite_"))}
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
        raise StoreError(f"{path} is another application's SQLite database (tables newsreader does not have: "
                         f"{shown}); newsreader leaves it untouched: choose another --db")


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
