"""The jail: model-written code runs in a bubblewrap process that reaches nothing but its own sandbox DB.

Every attack here is real: the loopback LLM answers the Hacker News agent with code that
escapes smolagents' interpreter (a generator frame hands over the unwrapped `getattr`,
then `sys.modules`, then `subprocess`), and the test checks both that the escape ran
(its marker reaches the model) and that what it reached was the jail, not the host.
Lobsters' agent gets honest code from the same stub, so every run must end `partial`.
"""

import ast
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import agent, jail, refresh, rules, sandbox, sqltool
from pipeline.settings import Judge

from ..helpers import ESCAPE_TO_PROCESS, SNAPSHOT, ScriptedModel, run_one_rows
from ..stub_llm import API_KEY, StubLLM, cli_refresh, completion, honest_or
from .figures import record

NEWSREADER = str(Path(sys.executable).with_name("newsreader"))



@pytest.fixture
def history(refreshed_copy):
    """A history with one earlier run in it (the built-in model, in the jail)."""
    return refreshed_copy


@pytest.fixture
def listener():
    """A TCP listener on the host's loopback that counts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_the_frame_walk_escape_reaches_only_the_jail(tmp_path, history, listener):
    port, accepted = listener
    data_canary = history.parent / "canary.txt"
    data_canary.write_text("DATA-CANARY-1b2e")
    home_canary = Path.home() / f".newsreader-canary-{os.getpid()}"
    home_canary.write_text("HOME-CANARY-7c4d")
    outside = tmp_path / "written-by-the-jail"
    before = run_one_rows(history)
    triggers_before = triggers_of(history)
    probe = (f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('CONNECTED')\" "
             f"2>&1 | tail -1")

    def attack(step):
        if step == 1:
            return ESCAPE_TO_PROCESS + (
                f"print('ESCAPE_TO_PROCESSD as', run('id -u'), 'pid', run('echo $$'))\n"
                f"print('data:', run('cat {data_canary} 2>&1'))\n"
                f"print('home:', run('cat {home_canary} 2>&1'))\n"
                f"print('write:', run('echo pwned > {outside} 2>&1; echo pwned > /sandbox/../{outside.name} 2>&1'))\n"
                f"print('key:', environ.get('OPENAI_API_KEY'), '{{0}}'.format(len(environ)))\n"
                f"print('net:', run({probe!r}))\n"
                f"print('ls:', run('ls {history.parent} 2>&1'))\n"
            )
        # The real SqlTool object, reached through the same frame: point it at the history, allow everything.
        return ESCAPE_TO_PROCESS + (
            "tool = fr.f_locals['static_tools']['sql']\n"
            f"tool.db_path = {str(history)!r}\n"
            "print('delete:', sql('DELETE FROM judgments'))\n"
            "tool.authorize = lambda *a: 0\n"
            "print('drop:', sql('DROP TRIGGER judgments_summary_not_title_insert'))\n"
            "tool.db_path = 'sandbox.db'\n"
            "print('drop own:', sql('DROP TRIGGER judgments_summary_not_title_insert'))\n"
            f"print('vacuum:', sql(\"VACUUM INTO '{tmp_path / 'copy.db'}'\"))\n"
            "final_answer('done')\n"
        )

    try:
        with StubLLM([honest_or(attack)]) as stub:
            # Three steps: the third request shows what the second step's attack printed.
            done = cli_refresh(history, stub, "--max-steps", "3")
            seen = json.dumps(stub.requests)
    finally:
        home_canary.unlink()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    pid = int(seen.split("ESCAPE_TO_PROCESSD as 0 pid ")[1].split("\\n")[0])  # the escape really ran...
    assert pid < 20  # ...in the jail's own PID namespace...
    for secret in ("DATA-CANARY-1b2e", "HOME-CANARY-7c4d", API_KEY):  # ...and reached none of the host's secrets
        assert secret not in seen
        assert secret not in done.stdout + done.stderr
    assert f"cat: {data_canary}: No such file or directory" in seen  # the host's files are simply not there
    assert f"cat: {home_canary}: No such file or directory" in seen
    assert "key: None" in seen
    assert not outside.exists() and not (tmp_path / "copy.db").exists()
    assert "net: ConnectionRefusedError" in seen and accepted == []  # no network, not even the host's loopback
    assert "drop own: ok" in seen  # inside its jail the agent can wreck its own sandbox...
    conn = sqlite3.connect(history)
    runs = conn.execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    sites = dict(conn.execute("SELECT source, status FROM run_sites WHERE run_id = 2"))
    conn.close()
    assert runs == [(1, "ok"), (2, "partial")] and sites == {"hn": "failed", "lobsters": "ok"}
    kept = history.parent / "sandboxes" / "2" / "hn.db"  # the jail's sandbox, kept for inspection
    assert any("judgments_summary_not_title_insert" in problem for problem in sandbox.validate(kept))
    assert triggers_of(history) == triggers_before  # ...but the history's triggers are all there
    assert run_one_rows(history) == before  # and every earlier row is exactly as it was
    record("jail: interpreter escape through the real CLI (loopback LLM)", 8, 8, 0, 0,
           "escape ran as a jailed pid; data-dir and $HOME canaries, API key, host loopback TCP, writes outside "
           "/sandbox, SqlTool pointed at the history, allow-all authorizer, VACUUM INTO: none reached the host")


def triggers_of(db) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").fetchall()
    finally:
        conn.close()


def test_a_step_that_never_ends_is_killed_at_the_step_timeout(tmp_path, history):
    def attack(step):
        return "import time\ntime.sleep(10**9)"

    with StubLLM([honest_or(attack)]) as stub:
        t0 = time.monotonic()
        done = cli_refresh(history, stub, "--step-timeout", "5", "--max-steps", "3")
        elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert "partial" in done.stderr and "ran past its 5 s limit" in done.stderr, done.stderr
    conn = sqlite3.connect(history)
    error, judging = conn.execute("SELECT error, judge_s FROM run_sites WHERE run_id = 2 AND source = 'hn'").fetchone()
    # 3 x the bound, plus each step's jail start: the site's own recorded time (the wall clock around the command
    # also counts its imports, 27 s on four busy workers)
    assert judging < 3 * 5 + 10, judging
    assert conn.execute("SELECT status FROM runs WHERE id = 2").fetchone() == ("partial",)
    conn.close()
    assert "the jail was killed" in error
    with refresh.refresh_lock(history, wait=False):  # the lock was released
        pass
    assert not leftover_jails()
    record("jail: time.sleep(10**9) in a step, --step-timeout 5", 1, 1, 0, 0,
           f"refresh ended in {elapsed:.1f} s, run partial, lock released, no jail process left")


def leftover_jails() -> list[str]:
    """Jail processes that outlived their refresh (orphans: parent pid 1)."""
    out = subprocess.run(["ps", "-eo", "ppid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pipeline.jail" in line and line.split()[0] == "1"]


FORK_BOMB = ESCAPE_TO_PROCESS + """
fork = next(map(ga, map(mods.get, ['os']), ['fork']))
n = 0
while True:
    fork()
    n += 1
