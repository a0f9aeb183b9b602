"""One refresh, end to end: fetch/snapshot -> parse -> sandbox per site -> agents in parallel
-> collector -> validated atomic sync -> run record.

A site that fails at any stage (unreachable, changed layout, agent gave up,
tampered sandbox) is recorded and the other site still lands: the run is
`partial`. Sandboxes of landed sites are removed; the others are kept under
``<data>/sandboxes/<run_id>/`` for inspection and pruned after a retention period.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import agent, collect, parse, sandbox, sources, store, sync

SANDBOX_RETENTION_DAYS = 14


@dataclass
class Options:
    db: str | None = None
    snapshot: Path | None = None
    sources: tuple[str, ...] = tuple(sources.SOURCES)
    model: str = "rules"
    model_options: dict = field(default_factory=dict)
    executor: str = "local"
    executor_kwargs: dict = field(default_factory=dict)
    max_steps: int = agent.DEFAULT_MAX_STEPS
    profile: str = agent.DEFAULT_PROFILE
    wait: bool = True
    python_executor_factory: Callable | None = None  # tests: a stand-in remote executor per site
    echo: Callable[[str], None] = lambda message: None


def refresh(options: Options) -> sync.SyncReport:
    """Run one refresh under the history DB's lock; return the sync report."""
    db_path = store.db_path(options.db)
    history = store.open_db(db_path)
    data_dir = db_path.parent
    with sync.refresh_lock(db_path, wait=options.wait,
                           on_wait=lambda: options.echo("waiting for another refresh to finish...")):
        prune(data_dir / "sandboxes", SANDBOX_RETENTION_DAYS)
        conn = history.conn
        started = time.monotonic()
        run_id, started_at = sync.start_run(conn, options.model, options.executor)
        try:
            return run(options, conn, run_id, started_at, data_dir, started)
        except BaseException as exc:
            sync.fail_run(conn, run_id, agent.describe(exc), time.monotonic() - started)
            raise


def run(options: Options, conn, run_id: int, started_at: str, data_dir: Path, started: float) -> sync.SyncReport:
    box_dir = data_dir / "sandboxes" / str(run_id)
    failed: list[sync.SiteResult] = []
    boxes: list[sandbox.Sandbox] = []
    fetch_times = {}
    for source in options.sources:
        t0 = time.monotonic()
        try:
            if options.snapshot is not None:
                page = sources.read_snapshot(source, options.snapshot)
            else:
                page = sources.fetch(source, data_dir / "raw")
            stories = parse.parse(source, page.html)
        except parse.SourceError as exc:
            options.echo(str(exc))
            failed.append(sync.SiteResult(source=source, error=exc.reason, fetch_s=time.monotonic() - t0))
            continue
        fetch_times[source] = time.monotonic() - t0
        boxes.append(sandbox.create(box_dir / f"{source}.db", source, run_id, started_at, stories))
        options.echo(f"{source}: {len(stories)} stories from {page.path or page.url}")

    vocabulary = dict(conn.execute("SELECT slug, description FROM tags ORDER BY rowid").fetchall())
    factory = lambda: agent.make_model(options.model, **options.model_options)  # noqa: E731
    results = []
    if boxes:
        kwargs = dict(profile=options.profile, vocabulary=vocabulary, executor=options.executor,
                      executor_kwargs=options.executor_kwargs, max_steps=options.max_steps)
        if options.python_executor_factory is not None:
            results = [agent.judge_site(box, factory(), python_executor=options.python_executor_factory(), **kwargs)
                       for box in boxes]
        else:
            results = agent.judge_sites(boxes, factory, **kwargs)
    for result in results:
        result.fetch_s = fetch_times.get(result.source, 0.0)
        options.echo(f"{result.source}: judge {result.status}" + (f" ({result.error})" if result.error else ""))

    sound = [r.box for r in results if r.status == "ok" and not sync.validate(r.box.path)]
    note = None
    if sound:
        try:
            note = collect.editor_note(factory(), sound)
        except Exception as exc:  # the digest falls back to the host's deterministic note
            options.echo(f"collector: editor's note failed ({agent.one_line(str(exc))}); using the plain digest")
    report = sync.merge(conn, run_id, failed + results, model=options.model, executor=options.executor,
                        note=note, links=collect.cross_posts(sound), started=started)
    for result in results:
        if report.sites.get(result.source) == "ok":
            result.box.path.unlink(missing_ok=True)
    if box_dir.is_dir() and not any(box_dir.iterdir()):
        box_dir.rmdir()
    return report


def prune(folder: Path, days: int) -> None:
    """Remove entries older than `days` (kept sandboxes of failed runs)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - days * 86400
    for entry in folder.iterdir():
        if entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
