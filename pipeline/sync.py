"""Host sync: validate each sandbox DB, then merge every site into history in one transaction.

The agent controls its sandbox; the host trusts nothing in it:

- **Validate** before reading a row: `integrity_check`, `foreign_key_check`, and the
  sandbox's schema compared with what `schema.sql` creates. An extra table, a
  dropped CHECK, a changed column, a trigger or view the host did not create:
  the sandbox is rejected with a message saying what differs.
- **Re-enforce**: story facts come from the host's own parse, never from the
  sandbox copy. Only judgments and tags are read from the sandbox, only for this
  run's candidates, and each is inserted through the history DB's own
  constraints and triggers (foreign keys on). A row the host refuses is written
  to `rejections` with SQLite's reason, never dropped silently.
- **Atomic**: everything a run adds (stories, sightings, judgments, tags, links,
  digest, run_sites) and the run's final status commit in one transaction. A
  crash leaves the run row `running` and nothing else; the next refresh marks it
  failed.
"""

from __future__ import annotations

import fcntl
import functools
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import collect, sandbox, store


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- validation -----------------------------------------------------------------------


@functools.cache
def reference_schema() -> tuple[tuple[str, str, str], ...]:
    """(type, name, normalised sql) of everything schema.sql creates."""
    with store.reference_db() as conn:
        return schema_of(conn)


def normalise_sql(sql: str | None) -> str:
    return " ".join((sql or "").split())


def schema_of(conn: sqlite3.Connection, schema: str = "main") -> tuple[tuple[str, str, str], ...]:
    rows = conn.execute(f"SELECT type, name, sql FROM {schema}.sqlite_master ORDER BY type, name").fetchall()
    return tuple((t, n, normalise_sql(s)) for t, n, s in rows)


MAX_SANDBOX_BYTES = 64 * 1024 * 1024  # a sandbox of 100 candidates is well under 1 MB
MAX_REJECTIONS = 100  # rows recorded per site and run; the rest are counted in one summary row


def validate(path: Path) -> list[str]:
    """Everything wrong with a sandbox DB that the host must not merge; [] if it is sound."""
    if not Path(path).is_file():
        return [f"sandbox database {path.name} is missing"]
    size = Path(path).stat().st_size
    if size > MAX_SANDBOX_BYTES:
        return [f"sandbox database is {size // 1024 // 1024} MB, over the {MAX_SANDBOX_BYTES // 1024 // 1024} MB cap"]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open sandbox: {exc}"]
    try:
        problems = []
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            problems.append("integrity_check failed: " + "; ".join(integrity[:5]))
        orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
        if orphans:
            tables = sorted({row[0] for row in orphans})
            problems.append(f"foreign_key_check: {len(orphans)} orphan row(s) in {', '.join(tables)}")
        problems += schema_differences(schema_of(conn), reference_schema())
        if not problems:  # an honest agent writes one judgment per candidate and at most three tags each
            stories, judged, tagged = conn.execute(
                "SELECT (SELECT count(*) FROM stories), (SELECT count(*) FROM judgments), "
                "(SELECT count(*) FROM story_tags)").fetchone()
            if judged > stories or tagged > 3 * stories:
                problems.append(f"{judged} judgments and {tagged} tags for {stories} candidates")
        return problems
    except sqlite3.DatabaseError as exc:
        return [f"not a readable SQLite database: {exc}"]
    finally:
        conn.close()


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

STALE_NOTE = "process died during the run (found 'running' by a later refresh)"


def start_run(conn: sqlite3.Connection, model: str, executor: str) -> tuple[int, str]:
    """Mark crashed runs failed, then create this run's row as 'running'."""
    started_at = now_iso()
    with store.transaction(conn):
        conn.execute(
            "UPDATE runs SET status = 'failed', finished_at = max(started_at, ?), "
            "error = coalesce(error || '; ', '') || ? WHERE status = 'running'",
            [started_at, STALE_NOTE],
        )
        run_id = conn.execute(
            "INSERT INTO runs (started_at, status, model, executor) VALUES (?, 'running', ?, ?)",
            [started_at, model, executor],
        ).lastrowid
    return run_id, started_at


def fail_run(conn: sqlite3.Connection, run_id: int, error: str, duration_s: float | None = None) -> None:
    """Finish a run that could not sync anything."""
    conn.execute(
        "UPDATE runs SET status = 'failed', finished_at = max(started_at, ?), error = ?, duration_s = ? WHERE id = ?",
        [now_iso(), error, duration_s, run_id],
    )