"""
MEMORY_HOG = "hog = 'x' * (4 * 1024 ** 3)\nprint(len(hog))"


@pytest.mark.parametrize("attack", [FORK_BOMB, MEMORY_HOG], ids=["fork bomb", "4 GB allocation"])
def test_resource_attacks_fail_only_their_site(tmp_path, history, attack, request):
    with StubLLM([honest_or(lambda step: attack)]) as stub:
        t0 = time.monotonic()
        done = cli_refresh(history, stub, "--step-timeout", "5", "--max-steps", "2")
        elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    conn = sqlite3.connect(history)
    assert dict(conn.execute("SELECT source, status FROM run_sites WHERE run_id = 2")) == {
        "hn": "failed", "lobsters": "ok"}
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The attacked site's own judging time, as the run recorded it: two steps of at most 5 s, and each step's
    # jail start (the wall clock around the command also counts its imports, slow on two busy cores).
    (judging,), = conn.execute("SELECT judge_s FROM run_sites WHERE run_id = 2 AND source = 'hn'")
    conn.close()
    assert judging < 2 * 5 + 10, judging
    assert not leftover_jails()
    record(f"jail: {request.node.callspec.id} in generated code", 1, 1, 0, 0,
           f"hn failed, lobsters landed in {elapsed:.1f} s; no jail process left")


def test_rules_judgments_are_identical_in_the_jail_and_in_process(tmp_path):
    def judgments(executor):
        db = tmp_path / executor / "news.db"
        assert refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT,
                                               judge=Judge(executor=executor))).status == "ok"
        conn = sqlite3.connect(db)
        rows = conn.execute("SELECT story_id, relevant, score, summary, reason FROM judgments ORDER BY story_id"
                            ).fetchall() + conn.execute("SELECT * FROM story_tags ORDER BY story_id, tag").fetchall()
        conn.close()
        return rows

    jailed = judgments("jail")
    assert len(jailed) > 55 and jailed == judgments("local")


def test_the_jail_has_no_environment_network_or_host_files(tmp_path):
    executor = jail.JailExecutor(step_timeout=20)
    try:
        executor.send_tools({"sql": None, "final_answer": None})
        found = executor(ESCAPE_TO_PROCESS + """
