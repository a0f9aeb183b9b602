"""One refresh, end to end: fetch/snapshot -> parse -> sandbox per site -> agents in parallel
-> collector -> validated atomic sync -> run record -> digest file.

A site that fails at any stage (unreachable, changed layout, agent gave up,
tampered sandbox) is recorded and the other site still lands: the run is
`partial`. Sandboxes of landed sites are removed; the others are kept under
``<data>/sandboxes/<run_id>/`` for inspection. Raw pages and kept sandboxes are
pruned after the retention period; the history DB never is.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import sqlite3
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import agent, collect, parse, sandbox, sources, store, sync
from .progress import Reporter
from .settings import MAX_CANDIDATES, Judge
from .text import describe, one_line, without_paths


@dataclass
class Options:
    db: str | None = None
    data_dir: Path | None = None  # raw/, sandboxes/, digests/, logs/; default: the DB's folder
    snapshot: Path | None = None
    sources: tuple[str, ...] = tuple(sources.SOURCES)
    source_urls: dict[str, str] = field(default_factory=dict)
    judge: Judge = field(default_factory=Judge)  # model, executor, steps, deadlines, profile
    max_candidates: int = MAX_CANDIDATES
    vocabulary: dict[str, str] | None = None  # synced into the tags table; None keeps the history's
    retention_days: int = 14
    transport: object | None = None  # an httpx transport (tests: httpx.MockTransport)
    wait: bool = True
    python_executor_factory: Callable | None = None  # tests: a stand-in remote executor per site
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))

    @classmethod
    def from_config(cls, config, **overrides) -> Options:
        """Options from a loaded `config.Config` (command-line values are already in it)."""
        return cls(
            db=str(config.db), data_dir=config.data_dir, sources=tuple(config.sources),
            source_urls=config.sources, judge=config.judge(), max_candidates=config["max_candidates"],
            vocabulary=config.vocabulary, retention_days=config["retention_days"], **overrides,
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


def refresh(options: Options) -> sync.SyncReport:
    """Run one refresh under the history DB's lock; return the sync report."""
    db_path = store.db_path(options.db)
    history = store.open_db(db_path)
    data_dir = Path(options.data_dir) if options.data_dir else db_path.parent
    report = options.reporter
    # Before the lock and the run record: an LLM model with no jail is refused here, with the fix.
    judge = options.judge = options.judge.but(
        executor=agent.choose_executor(options.judge.executor, options.judge.model, report.message))
    with refresh_lock(db_path, wait=options.wait,
                           on_wait=lambda: report.message("waiting for another refresh to finish...")):
        for folder in (data_dir / "sandboxes", data_dir / "raw"):
            prune(folder, options.retention_days)
        conn = history.conn
        if options.vocabulary is not None:
            store.sync_tags(conn, options.vocabulary)
        started = time.monotonic()
        run_id, started_at = sync.start_run(conn, judge.model, judge.executor)
        report.start(run_id, list(options.sources))
        try:
            result = run(options, conn, run_id, started_at, data_dir, started)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):  # e.g. the disk is still full: the next refresh marks it
                sync.fail_run(conn, run_id, without_paths(describe(exc), data_dir), time.monotonic() - started)
            raise
        finally:
            report.stop()
    if result.digest:
        path = write_digest(data_dir / "digests", started_at, result.digest)
        report.message(f"digest: {path}")
    return result


def run(options: Options, conn, run_id: int, started_at: str, data_dir: Path, started: float) -> sync.SyncReport:
    report = options.reporter
    box_dir = data_dir / "sandboxes" / str(run_id)
    failed: list[agent.SiteResult] = []
    boxes: list[sandbox.Sandbox] = []
    fetch_times = {}
    vocabulary = dict(conn.execute("SELECT slug, description FROM tags ORDER BY rowid").fetchall())
    client = sources.make_client(options.transport) if options.snapshot is None else None
    for source in options.sources:
        t0 = time.monotonic()
        try:
            if client is None:
                page = sources.read_snapshot(source, options.snapshot)
            else:
                page = sources.fetch(source, data_dir / "raw", url=options.source_urls.get(source), client=client)
            report.stage(source, "fetch", "ok", str(page.path or page.url))
            parsed = parse.parse_page(source, page.html)
        except parse.SourceError as exc:
            stage = "parse" if isinstance(exc, parse.LayoutError) else "fetch"
            report.stage(source, stage, "failed", exc.reason)
            failed.append(agent.SiteResult(source=source, error=exc.reason, fetch_s=time.monotonic() - t0))
            continue
        fetch_times[source] = time.monotonic() - t0
        stories, refused = parsed.stories[:options.max_candidates], list(parsed.refused)
        if len(parsed.stories) > options.max_candidates:
            refused.append(("page", f"{len(parsed.stories) - options.max_candidates} stories after the first "
                                    f"{options.max_candidates} not judged (max_candidates)"))
        box = sandbox.create(box_dir / f"{source}.db", source, run_id, started_at, stories, vocabulary)
        box.rejected[:0] = refused
        boxes.append(box)
        report.stage(source, "parse", "ok", f"{len(box.candidates)} stories"
                     + (f", {len(box.rejected)} refused: {box.rejected[0][1]}" if box.rejected else ""))

    if client is not None:
        client.close()
    judge = options.judge
    factory = lambda: agent.make_model(judge.model, **judge.model_options)  # noqa: E731
    results = []
    if boxes:
        kwargs = dict(vocabulary=vocabulary, judge=judge, step_reporter=report.step)
        if options.python_executor_factory is not None:
            results = [agent.judge_site(box, factory(), python_executor=options.python_executor_factory(), **kwargs)
                       for box in boxes]
        else:
            results = agent.judge_sites(boxes, factory, **kwargs)
    sound = []
    for result in results:
        result.fetch_s = fetch_times.get(result.source, 0.0)
        report.stage(result.source, "judge", result.status,
                     result.error or f"{result.steps} step(s), {result.llm_calls} model call(s), "
                     f"{result.input_tokens + result.output_tokens} tokens, {result.judge_s:.1f} s")
        if result.status == "ok":
            problems = result.problems or []
            report.stage(result.source, "validate", "failed" if problems else "ok", "; ".join(problems))
            if not problems:
                sound.append(result.box)

    note = None
    if sound:
        try:
            note = collect.editor_note(factory(), sound)
        except Exception as exc:  # the digest falls back to the host's deterministic note
            report.message(f"collector: editor's note failed ({one_line(str(exc))}); using the plain digest")
    for outcome in failed + results:  # run records are published: no server paths in them
        outcome.error = outcome.error and without_paths(outcome.error, data_dir)
    result = sync.merge(conn, run_id, failed + results, model=judge.model, executor=judge.executor,
                        note=note, links=collect.cross_posts(sound), started=started)
    for site in results:
        landed = result.sites.get(site.source) == "ok"
        if site.status == "ok":
            report.stage(site.source, "sync", "ok" if landed else "failed",
                         f"run {run_id}" if landed else "kept in " + str(site.box.path))
        if landed:
            site.box.path.unlink(missing_ok=True)
    if box_dir.is_dir() and not any(box_dir.iterdir()):
        box_dir.rmdir()
    return result


def write_digest(folder: Path, started_at: str, body: str) -> Path:
    """data/digests/YYYY-MM-DD.md: the day's digest (a later run the same day replaces it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started_at[:10]}.md"
    path.write_text(body, encoding="utf-8")
    return path


def prune(folder: Path, days: int) -> None:
    """Remove entries older than `days` (raw page folders, kept sandboxes of failed runs)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - days * 86400
    for entry in folder.iterdir():
        if entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
