"""Crash safety: SIGKILL mid-sync, a full disk, a read-only data directory. History stays intact."""

import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import time

from click.testing import CliRunner

from pipeline import store, sync
from pipeline.cli import cli

from ..helpers import SNAPSHOT, judged_box, with_sites
from ..sandboxes import clone_for_run
from .figures import record, scale


def _merge_in_child(db_path, results, run_id):
    conn = store.connect(db_path)
    sync.merge(conn, run_id, results, model="rules", executor="local")
    os._exit(0)


def test_sigkill_during_sync_leaves_all_or_nothing(tmp_path):
    """Kill a process merging a run at random moments; each time history holds all of that run or none."""
    db_path = tmp_path / "news.db"
    conn = with_sites(store.open_db(db_path)).conn
    ctx = multiprocessing.get_context("fork")
    outcomes = {"none": 0, "all": 0}
    trials = scale(60, 250)
    rng = random.Random(1234)
    templates = [judged_box(tmp_path, source, run_id=0) for source in ("hn", "lobsters")]
    for trial in range(trials):
        run_id, _ = sync.start_run(conn, "rules", "local")
        results = [clone_for_run(t, tmp_path / f"t{trial}", run_id) for t in templates]
        child = ctx.Process(target=_merge_in_child, args=(db_path, results, run_id))
        child.start()
        time.sleep(rng.uniform(0, 0.06))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        check = store.connect(db_path)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        status = check.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()[0]
        counts = [check.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
                  for t in ("sightings", "judgments", "run_sites")]
        check.close()
        if status == "running":
            assert counts == [0, 0, 0], (trial, counts)
            outcomes["none"] += 1
        else:
            assert status == "ok" and counts == [55, 55, 2], (trial, status, counts)
            outcomes["all"] += 1
    assert outcomes["none"] > 0 and outcomes["all"] > 0  # both sides of the commit were hit
    record("SIGKILL during sync", trials, trials, 0, 0,
           f"{outcomes['none']} kills before commit (nothing landed), {outcomes['all']} after (everything landed), "
           "0 partial states, integrity_check ok every time")


def content_hash(db) -> str:
    """A hash of every row of the history tables except the run bookkeeping a failed run adds."""
    conn = sqlite3.connect(db)
    digest = hashlib.sha256()
    for table in ("stories", "sightings", "judgments", "story_tags", "story_links", "digests", "tags"):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            digest.update(repr(row).encode())
    conn.close()
    return digest.hexdigest()


def test_disk_full_during_sync_leaves_history_intact(refreshed_copy, monkeypatch):
    db = refreshed_copy
    before = content_hash(db)
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    real_connect = store.connect

    def small_disk(path, **kwargs):
        conn = real_connect(path, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # a disk with three pages left
        return conn

    monkeypatch.setattr(store, "connect", small_disk)
    result = CliRunner().invoke(cli, ["refresh", "-q", "--db", str(db), "--snapshot", str(SNAPSHOT)])
    assert result.exit_code == 1
    assert "database or disk is full" in result.output and "Traceback" not in result.output
    assert content_hash(db) == before
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    record("disk full during sync (PRAGMA max_page_count)", 1, 1, 0, 0,
           "clear error, exit 1, history rows identical (content hash), integrity_check ok")


def make_read_only(paths, on: bool) -> None:
    """Read-only for real: root ignores permission bits, so as root use the immutable attribute."""
    for path in paths:
        if os.geteuid() == 0:
            done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, f"cannot make {path} read-only as root (chattr): {done.stderr.strip()}"
        else:
            path.chmod((0o555 if path.is_dir() else 0o444) if on else (0o755 if path.is_dir() else 0o644))


def test_read_only_data_directory_is_a_clear_error(refreshed_copy, tmp_path):
    db = refreshed_copy
    data = db.parent
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    before = content_hash(db)
    paths = [*data.iterdir(), data]
    make_read_only(paths, True)
    try:
        result = CliRunner().invoke(cli, ["refresh", "-q", "--db", str(db), "--snapshot", str(SNAPSHOT)])
    finally:
        make_read_only(paths, False)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert content_hash(db) == before
    message = result.output.strip().replace(str(tmp_path), "…")
    record("read-only data directory", 1, 1, 0, 0, f"one clear line: {message[:100]}")