final_answer({
    'env': sorted(environ),
    'caps': run('grep CapEff /proc/self/status'),
    'root': run('ls /').split(),
    'touch': run('touch /usr/x /x /dev/x /dev/shm/x 2>&1; touch /sandbox/x && echo writable-ok'),
    'net': run('tail -n +3 /proc/net/dev | cut -d: -f1').split(),
    'limits': run('cat /proc/self/limits'),
})""").output
    finally:
        executor.cleanup()
    found = ast.literal_eval(found)
    assert found["env"] == ["HOME", "LC_CTYPE", "LITELLM_LOCAL_MODEL_COST_MAP", "PATH", "PWD", "PYTHONPATH", "TMPDIR"]
    assert found["caps"] == "CapEff:\t0000000000000000"
    bound = {Path(p).parts[1] for p in jail.interpreter_binds()}
    # System paths, its own /proc, /dev and /sandbox, /opt/newsreader (this package and the package folders,
    # read-only) and the top folders of the interpreter's own files: no /etc, /home, /tmp, /var, venv or checkout.
    assert set(found["root"]) - bound <= {"bin", "dev", "lib", "lib64", "opt", "proc", "sandbox", "sbin", "usr"}
    assert found["touch"].splitlines() == [f"touch: cannot touch '{path}': Read-only file system"
                                           for path in ("/usr/x", "/x", "/dev/x", "/dev/shm/x")] + ["writable-ok"]
    assert found["net"] == ["lo"]  # its own network namespace: a loopback and nothing else
    limits = {line[:26].strip(): line[26:].split()[0] for line in found["limits"].splitlines()[1:]}
    mb = 1024 * 1024
    assert limits["Max address space"] == str(jail.LIMITS["memory_mb"] * mb)
    assert limits["Max file size"] == str(jail.LIMITS["file_mb"] * mb)
    assert limits["Max cpu time"] == str(jail.LIMITS["cpu_s"])
    assert limits["Max processes"] == str(jail.LIMITS["procs"])
    assert limits["Max open files"] == str(jail.LIMITS["files"])


def test_without_bubblewrap_an_llm_model_is_refused_and_the_rules_model_falls_back(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no bwrap on PATH
    with StubLLM([completion("never asked")]) as stub:
        done = subprocess.run([NEWSREADER, "refresh", "--db", str(tmp_path / "news.db"), "--snapshot", str(SNAPSHOT),
                               "--model", "openai/stub", "--api-base", stub.api_base],
                              capture_output=True, text=True, env=env, timeout=60)
        assert stub.requests == []
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: cannot run the model's code in a jail: bubblewrap is not installed (apt-get install bubblewrap), "
        "or choose --executor docker"]
    fallback = subprocess.run([NEWSREADER, "refresh", "--db", str(tmp_path / "news.db"), "--snapshot",
                               str(SNAPSHOT)], capture_output=True, text=True, env=env, timeout=60)
    assert fallback.returncode == 0, fallback.stderr
    assert "no jail on this machine" in fallback.stdout + fallback.stderr
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT status, executor FROM runs").fetchall() == [("ok", "local")]


def test_local_with_an_llm_model_warns_once(tmp_path, monkeypatch):
    notices = []
    assert agent.choose_executor("local", "openai/gpt-4.1-mini", notices.append) == "local"
    assert agent.choose_executor("local", "rules", notices.append) == "local"
    assert len(notices) == 1 and "inside the refresh process" in notices[0]


def test_a_dead_jail_stops_the_agent_without_more_model_calls(tmp_path):
    from ..helpers import VOCABULARY, make_box

    model = ScriptedModel("import time\ntime.sleep(60)", rules.code_for)
    result = agent.judge_site(agent.Site(make_box(tmp_path)), model, vocabulary=VOCABULARY, step_timeout=2)
    assert result.status == "failed" and model.calls == 1
    assert result.error == "stopped: the step ran past its 2 s limit: the jail was killed"
    assert result.judge_s < 10


@pytest.mark.parametrize("statement, refusal", [
    ("SELECT length(replace(replace(substr(quote(x'00'), 1, 1) || char(120), 'x', "
     "(SELECT group_concat('xxxxxxxxxx', '') FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
     "FROM n WHERE i < 99999) SELECT i FROM n))), 'x', 'xxxxxxxxxx'))", "error: string or blob too big"),
    ("SELECT length(printf('%.*c', 2000000000, 'x'))", "error: not authorized to use function: printf"),
    ("SELECT length(zeroblob(2000000000))", "error: not authorized to use function: zeroblob"),
    ("SELECT 'x' LIKE '" + "%x" * 600 + "'", "error: LIKE or GLOB pattern too complex"),
])
def test_one_sql_value_is_bounded_in_size(tmp_path, statement, refusal):
    """One function call cannot build gigabytes, or spend seconds where the progress handler never runs."""
    from ..helpers import make_box

    tool = sqltool.SqlTool(str(make_box(tmp_path).path))
    assert tool(statement).startswith(refusal)
