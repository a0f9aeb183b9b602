"""The judge's sandbox: a per-site SQLite database built from schema.sql.

The host creates one sandbox DB per site and run, preloads it with that site's
candidate stories (sandbox story ids 1..N, in rank order) and the tag vocabulary,
and gives the agent exactly one way in: the `sql` tool (`sqltool.py`). The tool runs one
statement per call under a default-deny authorizer: reads anywhere in `main`,
writes only to the judgment tables; no DDL, PRAGMA, ATTACH, transactions or
extension loading. Constraint failures come back as text the model can act on.

The host never trusts what comes back: `validate` re-checks integrity, foreign
keys and the exact schema before the sync reads a single row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from . import store
from .parse import Story, canonical_url, story_columns
from .sqltool import SqlTool

__all__ = ["JUDGMENT_TABLES", "Sandbox", "SqlTool", "canonical_url", "create", "judged_summary", "story_columns"]

JUDGMENT_TABLES = ("judgments", "story_tags")


def reference_vocabulary() -> dict[str, str]:
    """The default tag vocabulary (slug -> meaning), as schema.sql seeds it."""
    with store.reference_db() as conn:
        return dict(conn.execute("SELECT slug, description FROM tags ORDER BY rowid").fetchall())


@dataclass
class Sandbox:
    """A site's sandbox DB on the host, and which candidate each sandbox story id is."""

    path: Path
    source: str
    run_id: int
    candidates: dict[int, Story] = field(default_factory=dict)  # sandbox story id -> story
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (item, reason) refused at preload


def create(path: Path, source: str, run_id: int, started_at: str, stories: list[Story],
           vocabulary: dict[str, str] | None = None) -> Sandbox:
    """A fresh sandbox from schema.sql, preloaded with the run, the vocabulary and the site's candidates.

    A candidate the schema refuses (a hostile page can carry a `javascript:` link
    or a 10 KB title) is left out and reported in `rejected`, never silently.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, path.with_name(path.name + "-journal")):
        leftover.unlink(missing_ok=True)
    box = Sandbox(path=path, source=source, run_id=run_id)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with store.transaction(conn, "DEFERRED"):
            store.apply_schema(conn)
            if vocabulary is not None:
                store.sync_tags(conn, vocabulary)
            conn.execute("INSERT INTO runs (id, started_at) VALUES (?, ?)", [run_id, started_at])
            next_id = 1
            for story in stories:
                try:
                    with store.savepoint(conn, "candidate"):
                        insert_story(conn, next_id, story, run_id)
                        insert_sighting(conn, run_id, next_id, story)
                except (sqlite3.Error, UnicodeError, OverflowError) as exc:  # text SQLite cannot even receive
                    box.rejected.append((f"story {story.source_id}", f"candidate refused: {exc}"))
                    continue
                box.candidates[next_id] = story
                next_id += 1
    finally:
        conn.close()
    return box


def insert_story(conn: sqlite3.Connection, story_id: int | None, story: Story, run_id: int) -> int:
    """Insert a parsed story row (the same columns in a sandbox and in history)."""
    row = {"id": story_id, **story_columns(story), "first_seen_run": run_id}
    cursor = conn.execute(
        f"INSERT INTO stories ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
    )
    return cursor.lastrowid


def insert_sighting(conn: sqlite3.Connection, run_id: int, story_id: int, story: Story) -> None:
    """Where the story stood on the page in this run."""
    conn.execute(
        "INSERT INTO sightings (run_id, story_id, rank, points, comments) VALUES (?, ?, ?, ?, ?)",
        [run_id, story_id, story.rank, story.points, story.comments],
    )


def judged_summary(path: Path, run_id: int, candidate_ids) -> list[str]:
    """What is still missing for the agent to be done, as messages for the model."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        judged = {row[0] for row in conn.execute("SELECT story_id FROM judgments WHERE run_id = ?", [run_id])}
        tagged = {row[0] for row in conn.execute("SELECT DISTINCT story_id FROM story_tags WHERE run_id = ?", [run_id])}
        other_runs = conn.execute("SELECT count(*) FROM judgments WHERE run_id <> ?", [run_id]).fetchone()[0]
    finally:
        conn.close()
    wanted = set(candidate_ids)
    problems = []
    if wanted - judged:
        problems.append(f"stories without a judgment: {sorted(wanted - judged)}")
    if judged - wanted:
        problems.append(f"judgments for story ids that are not candidates: {sorted(judged - wanted)}")
    if (judged & wanted) - tagged:
        problems.append(f"judged stories without any tag: {sorted((judged & wanted) - tagged)}")
    if other_runs:
        problems.append(f"{other_runs} judgment(s) use a run_id other than {run_id}")
    return problems
