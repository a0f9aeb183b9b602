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

from . import articles, schema
from .parse import Story
from .schema import insert_sighting, insert_story, reference_vocabulary
from .sites import Source
from .sqltool import SqlTool

__all__ = ["JUDGMENT_TABLES", "MAX_SANDBOX_BYTES", "Sandbox", "SqlTool", "create", "insert_sighting", "insert_story",
           "judged_summary", "reference_vocabulary", "validate"]

JUDGMENT_TABLES = ("judgments", "story_tags")


@dataclass
class Sandbox:
    """A site's sandbox DB on the host, and which candidate each sandbox story id is."""

    path: Path
    source: str
    run_id: int
    candidates: dict[int, Story] = field(default_factory=dict)  # sandbox story id -> story
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (item, reason) refused at preload
    votes: int = 0  # rows of the reader's votes in its reader_votes table


def create(path: Path, source: str, run_id: int, started_at: str, stories: list[Story],
           vocabulary: dict[str, str] | None = None, site: Source | None = None) -> Sandbox:
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
        with schema.transaction(conn, "DEFERRED"):
            schema.apply_schema(conn)
            if vocabulary is not None:
                schema.sync_tags(conn, vocabulary)
            if site is not None:
                schema.sync_sources(conn, [site])
            schema.ensure_source(conn, source)
            conn.execute("INSERT INTO runs (id, started_at) VALUES (?, ?)", [run_id, started_at])
            next_id = 1
            for story in stories:
                try:
                    with schema.savepoint(conn, "candidate"):
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


SANDBOX_COMMENTS = 10  # per story: the judge reads the first comments, not the whole thread
SANDBOX_VOTES = 30  # the reader's most recent votes the judge sees as examples (the prompt does not grow)


def add_votes(box: Sandbox, votes: list) -> None:
    """The reader's votes (learn.Vote) into the sandbox's `reader_votes`, instead of those it held, read-only
    to the judge: examples of taste."""
    if not votes and not box.votes:
        return
    box.votes = len(votes)
    conn = sqlite3.connect(box.path, isolation_level=None)
    try:
        with schema.transaction(conn):
            conn.execute("DELETE FROM reader_votes")  # a batch's votes replace the last batch's
            for v in votes:
                tags = ", ".join(v.tags or v.site_tags or [])[:200] or None
                conn.execute("INSERT INTO reader_votes (title, domain, tags, vote) VALUES (?, ?, ?, ?)",
                             [v.title[:300], v.domain, tags, v.vote])
    finally:
        conn.close()


