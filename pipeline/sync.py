"""Host sync: land a run in history, every site's validated sandbox in one transaction.

The agent controls its sandbox; the host trusts nothing in it:

- **Validated** before a row is read (`sandbox.validate`, once per site, right after
  the agent stops): `integrity_check`, `foreign_key_check`, and the sandbox's schema
  compared with what `schema.sql` creates. An extra table, a dropped CHECK, a changed
  column, a trigger or view the host did not create: the sandbox is rejected with a
  message saying what differs.
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

import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import collect, sandbox, schema
from .agent import Site, SiteResult
from .models import Usage
from .sandbox import validate


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


STALE_NOTE = "process died during the run (found 'running' by a later refresh)"


def start_run(conn: sqlite3.Connection, model: str, executor: str) -> tuple[int, str]:
    """Mark crashed runs failed, then create this run's row as 'running'."""
    started_at = now_iso()
    with schema.transaction(conn):
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


# --- the merge ----------------------------------------------------------------------------


@dataclass
class SyncReport:
    run_id: int
    status: str
    stories: int = 0
    judged: int = 0
    rejected: int = 0
    reused: int = 0  # of the judged, carried over from an earlier run without a model call
    llm_calls: int = 0
    cost_usd: float | None = 0.0  # None when a model's price is unknown
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
    collector: Usage | None = None,
) -> SyncReport:
    """Validate and merge every site's sandbox, and finish the run record, in ONE transaction.

    `collector` is the editor's-note call: its tokens and cost count in the run's totals.
    """
    report = SyncReport(run_id=run_id, status="failed")
    conn.execute("PRAGMA foreign_keys = ON")
    with schema.transaction(conn):
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
        elif len(landed_sites) < len(outcomes) or report.rejected or report.errors:  # errors: a failed batch
            report.status = "partial"
        else:
            report.status = "ok"
        callers = [*outcomes, *([collector] if collector else [])]
        steps = sum(o.steps for o in outcomes)
        totals = [sum(getattr(o, attr) for o in callers) for attr in ("llm_calls", "input_tokens", "output_tokens")]
        costs = [o.cost_usd for o in callers if o.llm_calls]
        report.llm_calls = totals[0]
        report.cost_usd = None if None in costs else round(sum(costs), 6)
        conn.execute(
            """
            UPDATE runs SET status = ?, finished_at = max(started_at, ?), model = ?, executor = ?, steps = ?,
                   llm_calls = ?, input_tokens = ?, output_tokens = ?, cost_usd = ?, duration_s = ?, stories = ?,
                   rejected = ?, error = ?
            WHERE id = ?
            """,
            [report.status, now_iso(), model, executor, steps, *totals, report.cost_usd,
             round(time.monotonic() - started, 3) if started is not None else None,
             report.stories, report.rejected, "; ".join(report.errors) or None, run_id],
        )
    return report


