"""schema.sql as code: apply it, compare a database with it, and write parsed stories into any DB it built.

schema.sql is the contract for the history, every sandbox and the tests. This module
only reads and applies it; it never restates a rule. What it offers every other module:
the version line, applying the file inside a transaction, an in-memory reference
database, the schema of a database to compare, transactions and savepoints, a
read-only connection, the tag vocabulary, and the rows of a parsed story.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from . import shipped

SCHEMA_PATH = shipped("schema.sql")


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


# Not sqlite-utils' Database.atomic(): this one joins a transaction the caller already holds, and
# survives SQLite's own rollback on a full disk (the original error propagates, not "no transaction").
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


@functools.cache
def reference_schema() -> tuple[tuple[str, str, str], ...]:
    """(type, name, normalised sql) of everything schema.sql creates."""
    with reference_db() as conn:
        return schema_of(conn)


def normalise_sql(sql: str | None) -> str:
    return " ".join((sql or "").split())


def schema_of(conn: sqlite3.Connection, schema: str = "main") -> tuple[tuple[str, str, str], ...]:
    rows = conn.execute(f"SELECT type, name, sql FROM {schema}.sqlite_master ORDER BY type, name").fetchall()
    return tuple((t, n, normalise_sql(s)) for t, n, s in rows)


def schema_differences(actual, expected) -> list[str]:
    """Human-readable differences between two schema_of() listings."""
    have = {(t, n): s for t, n, s in actual}
    want = {(t, n): s for t, n, s in expected}
    out = []
    for key in sorted(have.keys() - want.keys()):
        out.append(f"unexpected {key[0]} {key[1]!r} (not in schema.sql)")
    for key in sorted(want.keys() - have.keys()):
        out.append(f"missing {key[0]} {key[1]!r}")
    for key in sorted(have.keys() & want.keys()):
        if have[key] != want[key]:
            out.append(f"{key[0]} {key[1]!r} differs from schema.sql")
    return out


# --- the run record ---------------------------------------------------------------------

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


def sync_sources(conn: sqlite3.Connection, sources) -> None:
    """Write the configured sources (`sites.Source`s) into the sources table: a source's name, label, kind
    and URL follow the config; one no longer configured keeps its row, for the stories that came from it."""
    with transaction(conn):
        for source in sources:
            conn.execute(
                "INSERT INTO sources (slug, kind, name, label, base_url, url) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (slug) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
                "label = excluded.label, base_url = excluded.base_url, url = excluded.url, "
                "etag = iif(sources.url IS excluded.url, sources.etag, NULL), "  # validators are of one URL
                "last_modified = iif(sources.url IS excluded.url, sources.last_modified, NULL)",
                [source.slug, source.kind.name, source.name[:64], source.label[:32], source.base_url,
                 source.url if source.url.startswith(("http://", "https://")) else None])


def ensure_source(conn: sqlite3.Connection, slug: str) -> None:
    """A sources row for `slug` if it has none, named by its slug: what a throwaway database (a story's
    schema check, a sandbox built without its configured source) needs for its stories' foreign key."""
    conn.execute("INSERT OR IGNORE INTO sources (slug, kind, name, label, base_url) "
                 "VALUES (?1, ?1, substr(?1, 1, 64), substr(?1, 1, 32), 'https://localhost')", [slug])


def reference_vocabulary() -> dict[str, str]:
    """The default tag vocabulary (slug -> meaning), as schema.sql seeds it."""
    with reference_db() as conn:
        return dict(conn.execute("SELECT slug, description FROM tags ORDER BY rowid").fetchall())


def insert_story(conn: sqlite3.Connection, story_id: int | None, story, run_id: int) -> int:
    """Insert a parsed story row (the same columns in a sandbox and in history)."""
    row = {"id": story_id, **story.columns(), "first_seen_run": run_id}
    cursor = conn.execute(
        f"INSERT INTO stories ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
    )
    return cursor.lastrowid


def insert_sighting(conn: sqlite3.Connection, run_id: int, story_id: int, story) -> None:
    """Where the story stood on the page in this run."""
    conn.execute(
        "INSERT INTO sightings (run_id, story_id, rank, points, comments) VALUES (?, ?, ?, ?, ?)",
        [run_id, story_id, story.rank, story.points, story.comments],
    )


def connect_ro(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to a database file (a sandbox, or history for a reader): nothing can write."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)


UNTRUSTED_TIME_S = 10.0  # one host connection to a returned sandbox: a valid one is read in well under 1 s
UNTRUSTED_LENGTH = 1_000_000  # bytes of one value or statement (a sandbox's longest value is ~4 KB of article)


def connect_untrusted(path: str | Path, seconds: float = UNTRUSTED_TIME_S) -> sqlite3.Connection:
    """A read-only connection to a database someone else wrote (a sandbox back from the jail), bounded the
    way SQLite's "defense against the dark arts" advises: every statement stops at a wall-clock deadline
    (a progress handler), one value or statement at UNTRUSTED_LENGTH, no function runs from its schema
    (trusted_schema=OFF), cells are checked as read and nothing is memory-mapped.

    The deadline is per connection, counted from now: a caller opens one for one job."""
    conn = connect_ro(path)
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, UNTRUSTED_LENGTH)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, UNTRUSTED_LENGTH)
    for pragma in ("trusted_schema = OFF", "cell_size_check = ON", "mmap_size = 0"):
        conn.execute(f"PRAGMA {pragma}")
    return conn