def add_reading(box: Sandbox, reading: articles.Reading) -> None:
    """Give the judge what was read: each candidate's article excerpt and first comments, read-only
    to it (the tool writes only judgments and tags). A row the schema refuses is left out, noted."""
    conn = sqlite3.connect(box.path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with schema.transaction(conn):
            for local_id, story in box.candidates.items():
                article = reading.articles.get(story.source_id)
                if article is not None and article.status == "ok":
                    try:
                        with schema.savepoint(conn, "article"):
                            conn.execute(*article_sql(article, story, excerpt=True))
                    except (sqlite3.Error, UnicodeError) as exc:
                        box.rejected.append((f"article of story {story.source_id}", f"article refused: {exc}"))
                thread = reading.discussions.get(story.source_id)
                for position, comment in enumerate(thread.comments[:SANDBOX_COMMENTS] if thread else [], 1):
                    try:
                        with schema.savepoint(conn, "comment"):
                            conn.execute(*comment_sql(local_id, position, comment))
                    except (sqlite3.Error, UnicodeError):
                        continue  # a comment the schema refuses is simply not shown to the judge
    finally:
        conn.close()


def article_sql(article: articles.Article, story: Story, excerpt: bool = False) -> tuple[str, list]:
    """The INSERT of `story`'s article row, under the story's key (the same columns in a sandbox and in
    history; `excerpt`: the judge's cut of the text); a later read of the same key replaces the earlier one."""
    row = {**article.row(), "url": articles.key(story)}
    if excerpt:
        row["text"] = (row["text"] or "")[:articles.EXCERPT_CHARS]
    return (f"INSERT INTO articles ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
            f"ON CONFLICT (url) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in row if c != 'url')}",
            list(row.values()))


def comment_sql(story_id: int, position: int, comment) -> tuple[str, list]:
    return ("INSERT OR REPLACE INTO comments (story_id, position, author, depth, text) VALUES (?, ?, ?, ?, ?)",
            [story_id, position, comment.author, comment.depth, comment.text])


def judged_summary(path: Path, run_id: int, candidate_ids, batch=None) -> list[str]:
    """What is still missing for the agent to be done, as messages for the model: for the stories of its
    `batch` (all the candidates by default), with judgments of any non-candidate an error."""
    conn = schema.connect_untrusted(path)
    try:
        judged = judged_ids(conn, run_id)
        tagged = {row[0] for row in conn.execute("SELECT DISTINCT story_id FROM story_tags WHERE run_id = ?", [run_id])}
        other_runs = conn.execute("SELECT count(*) FROM judgments WHERE run_id <> ?", [run_id]).fetchone()[0]
    finally:
        conn.close()
    candidates = set(candidate_ids)
    wanted = candidates if batch is None else set(batch)
    problems = []
    if wanted - judged:
        problems.append(f"stories without a judgment: {id_ranges(wanted - judged)}")
    if judged - candidates:
        problems.append(f"judgments for story ids that are not candidates: {id_ranges(judged - candidates)}")
    if (judged & wanted) - tagged:
        problems.append(f"judged stories without any tag: {id_ranges((judged & wanted) - tagged)}")
    if other_runs:
        problems.append(f"{other_runs} judgment(s) use a run_id other than {run_id}")
    return problems


def judged_ids(conn: sqlite3.Connection, run_id: int) -> set[int]:
    """The story ids a sandbox holds a judgment of for this run."""
    return {row[0] for row in conn.execute("SELECT story_id FROM judgments WHERE run_id = ?", [run_id])}


@dataclass(frozen=True)
class Standing:
    """Where a batch stands after a step: which of its stories the sandbox holds a judgment of. Its text is
    what the model reads after each step; the memory of earlier steps uses two of them to say what a step
    wrote."""

    batch: frozenset[int]
    judged: frozenset[int]

    @property
    def missing(self) -> frozenset[int]:
        return self.batch - self.judged

    def __str__(self) -> str:
        rest = f"; still to judge: {id_ranges(self.missing)}" if self.missing else \
            "; all judged: call final_answer when tagged"
        return f"Where this batch stands: {len(self.judged)} of {len(self.batch)} judged{rest}."


def standing(path: Path, run_id: int, batch) -> Standing:
    """The batch's standing as the sandbox holds it now (read as untrusted, like every sandbox read)."""
    conn = schema.connect_untrusted(path)
    try:
        judged = judged_ids(conn, run_id)
    finally:
        conn.close()
    return Standing(frozenset(batch), frozenset(batch) & frozenset(judged))


def id_ranges(ids) -> str:
    """Story ids as the model reads them best and shortest: [1-5, 9, 12-30]."""
    spans = []
    for i in sorted(ids):  # story_id is an INTEGER column of a STRICT table
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return "[" + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans) + "]"


def fingerprint(path: Path) -> str | None:
    """SHA-256 of the sandbox file: the bytes validated are the bytes merged, or it is validated again."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


MAX_SANDBOX_BYTES = 64 * 1024 * 1024  # a sandbox of 100 candidates is well under 1 MB


def validate(path: Path, seconds: float = schema.UNTRUSTED_TIME_S) -> list[str]:
    """Everything wrong with a sandbox DB that the host must not merge; [] if it is sound.

    The schema is compared with schema.sql first, before any check that evaluates an expression: an
    extra index or table (the model's code can write the file with real sqlite3 once it escapes the
    interpreter) is refused before `integrity_check` would compute it. Every check runs on one
    connection bounded in time and value size (`schema.connect_untrusted`)."""
    if not Path(path).is_file():
        return [f"sandbox database {path.name} is missing"]
    size = Path(path).stat().st_size
    if size > MAX_SANDBOX_BYTES:
        return [f"sandbox database is {size // 1024 // 1024} MB, over the {MAX_SANDBOX_BYTES // 1024 // 1024} MB cap"]
    try:
        conn = schema.connect_untrusted(path, seconds)
    except sqlite3.Error as exc:
        return [f"cannot open sandbox: {exc}"]
    try:
        problems = schema.schema_differences(schema.schema_of(conn), schema.reference_schema())
        if problems:
            return problems
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            problems.append("integrity_check failed: " + "; ".join(integrity[:5]))
        orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
        if orphans:
            tables = sorted({row[0] for row in orphans})
            problems.append(f"foreign_key_check: {len(orphans)} orphan row(s) in {', '.join(tables)}")
        if not problems:  # an honest agent writes one judgment per candidate and at most three tags each
            stories, judged, tagged = conn.execute(
                "SELECT (SELECT count(*) FROM stories), (SELECT count(*) FROM judgments), "
                "(SELECT count(*) FROM story_tags)").fetchone()
            if judged > stories or tagged > 3 * stories:
                problems.append(f"{judged} judgments and {tagged} tags for {stories} candidates")
        return problems
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return [f"sandbox checks ran past their {seconds:g} s bound; refused"]
        return [f"not a readable SQLite database: {exc}"]
    except sqlite3.DatabaseError as exc:
        return [f"not a readable SQLite database: {exc}"]
    finally:
        conn.close()
