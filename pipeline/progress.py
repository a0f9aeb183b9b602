"""Progress for people and logs for machines.

Every stage of every site (fetch, parse, judge, validate, sync) is reported once:
on a terminal as a rich progress bar per site plus one line per stage; in cron
(`--quiet`) only errors; with `--verbose` also each agent step. Every event is
also appended as one JSON object per line to ``<data>/logs/YYYY-MM-DD.jsonl``.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

STAGES = ("fetch", "parse", "read", "judge", "validate", "sync")
STYLES = {"ok": "green", "failed": "bold red", "partial": "yellow", "skipped": "yellow", "step": "dim"}


class Reporter:
    def __init__(self, log_dir: Path | None = None, *, quiet: bool = False, verbose: bool = False,
                 console: Console | None = None):
        self.quiet, self.verbose = quiet, verbose
        self.console = console or Console(stderr=True, highlight=False)
        self.log_path = None
        if log_dir is not None:  # created at the first event, so a refused --db leaves nothing behind
            self.log_path = log_dir / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        self.lock = threading.Lock()
        self.progress: Progress | None = None
        self.tasks: dict[str, int] = {}
        self.run_id: int | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self, run_id: int, sites: list[str]) -> None:
        self.run_id = run_id
        if self.console.is_terminal and not self.quiet:
            self.progress = Progress(TextColumn("{task.fields[site]:<9}"), BarColumn(bar_width=20),
                                     TextColumn("{task.description}"), console=self.console, transient=True)
            self.progress.start()
            for site in sites:
                self.tasks[site] = self.progress.add_task("waiting", total=len(STAGES), site=site)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    # -- events ---------------------------------------------------------------------

    def stage(self, site: str, stage: str, status: str, detail: str = "", **fields) -> None:
        """One stage of one site finished (ok / failed / skipped)."""
        self.log(site=site, stage=stage, status=status, detail=detail, **fields)
        if self.progress is not None and site in self.tasks:
            done = STAGES.index(stage) + 1 if stage in STAGES else 0
            self.progress.update(self.tasks[site], completed=len(STAGES) if status == "failed" else done,
                                 description=f"{stage} {status}")
        if status == "failed" or not self.quiet:
            style = STYLES.get(status, "")
            self.print(f"{site:<9} {stage:<9} [{style}]{status:<7}[/{style}] {escape(detail)}", status == "failed")

    def step(self, site: str, number: int, text: str) -> None:
        """An agent step (only shown with --verbose; always logged)."""
        self.log(site=site, stage="judge", status="step", step=number, detail=text[:2000])
        if self.verbose and not self.quiet:
            self.print(f"{site:<9} step {number:<4} [dim]{escape(text[:500])}[/dim]")

    def message(self, text: str, *, error: bool = False) -> None:
        self.log(stage="run", status="failed" if error else "info", detail=text)
        if error or not self.quiet:
            self.print(f"[bold red]error:[/bold red] {escape(text)}" if error else escape(text), error)

    # -- output ---------------------------------------------------------------------

    def print(self, markup: str, error: bool = False) -> None:
        with self.lock:
            (self.progress.console if self.progress else self.console).print(markup, soft_wrap=True)

    def log(self, **event) -> None:
        if self.log_path is None:
            return
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "run_id": self.run_id, **event}
        with self.lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def escape(text: str) -> str:
    """Untrusted text (titles, model output) must not be read as rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
