"""Careless input at the command line: every bad value is one clear line and a non-zero exit, never a traceback.

Each row runs the installed `newsreader` command as a user would, in a fresh folder.
"""

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import refresh

from ..helpers import SNAPSHOT
from .figures import after_module, record

NEWSREADER = str(Path(sys.executable).with_name("newsreader"))
LABELS_HEADER = "source,file,rank,title,url,domain,native_tags,relevant,tags\n"


def run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSREADER_")}
    return subprocess.run([NEWSREADER, *args], cwd=folder, capture_output=True, text=True, env=env, timeout=120)


def another_apps_db(path: Path, tables=("users",)) -> str:
    conn = sqlite3.connect(path)
    for table in tables:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute(f"INSERT INTO {table} (name) VALUES ('alice')")
    conn.commit()
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


# name: (files to write in the folder, argv, the message expected on the last line)
CASES = {
    "runs --limit 1e20": ({}, ["runs", "--limit", "1e20"], "Invalid value for '--limit'"),
    "runs --limit 10**30": ({}, ["runs", "--limit", "1" + "0" * 30], "Invalid value for '--limit'"),
    "init with a tag description over 200 characters": (
        {"newsreader.toml": f"[tags]\nai = '{'x' * 201}'\n"}, ["init"],
        "config key 'tags.ai' is refused by schema.sql"),
    "init with a control character in a tag description": (
        {"newsreader.toml": '[tags]\nai = "AI \\u0001"\n'}, ["init"], "config key 'tags.ai' is refused by schema.sql"),
    "config file that is not UTF-8": ({"newsreader.toml": b"[profile]\ninterests = 'caf\xe9'\n"}, ["config"],
                                      "is not UTF-8 text"),
    "max_steps of a million": ({"newsreader.toml": "max_steps = 1000000\n"}, ["refresh", "--snapshot", str(SNAPSHOT)],
                               "must be a whole number from 1 to 50"),
    "eval labels that are not UTF-8": (
        {"labels.csv": LABELS_HEADER.encode() + b"hn,p.html,1,Caf\xe9,,,,1,\n"}, ["eval", "--labels", "labels.csv"],
        "are not UTF-8 text"),
    "--step-timeout 0": ({}, ["refresh", "--step-timeout", "0"], "Invalid value for '--step-timeout'"),
    "a --db that is a folder": ({"folder/x": "x"}, ["runs", "--db", "folder"], "Error:"),
    "a --db that is not SQLite": ({"notes.txt": "hello, not a database\n" * 100}, ["runs", "--db", "notes.txt"],
                                  "cannot open history database notes.txt: file is not a database"),
}
SEEN = {"cases": 0}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_clear_line(tmp_path, name):
    files, argv, message = CASES[name]
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    done = run(tmp_path, *argv)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and message in last, done.stderr
    if not any(line.startswith("Usage:") for line in done.stderr.splitlines()):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # not a usage error: exactly one line
    SEEN["cases"] += 1


@pytest.mark.parametrize("tables", [("users",), ("users", "stories")], ids=["other tables", "a name clash"])
@pytest.mark.parametrize("command", [["init"], ["refresh", "--snapshot", str(SNAPSHOT)], ["runs"], ["status"]])
def test_another_applications_database_is_left_alone(tmp_path, tables, command):
    path = tmp_path / "app.db"
    before = another_apps_db(path, tables)
    done = run(tmp_path, *command, "--db", str(path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: {path} is another application's SQLite database (tables newsreader does not have: users); "
        "newsreader leaves it untouched: choose another --db"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, -shm or lock file beside it
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    SEEN["cases"] += 1


@pytest.mark.parametrize("link", ["symlink", "hard link", "relative path"])
def test_one_refresh_per_database_file_whatever_path_reaches_it(tmp_path, link):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "news.db"
    assert run(tmp_path, "init", "--db", str(db)).returncode == 0
    other = tmp_path / "elsewhere.db"
    if link == "symlink":
        other.symlink_to(db)
    elif link == "hard link":
        os.link(db, other)
    else:
        other = Path("data") / "news.db"
    with refresh.refresh_lock(db, wait=False):
        done = run(tmp_path, "refresh", "--snapshot", str(SNAPSHOT), "--no-wait", "--db", str(other))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("Error: another refresh is running on")
    SEEN["cases"] += 1


@after_module(lambda: any(SEEN.values()))
def cli_input_figures():
    record("careless command-line input and someone else's --db (real CLI)", SEEN["cases"], SEEN["cases"], 0, 0,
           "one clear line and a non-zero exit each; another application's database byte-identical, "
           "journal mode unchanged; the refresh lock held through a symlink, a hard link and a relative path")
