"""Judged sandboxes to reuse across runs (for crash trials and benchmarks, where judging again would
measure the agent instead of the sync)."""

import dataclasses
import shutil
import sqlite3


def clone_for_run(result, folder, run_id):
    """A copy of a judged sandbox (an agent.SiteResult), renumbered to another run."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / result.box.path.name
    shutil.copy(result.box.path, path)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA foreign_keys = OFF")
    for table, column in (("runs", "id"), ("stories", "first_seen_run"), ("sightings", "run_id"),
                          ("judgments", "run_id"), ("story_tags", "run_id")):
        c.execute(f"UPDATE {table} SET {column} = ?", [run_id])
    c.close()
    site = dataclasses.replace(result.site, box=dataclasses.replace(result.box, path=path, run_id=run_id))
    return dataclasses.replace(result, site=site)