@contextmanager
def refresh_lock(db_path: Path, wait: bool = True, on_wait=None):
    """One refresh at a time per history DB, whatever path reaches it (symlink, hard link, relative).

    An flock on the database file itself: it belongs to the file, not to a name, and is
    released if the process dies. (flock and SQLite's own fcntl locks do not interact on Linux.)
    """
    lock_path = Path(db_path).resolve()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RefreshBusy(f"another refresh is running on {db_path}") from None
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RefreshBusy(Exception):
    """Another refresh holds the lock and --no-wait was given."""


# --- the merge ----------------------------------------------------------------------------


@dataclass
class SiteResult:
    """How one site's agent did (filled by agent.judge_site); the sync's input and run_sites' row."""

    source: str
    status: str = "failed"  # 'ok' or 'failed' as the agent finished
    box: sandbox.Sandbox | None = None
    steps: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    judge_s: float = 0.0
    fetch_s: float = 0.0
    error: str | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    run_id: int
    status: str
    stories: int = 0
    judged: int = 0
    rejected: int = 0
    sites: dict[str, str] = field(default_factory=dict)  # source -> ok/failed
    errors: list[str] = field(default_factory=list)
    digest: str | None = None


def merge(
    conn: sqlite3.Connection,
    run_id: int,
    outcomes: list[SiteResult],
    *,
    model: str,
    executor: str,
    note: str | None = None,
    links: list[tuple[tuple[str, str], tuple[str, str]]] = (),
    started: float | None = None,
) -> SyncReport:
    """Validate and merge every site's sandbox, and finish the run record, in ONE transaction."""
    report = SyncReport(run_id=run_id, status="failed")
    conn.execute("PRAGMA foreign_keys = ON")
    with store.transaction(conn):
        ids: dict[tuple[str, str], int] = {}
        for outcome in outcomes:
            landed = merge_site(conn, run_id, outcome, report, ids)
            report.sites[outcome.source] = "ok" if landed else "failed"
        for (a, b) in links:
            if a in ids and b in ids:
                conn.execute(
                    "INSERT OR IGNORE INTO story_links (run_id, story_id, linked_story_id) VALUES (?, ?, ?), (?, ?, ?)",
                    [run_id, ids[a], ids[b], run_id, ids[b], ids[a]],
                )
        report.digest = collect.compose_digest(conn, run_id, note)
        if report.digest:
            conn.execute("INSERT INTO digests (run_id, body) VALUES (?, ?)", [run_id, report.digest])
        report.rejected = conn.execute(  # the recorded rows, and those counted in a site's summary row
            "SELECT coalesce(sum(CASE WHEN item = 'more rows' THEN CAST(reason AS INTEGER) ELSE 1 END), 0) "
            "FROM rejections WHERE run_id = ?", [run_id]).fetchone()[0]
        landed_sites = [s for s, status in report.sites.items() if status == "ok"]
        if not landed_sites:
            report.status = "failed"
        elif len(landed_sites) < len(outcomes) or report.rejected:
            report.status = "partial"
        else:
            report.status = "ok"
        totals = [sum(getattr(o, attr) for o in outcomes)
                  for attr in ("steps", "llm_calls", "input_tokens", "output_tokens")]
        conn.execute(
            """
            UPDATE runs SET status = ?, finished_at = max(started_at, ?), model = ?, executor = ?, steps = ?,
                   llm_calls = ?, input_tokens = ?, output_tokens = ?, duration_s = ?, stories = ?,
                   rejected = ?, error = ?
            WHERE id = ?
            """,
            [report.status, now_iso(), model, executor, *totals,
             round(time.monotonic() - started, 3) if started is not None else None,
             report.stories, report.rejected, "; ".join(report.errors) or None, run_id],
        )
    return report