def merge_site(conn, run_id: int, outcome: SiteResult, report: SyncReport, ids: dict) -> bool:
    """Merge one site inside the caller's transaction; return whether it landed."""
    site = outcome.site
    box = site.box if site is not None else None
    status, error = outcome.status, outcome.error
    if status == "ok" and box is not None:
        unchanged = outcome.problems is not None and sandbox.fingerprint(box.path) == outcome.fingerprint
        problems = outcome.problems if unchanged else validate(box.path)
        if problems:
            status, error = "failed", "sandbox rejected: " + "; ".join(problems)
            reject(conn, run_id, outcome.source, "sandbox", error)
    judged = reused = 0
    if status == "ok":
        for item, reason in box.rejected:  # candidates the schema refused at preload
            reject(conn, run_id, outcome.source, item, reason)
        local_to_history = {}
        for local_id, story in box.candidates.items():
            history_id = upsert_story(conn, run_id, story)
            local_to_history[local_id] = history_id
            ids[(story.source, story.source_id)] = history_id
            schema.insert_sighting(conn, run_id, history_id, story)
        store_reading(conn, run_id, outcome.source, site, local_to_history)
        judged = copy_judgments(conn, run_id, outcome.source, site, local_to_history)
        for story, earlier_run in site.reused:
            history_id = upsert_story(conn, run_id, story)
            ids[(story.source, story.source_id)] = history_id
            schema.insert_sighting(conn, run_id, history_id, story)
            reused += carry_over(conn, run_id, outcome.source, history_id, earlier_run)
        judged += reused
        report.stories += len(site.stories)
        report.judged += judged
        report.reused += reused
    if error:
        report.errors.append(f"{outcome.source}: {error}")
    conn.execute(
        """
        INSERT INTO run_sites (run_id, source, status, candidates, judged, reused, steps, llm_calls, input_tokens,
                               output_tokens, fetch_s, judge_s, cost_usd, error, note)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [run_id, outcome.source, status, len(site.stories) if site else 0, judged, reused, outcome.steps,
         outcome.llm_calls, outcome.input_tokens, outcome.output_tokens, round(outcome.fetch_s, 3),
         round(outcome.judge_s, 3), outcome.cost_usd, error, outcome.note if status == "ok" else None],
    )
    return status == "ok"


def store_reading(conn, run_id: int, source: str, site: Site, local_to_history: dict[int, int]) -> None:
    """What the host read for the candidates, into history before their judgments (whose evidence must
    quote it): the whole article text (the sandbox had an excerpt) and the latest first comments."""
    if site.reading is None:
        return
    for local_id, history_id in local_to_history.items():
        story = site.box.candidates[local_id]
        article = site.reading.articles.get(story.source_id)
        if article is not None and site.cached.get(sandbox.articles.key(story)) is not article:
            insert_row(conn, run_id, source, f"article of story {story.source_id}",
                       *sandbox.article_sql(article, story))
        thread = site.reading.discussions.get(story.source_id)
        if thread is not None:
            conn.execute("DELETE FROM comments WHERE story_id = ?", [history_id])
            for position, comment in enumerate(thread.comments, 1):
                insert_row(conn, run_id, source, f"comment {position} of story {story.source_id}",
                           *sandbox.comment_sql(history_id, position, comment))


def carry_over(conn, run_id: int, source: str, story_id: int, earlier_run: int) -> int:
    """Copy a story's judgment and tags from an earlier run into this one, through the history's
    constraints; 1 if it landed."""
    if not insert_row(conn, run_id, source, f"judgment for story {story_id} carried over from run {earlier_run}",
                      "INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence, "
                      "discussion, discussion_evidence, basis, reused_from) SELECT ?, story_id, relevant, score, "
                      "summary, reason, evidence, discussion, discussion_evidence, basis, "
                      "coalesce(reused_from, run_id) "
                      "FROM judgments WHERE run_id = ? AND story_id = ?", [run_id, earlier_run, story_id]):
        return 0
    conn.execute("INSERT INTO story_tags (run_id, story_id, tag) "
                 "SELECT ?, story_id, tag FROM story_tags WHERE run_id = ? AND story_id = ?",
                 [run_id, earlier_run, story_id])
    return 1


def upsert_story(conn, run_id: int, story) -> int:
    """Insert a story or refresh its facts, in one statement; its id and first_seen_run never change."""
    columns = story.columns()
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("source", "source_id", "submitted_at"))
    return conn.execute(
        f"INSERT INTO stories ({', '.join(columns)}, first_seen_run) VALUES ({', '.join('?' * len(columns))}, ?) "
        f"ON CONFLICT (source, source_id) DO UPDATE SET {updates}, "
        "submitted_at = coalesce(excluded.submitted_at, stories.submitted_at) "  # older pages may not say
        "RETURNING id",
        [*columns.values(), run_id],
    ).fetchone()[0]


def copy_judgments(conn, run_id: int, source: str, site: Site, local_to_history: dict[int, int]) -> int:
    """Judgments and tags for this run's candidates, each through the history's constraints.

    Text is decoded per value: bytes that are not UTF-8 (`CAST(x'ff' AS TEXT)` stores
    them) come through as lone surrogates, which the insert below refuses for that row
    alone, with Python's reason.
    """
    box = site.box
    src = schema.connect_untrusted(box.path)
    src.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
    try:
        judgments = src.execute("SELECT run_id, story_id, relevant, score, summary, reason, evidence, discussion, "
                                "discussion_evidence FROM judgments").fetchall()
        tags = src.execute("SELECT run_id, story_id, tag FROM story_tags").fetchall()
    finally:
        src.close()
    landed = 0
    for sb_run, local_id, relevant, score, summary, reason, evidence, discussion, said in judgments:
        item = f"judgment for story {local_id}"
        if sb_run != run_id or local_id not in local_to_history:
            reject(conn, run_id, source, item, "not one of this run's candidates")
            continue
        if insert_row(conn, run_id, source, item,
                      "INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence, "
                      "discussion, discussion_evidence, basis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [run_id, local_to_history[local_id], relevant, score, summary, reason, evidence, discussion, said,
                       site.basis.get(box.candidates[local_id].source_id)]):
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
        with schema.savepoint(conn):
            conn.execute(sql, params)
    except (sqlite3.Error, UnicodeError, OverflowError) as exc:
        reject(conn, run_id, source, item, str(exc))
        return False
    return True


MAX_REJECTIONS = 100  # rows recorded per site and run; the rest are counted in one summary row


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
