"""Everyday use: configuration, quiet runs, digest files, status, schedules, retention."""

import configparser
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline import config
from pipeline.cli import cli
from pipeline.schedule import recipe

from .helpers import SNAPSHOT


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory, as a new user has: no config file, no environment."""
    monkeypatch.chdir(tmp_path)
    for var in ("NEWSREADER_CONFIG", "NEWSREADER_DB", "NEWSREADER_MODEL", "NEWSREADER_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def run(*args, **kwargs):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


def test_defaults_then_file_then_environment_then_flags(workdir, monkeypatch):
    assert config.load()["model.id"] == "rules"
    (workdir / "newsreader.toml").write_text('max_steps = 4\n[model]\nid = "openai/gpt-4.1-mini"\n')
    cfg = config.load()
    assert (cfg["model.id"], cfg.origins["model.id"]) == ("openai/gpt-4.1-mini", "newsreader.toml")
    assert (cfg["max_steps"], cfg.origins["max_steps"]) == (4, "newsreader.toml")
    monkeypatch.setenv("NEWSREADER_MODEL", "ollama/llama3.1")
    assert config.load().origins["model.id"] == "NEWSREADER_MODEL"
    cfg = config.load(overrides={"model.id": "rules", "max_steps": None})
    assert (cfg["model.id"], cfg.origins["model.id"], cfg["max_steps"]) == ("rules", "command line", 4)


def test_config_file_from_flag_or_environment(workdir, monkeypatch):
    other = workdir / "elsewhere.toml"
    other.write_text('data_dir = "/srv/news"\n')
    assert config.load(other).db == config.Path("/srv/news/news.db")
    monkeypatch.setenv("NEWSREADER_CONFIG", str(other))
    out = run("config")
    assert f"data_dir = '/srv/news'  # {other}" in out.output


def test_config_command_says_where_each_value_came_from(workdir):
    (workdir / "newsreader.toml").write_text('[sources.hn]\nurl = "https://news.ycombinator.com/best"\n')
    out = run("config")
    assert out.exit_code == 0
    assert "sources.hn.url = 'https://news.ycombinator.com/best'  # newsreader.toml" in out.output
    assert "model.id = 'rules'  # default" in out.output
    assert "tags.rust = 'the Rust language or its ecosystem'  # default" in out.output


@pytest.mark.parametrize(
    "toml,message",
    [
        ("colour = 'blue'\n", "unknown config key 'colour'"),
        ("[model]\nname = 'x'\n", "unknown config key 'model.name'"),
        ("max_steps = 'many'\n", "config key 'max_steps' must be a whole number from 1 to 50"),
        ("retention_days = 0\n", "config key 'retention_days' must be a whole number from 1 to 36500"),
        ("[sources.hn]\nenabled = 'yes'\n", "config key 'sources.hn.enabled' must be true or false"),
        ("[sources.lobsters]\nurl = 'ftp://lobste.rs'\n", "config key 'sources.lobsters.url' must be an http(s) URL"),
        ("[executor]\nname = 'kubernetes'\n", "config key 'executor.name' must be one of jail, local, docker"),
        ("[profile]\ninterests = '  '\n", "config key 'profile.interests' must be a non-empty string"),
        ("[tags]\nAI = 'caps'\n", "config key 'tags.AI': a tag is lower-case letters"),
        ("[sources.hn]\nenabled = false\n[sources.lobsters]\nenabled = false\n", "config enables no source"),
        ("max_steps = \n", "is not valid TOML"),
        ("max_steps = 1000000\n", "config key 'max_steps' must be a whole number from 1 to 50, not 1000000"),
        ("max_candidates = 30000\n", "config key 'max_candidates' must be a whole number from 1 to 500"),
        (f"[tags]\nai = '{'x' * 201}'\n", "config key 'tags.ai' is refused by schema.sql"),
        ('[tags]\nai = "AI \\u0001 and ML"\n', "config key 'tags.ai' is refused by schema.sql"),
        (b"[profile]\ninterests = 'caf\xe9'\n", "is not UTF-8 text"),
        ("budget_usd = 0\n", "config key 'budget_usd' must be a positive amount of US dollars, not 0"),
        ("budget_usd = 'cheap'\n", "config key 'budget_usd' must be a positive amount of US dollars"),
        ("reuse_days = 0\n", "config key 'reuse_days' must be a whole number from 1 to 3650"),
    ],
)
def test_bad_config_is_one_clear_error(workdir, toml, message):
    path = workdir / "newsreader.toml"
    path.write_bytes(toml) if isinstance(toml, bytes) else path.write_text(toml)
    out = CliRunner().invoke(cli, ["config"])
    assert out.exit_code == 1
    assert message in out.output
    assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1


def test_vocabulary_is_synced_and_a_used_tag_cannot_be_removed(workdir):
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    tags = dict(config.load()["tags"])
    tags["lisp"] = "Lisp and Scheme"
    del tags["go"]  # used by judged stories in history
    toml = "[tags]\n" + "".join(f'{slug} = "{meaning}"\n' for slug, meaning in tags.items())
    (workdir / "newsreader.toml").write_text(toml)
    out = CliRunner().invoke(cli, ["refresh", "-q", "--snapshot", str(SNAPSHOT)])
    assert out.exit_code == 1
    assert "tag 'go' is used by" in out.output and "cannot be removed" in out.output
    conn = sqlite3.connect("data/news.db")
    assert conn.execute("SELECT count(*) FROM tags WHERE slug IN ('go', 'lisp')").fetchone() == (1,)  # unchanged
    tags["go"] = "the Go language"
    toml = "[tags]\n" + "".join(f'{slug} = "{meaning}"\n' for slug, meaning in tags.items())
    (workdir / "newsreader.toml").write_text(toml)
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    assert conn.execute("SELECT description FROM tags WHERE slug = 'lisp'").fetchone() == ("Lisp and Scheme",)
    assert conn.execute("SELECT description FROM tags WHERE slug = 'go'").fetchone() == ("the Go language",)


def test_quiet_refresh_prints_nothing_and_writes_the_digest_file(workdir):
    out = CliRunner().invoke(cli, ["refresh", "--quiet", "--snapshot", str(SNAPSHOT)])
    assert out.exit_code == 0
    assert out.output == ""
    [path] = (workdir / "data" / "digests").glob("*.md")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.md", path.name)
    body = path.read_text()
    assert body.startswith(f"# newsreader digest — {path.stem}\n")
    assert "## programming" in body and "## security" in body
    assert ("- [Bypassing airport security via SQL injection](https://ian.sh/tsa) — " in body)
    assert "([HN](https://news.ycombinator.com/item?id=41392128); 412 points · 96 comments)" in body
    assert run("digest").output == body
    assert run("digest", "--date", path.stem).output == body
    assert CliRunner().invoke(cli, ["digest", "--date", "1999-01-01"]).exit_code == 1
    logs = (workdir / "data" / "logs").glob("*.jsonl")
    assert any('"stage": "sync"' in p.read_text() for p in logs)


def test_budget_and_reuse_days_reach_the_refresh(workdir):
    (workdir / "newsreader.toml").write_text("budget_usd = 0.25\nreuse_days = 3\n")
    out = run("config").output
    assert "budget_usd = 0.25  # newsreader.toml" in out and "reuse_days = 3  # newsreader.toml" in out
    from pipeline import config, refresh
    options = refresh.Options.from_config(config.load())
    assert options.judge.budget_usd == 0.25 and options.reuse_days == 3


def test_a_second_refresh_carries_judgments_over_and_rejudge_asks_again(workdir):
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    second = run("refresh", "--snapshot", str(SNAPSHOT))
    assert "55 judged (55 carried over)" in second.output and "0 model calls" in second.output
    third = run("refresh", "--rejudge", "--snapshot", str(SNAPSHOT))
    assert "55 judged (0 carried over)" in third.output


def test_changing_the_profile_changes_the_digest(workdir):
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    before = run("digest").output
    (workdir / "newsreader.toml").write_text(
        '[profile]\ninterests = "Hardware and science. Not interested in security, AI or the web."\n')
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    after = run("digest").output

    def counts(digest):
        return {tag: int(n) for tag, n in re.findall(r"(\w+) \((\d+)\)", digest.splitlines()[2])}

    assert counts(after)["hardware"] > counts(before).get("hardware", 0)
    assert counts(after).get("security", 0) < counts(before)["security"]
    assert counts(after).get("ai", 0) < counts(before)["ai"]


def test_status_exits_non_zero_when_the_last_run_failed(workdir):
    assert CliRunner().invoke(cli, ["status"]).exit_code == 1  # no runs yet
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    out = run("status")
    assert out.exit_code == 0 and re.match(r"run 1 ok at .*: 55 stories, 0 rejected", out.output)
    empty = workdir / "empty"
    empty.mkdir()
    failed = CliRunner().invoke(cli, ["refresh", "-q", "--snapshot", str(empty)])
    assert failed.exit_code == 1 and "no " in failed.output
    out = CliRunner().invoke(cli, ["status"])
    assert out.exit_code == 1 and out.output.startswith("run 2 failed")
    assert re.search(r"^\s+2\s+\S+\s+failed\s", run("runs").output, re.MULTILINE)


def test_old_raw_snapshots_and_sandboxes_are_pruned(workdir):
    (workdir / "newsreader.toml").write_text("retention_days = 3\n")
    old, fresh = workdir / "data" / "raw" / "2020-01-01", workdir / "data" / "raw" / "today"
    kept = workdir / "data" / "sandboxes" / "7"
    for folder in (old, fresh, kept):
        folder.mkdir(parents=True)
        (folder / "x.html").write_text("x")
    ancient = time.time() - 10 * 86400
    for path in (old, old / "x.html", kept, kept / "x.html"):
        os.utime(path, (ancient, ancient))
    assert run("refresh", "-q", "--snapshot", str(SNAPSHOT)).exit_code == 0
    assert not old.exists() and not kept.exists() and fresh.exists()
    assert (workdir / "data" / "news.db").exists()


def test_cron_recipe(tmp_path):
    text = recipe("cron", tmp_path)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    assert re.fullmatch(r"0 6 \* \* \* cd \S+ && \S+newsreader refresh --quiet", lines[0])


def test_systemd_recipe(tmp_path):
    text = recipe("systemd", tmp_path, hour=7)
    service, timer = text.split("# ~/.config/systemd/user/newsreader.timer")
    units = {}
    for name, body in (("newsreader.service", service), ("newsreader.timer", timer)):
        parser = configparser.ConfigParser(strict=True, interpolation=None)
        parser.optionxform = str
        parser.read_string(body)
        units[name] = parser
        (tmp_path / name).write_text(body)
    assert units["newsreader.service"]["Service"]["Type"] == "oneshot"
    assert units["newsreader.service"]["Service"]["ExecStart"].endswith("newsreader refresh --quiet")
    assert units["newsreader.timer"]["Timer"]["Persistent"] == "true"
    assert units["newsreader.timer"]["Timer"]["OnCalendar"] == "*-*-* 07:00:00"
    if shutil.which("systemd-analyze"):
        import subprocess

        result = subprocess.run(["systemd-analyze", "verify", "--user", str(tmp_path / "newsreader.timer")],
                                capture_output=True, text=True)
        assert "Unknown" not in result.stderr and "bad" not in result.stderr.lower(), result.stderr


def test_github_actions_recipe_is_a_valid_workflow(tmp_path):
    workflow = yaml.safe_load(recipe("github-actions", tmp_path))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the bare key `on` as true
    assert triggers["schedule"] == [{"cron": "0 6 * * *"}]
    steps = workflow["jobs"]["refresh"]["steps"]
    names = [step.get("name", step.get("uses", step.get("run"))) for step in steps]
    assert "Restore the history from its release (the first run starts a new one)" in names
    assert "Save the history to its release" in names
    assert any(step.get("run") == "newsreader refresh --quiet" for step in steps)
    assert not any("cache" in str(step.get("uses", "")) for step in steps)  # not the history's only copy


FAKE_GH = """#!/usr/bin/env bash
# A stand-in for the GitHub CLI: one release, its assets in $FAKE_RELEASE.
case "$1 $2" in
  "release view") test -d "$FAKE_RELEASE" ;;
  "release create") mkdir -p "$FAKE_RELEASE" ;;
  "release download") cp "$FAKE_RELEASE/news.db" "$7/news.db" 2>/dev/null ;;
  "release upload") cp "$4" "$FAKE_RELEASE/" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