def merge_site(conn, run_id: int, outcome: SiteResult, report: SyncReport, ids: dict) -> bool:
    """Merge one site inside the caller's transaction; return whether it landed."""
    box = outcome.box
    status, error = outcome.status, outcome.error
    if status == "ok" and box is not None:
        problems = validate(box.path)
        if problems:
            status, error = "failed", "sandbox rejected: " + "; ".join(problems)
            reject(conn, run_id, outcome.source, "sandbox", error)
    judged = 0
    if status == "ok":
        for item, reason in box.rejected:  # candidates the schema refused at preload
            reject(conn, run_id, outcome.source, item, reason)
        local_to_history = {}
        for local_id, story in box.candidates.items():
            history_id = upsert_story(conn, run_id, story)
            local_to_history[local_id] = history_id
            ids[(story.source, story.source_id)] = history_id
            sandbox.insert_sighting(conn, run_id, history_id, story)
        judged = copy_judgments(conn, run_id, outcome.source, box, local_to_history)
        report.stories += len(local_to_history)
        report.judged += judged
    if error:
        report.errors.append(f"{outcome.source}: {error}")
    conn.execute(
        """
        INSERT INTO run_sites (run_id, source, status, candidates, judged, steps, llm_calls, input_tokens,
                               output_tokens, fetch_s, judge_s, error)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [run_id, outcome.source, status, len(box.candidates) if box else 0, judged, outcome.steps, outcome.llm_calls,
         outcome.input_tokens, outcome.output_tokens, round(outcome.fetch_s, 3), round(outcome.judge_s, 3), error],
    )
    return status == "ok"


def upsert_story(conn, run_id: int, story) -> int:
    """Insert a story or refresh its facts; its id and first_seen_run never change."""
    row = conn.execute(
        "SELECT id, submitted_at FROM stories WHERE source = ? AND source_id = ?", [story.source, story.source_id]
    ).fetchone()
    if row is None:
        return sandbox.insert_story(conn, None, story, run_id)
    story_id, known_submitted_at = row
    columns = sandbox.story_columns(story)
    columns["submitted_at"] = columns["submitted_at"] or known_submitted_at  # older pages may not say
    conn.execute(
        f"UPDATE stories SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?", [*columns.values(), story_id]
    )
    return story_id


def copy_judgments(conn, run_id: int, source: str, box: sandbox.Sandbox, local_to_history: dict[int, int]) -> int:
    """Judgments and tags for this run's candidates, each through the history's constraints.

    Text is decoded per value: bytes that are not UTF-8 (`CAST(x'ff' AS TEXT)` stores
    them) come through as lone surrogates, which the insert below refuses for that row
    alone, with Python's reason.
    """
    src = sqlite3.connect(f"file:{box.path}?mode=ro", uri=True)
    src.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
    try:
        judgments = src.execute("SELECT run_id, story_id, relevant, score, summary, reason FROM judgments").fetchall()
        tags = src.execute("SELECT run_id, story_id, tag FROM story_tags").fetchall()
    finally:
        src.close()
    landed = 0
    for sb_run, local_id, relevant, score, summary, reason in judgments:
        item = f"judgment for story {local_id}"
        if sb_run != run_id or local_id not in local_to_history:
            reject(conn, run_id, source, item, "not one of this run's candidates")
            continue
        if insert_row(conn, run_id, source, item,
                      "INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      [run_id, local_to_history[local_id], relevant, score, summary, reason]):
            landed += 1
            conn.execute("UPDATE stories SET summary = ? WHERE id = ?", [summary, local_to_history[local_id]])
    for sb_run, local_id, tag in tags:
        item = f"tag {tag!r} for story {local_id}"
        if sb_run != run_id or local_id not in local_to_history:
            reject(conn, run_id, source, item, "not one of this run's candidates")
            continue
        insert_row(conn, run_id, source, item, "INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)",
                   [run_id, local_to_history[local_id], tag])
    return landed


def insert_row(conn, run_id: int, source: str, item: str, sql: str, params: list) -> bool:
    """One INSERT under a savepoint: a refused row is recorded with SQLite's reason."""
    try:
        with store.savepoint(conn):
            conn.execute(sql, params)
    except (sqlite3.Error, UnicodeError, OverflowError) as exc:
        reject(conn, run_id, source, item, str(exc))
        return False
    return True


def reject(conn, run_id: int, source: str, item: str, reason: str) -> None:
    """Record a refused row; past MAX_REJECTIONS for a site, count it in one summary row instead.

    A tampered sandbox with a million bogus rows must not add a million rows to history.
    """
    def safe(text: str, limit: int) -> str:  # whatever came in, storable text
        return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]

    count = conn.execute("SELECT count(*) FROM rejections WHERE run_id = ? AND source = ?",
                         [run_id, source]).fetchone()[0]
    if count < MAX_REJECTIONS:
        conn.execute("INSERT INTO rejections (run_id, source, item, reason) VALUES (?, ?, ?, ?)",
                     [run_id, source, safe(item, 200), safe(reason, 1000)])
        return
    summary = conn.execute("SELECT id, reason FROM rejections WHERE run_id = ? AND source = ? AND item = 'more rows'",
                           [run_id, source]).fetchone()
    if summary is None:
        conn.execute("INSERT INTO rejections (run_id, source, item, reason) VALUES (?, ?, 'more rows', ?)",
                     [run_id, source, "1 more row refused (not recorded one by one)"])
    else:
        more = int(summary[1].split()[0]) + 1
        conn.execute("UPDATE rejections SET reason = ? WHERE id = ?",
                     [f"{more} more rows refused (not recorded one by one)", summary[0]])