def test_github_actions_recipe_keeps_the_history_across_runs(tmp_path):
    """The workflow's own shell steps, run three times with a fake `gh` on a fresh runner each time: the
    history grows, and a failed refresh loses nothing."""
    workflow = yaml.safe_load(recipe("github-actions", tmp_path))
    steps = [step["run"] for step in workflow["jobs"]["refresh"]["steps"]
             if "run" in step and "pip install" not in step["run"] and "apt-get" not in step["run"]]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FAKE_RELEASE": str(tmp_path / "release")}
    env.pop("NEWSREADER_DB", None)

    def workflow_run(snapshot):
        work = tmp_path / f"checkout-{len(list(tmp_path.glob('checkout-*')))}"
        work.mkdir()
        for script in steps:
            script = script.replace("refresh --quiet", f"refresh --quiet --snapshot {snapshot}")
            subprocess.run(["bash", "-eo", "pipefail", "-c", script],  # as GitHub Actions runs `run:`
                           cwd=work, env=env, capture_output=True, text=True)

    def runs_in_release():
        conn = sqlite3.connect(tmp_path / "release" / "news.db")
        try:
            return conn.execute("SELECT status FROM runs ORDER BY id").fetchall()
        finally:
            conn.close()

    workflow_run(SNAPSHOT)
    assert runs_in_release() == [("ok",)]
    workflow_run(SNAPSHOT)
    assert runs_in_release() == [("ok",), ("ok",)]
    broken = tmp_path / "broken"
    broken.mkdir()  # no pages: the refresh fails
    workflow_run(broken)
    assert runs_in_release() == [("ok",), ("ok",), ("failed",)]  # recorded, and nothing earlier lost


def test_schedule_command_prints_a_recipe():
    out = run("schedule", "--print", "cron")
    assert "newsreader refresh --quiet" in out.output


def test_data_files_go_beside_an_explicit_database(workdir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    assert run("refresh", "-q", "--db", str(elsewhere / "news.db"), "--snapshot", str(SNAPSHOT)).exit_code == 0
    assert (elsewhere / "digests").is_dir() and (elsewhere / "logs").is_dir()
    assert not (workdir / "data").exists()


def test_offline_the_fallback_snapshot_is_read_in_the_same_run_and_no_failed_run_is_left(workdir, monkeypatch):
    """`make run` offline: no front page can be fetched, so the bundled snapshot is read instead, loudly."""
    import httpx

    from pipeline import sources

    def offline(request):
        raise httpx.ConnectError("Name or service not known", request=request)

    real = sources.make_client
    monkeypatch.setattr(sources, "make_client", lambda transport=None: real(httpx.MockTransport(offline)))
    out = run("refresh", "--fallback-snapshot", str(SNAPSHOT))
    assert out.exit_code == 0, out.output
    assert "FALLING BACK to the snapshot" in out.output
    runs = sqlite3.connect(workdir / "data" / "news.db").execute("SELECT status FROM runs").fetchall()
    assert runs == [("ok",)]
