"""The jail's outer bounds, against code that has already escaped smolagents' interpreter (as in
test_jail.py): it cannot trace the jail's PID 1, nothing of it outlives the refresh on any exit path,
it can write nowhere but its capped sandbox folder, it sees no host path on a command line, and a venv
reached through a symlink in a home folder does not bind that home folder."""

import ast
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pipeline import jail, prompt, rules

from ..helpers import ESCAPE_TO_PROCESS
from ..stub_llm import API_KEY, NEWSREADER, StubLLM, cli_refresh, completion, refresh_args
from .figures import record


def jailed(code: str, **limits) -> str:
    """What `code` (after the interpreter escape) hands to final_answer, run in a fresh jail."""
    executor = jail.JailExecutor(step_timeout=60, **limits)
    try:
        executor.send_tools({"sql": None, "final_answer": None})
        return executor(ESCAPE_TO_PROCESS + code).output
    finally:
        executor.cleanup()


TRACE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, request in (("seize", 0x4206), ("attach", 16)):
    result = libc.ptrace(request, 1, 0, 0)
    print(name, result, os.strerror(ctypes.get_errno()) if result else "traced")
"""


def test_jailed_code_cannot_trace_the_jails_pid_1():
    """With ptrace, escaped code could clear PID 1's parent-death signal and outlive the host's kill."""
    command = f"{jail.PYTHON} -S -c {shlex.quote(TRACE)}"
    found = jailed(f"final_answer(run({command!r}))")
    assert found.splitlines() == ["seize -1 Operation not permitted", "attach -1 Operation not permitted"]
    record("jail: ptrace of the jail's PID 1 (PTRACE_SEIZE, PTRACE_ATTACH)", 2, 2, 0, 0,
           "both refused with EPERM by the seccomp filter")


FILL = """
total = {}
for folder in ('/sandbox', '/tmp', '/var/tmp', '/dev/shm', '/dev', '/', '/opt', '/usr'):
    n = run(f'i=0; while [ $i -lt 80 ] && dd if=/dev/zero of={folder}/fill$i bs=1M count=32 2>/dev/null; '
            f'do i=$((i+1)); done; cat {folder}/fill* 2>/dev/null | wc -c')
    total[folder] = int(n.split()[-1])
final_answer(total)
"""


def test_the_jail_can_write_only_its_capped_sandbox_folder():
    """Every writable place was bounded but /dev (and its /dev/shm): a jail wrote 2 GB there, past its 1 GB
    memory limit. Now the total the jail can write, everywhere it tries, is its sandbox cap."""
    written = ast.literal_eval(jailed(FILL))
    cap = jail.LIMITS["disk_mb"] * 1024 * 1024
    assert {folder: n for folder, n in written.items() if n} == {"/sandbox": written["/sandbox"]}
    assert cap - 1024 * 1024 <= written["/sandbox"] <= cap
    record("jail: write until refused in /sandbox, /tmp, /var/tmp, /dev/shm, /dev, /, /opt, /usr", 8, 8, 0, 0,
           f"{written['/sandbox'] / 1024 / 1024:.0f} MB written in all (cap {jail.LIMITS['disk_mb']} MB), "
           "all of it in /sandbox")


def test_no_command_line_in_the_jail_names_a_host_path():
    found = jailed("final_answer(run(\"for p in /proc/[0-9]*; do tr '\\\\0' ' ' < $p/cmdline; echo; done\"))")
    host = [sys.prefix, str(Path(jail.__file__).resolve().parent.parent), os.path.realpath(sys.executable),
            *jail.package_folders()]
    assert "pipeline.jail" in found
    for path in host:
        assert path not in found, path


def test_a_venv_reached_through_a_home_folder_symlink_binds_no_home_folder(tmp_path):
    """A venv made with ~/bin/python3 (a symlink to the real interpreter) bound all of ~: jailed code read
    ~/.ssh and ~/.aws/credentials. Only the interpreter's own files and the package folders are bound."""
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("SSH-CANARY-41d0")
    (home / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    venv = tmp_path / "venv"
    subprocess.run([str(home / "bin" / "python3"), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "newsreader-test.pth").write_text("\n".join([*jail.package_folders(), str(Path(jail.__file__).parents[1])]))
    script = ("from pipeline import jail\nfrom tests.reliability.test_jail_bounds import jailed\n"
              f"print(jailed(\"final_answer(run('cat {home}/.ssh/id_ed25519 2>&1; ls /'))\"))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(jail.__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert "SSH-CANARY" not in done.stdout
    assert f"cat: {home}/.ssh/id_ed25519: No such file or directory" in done.stdout
    record("jail: a venv whose python is ~/bin/python3 (a symlink)", 1, 1, 0, 0,
           "~/.ssh not visible in the jail: only the interpreter's files and package folders are bound")


def spawn(mark: str) -> str:
    """Code that leaves a detached, signal-ignoring process in its jail, named by `mark` (one per test:
    tests run at once on several workers, and each counts only its own survivors)."""
    return ESCAPE_TO_PROCESS + (
        f"print(run(\"setsid sh -c 'trap \\\"\\\" HUP INT TERM; sleep 600; : {mark}' </dev/null >/dev/null 2>&1 & "
        "echo spawned\"))\n")


def survivors(mark: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if mark in line and "ps -eo" not in line]


def scripted(then, mark: str):
    """HN's agent: step 1 leaves a detached process behind in its jail; step 2 is `then` (a reply or code)."""
    steps = {"hn": 0}

    def reply(body):
        texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in body["messages"]]
        task = next((text for text in texts if prompt.CANDIDATES_MARKER in text), None)
        if task is None:
            return completion("Two front pages, read for you.")
        if "today's Hacker News front page" not in task:
            return completion(f"Thought: judging.\n<code>\n{rules.code_for(task)}\n</code>")
        steps["hn"] += 1
        if steps["hn"] == 1:
            return completion(f"Thought: first.\n<code>\n{spawn(mark)}\n</code>")
        step = then(task)
        return step if isinstance(step, tuple) else completion(f"Thought: next.\n<code>\n{step}\n</code>")

    return reply


EXITS = {
    "success": lambda task: rules.code_for(task),
    "deadline": lambda task: "import time\ntime.sleep(10**9)",
    "model error": lambda task: (400, {"error": {"message": "bad request", "type": "invalid_request_error"}}, {}),
    "Ctrl-C": lambda task: "import time\ntime.sleep(10**9)",
}


@pytest.mark.parametrize("exit_path", EXITS)
def test_no_process_of_the_jail_survives_the_refresh(tmp_path, refreshed_copy, exit_path):
    mark = f"jail-survivor-{uuid.uuid4().hex[:12]}"
    with StubLLM([scripted(EXITS[exit_path], mark)]) as stub:
        if exit_path != "Ctrl-C":
            done = cli_refresh(refreshed_copy, stub, "--step-timeout", "5", "--max-steps", "3")
            assert "Traceback" not in done.stderr, done.stderr
        else:
            env = {**os.environ, "OPENAI_API_KEY": API_KEY, "PYTHONFAULTHANDLER": "1"}
            process = subprocess.Popen([NEWSREADER, *refresh_args(refreshed_copy, stub, "--step-timeout", "60")],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            deadline = time.monotonic() + 60
            while not survivors(mark) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert survivors(mark), "the jailed process never started"
            process.send_signal(signal.SIGINT)
            try:
                _, stderr = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # where it stood: every thread's stack (faulthandler on SIGABRT)
                process.send_signal(signal.SIGABRT)
                _, stderr = process.communicate(timeout=30)
                raise AssertionError(f"the refresh outlived Ctrl-C by 60 s:\n{stderr[-6000:]}") from None
            assert "Traceback" not in stderr, stderr
    left = survivors(mark)
    for line in left:  # never leave one behind for the next test
        os.kill(int(line.split()[0]), signal.SIGKILL)
    assert not left
    if exit_path != "Ctrl-C":  # the exit path was the one meant
        conn = sqlite3.connect(refreshed_copy)
        status = conn.execute("SELECT status FROM run_sites WHERE run_id = 2 AND source = 'hn'").fetchone()
        conn.close()
        assert status == ("ok" if exit_path == "success" else "failed",)
    record(f"jail: a detached, signal-ignoring process in the jail, refresh ends by {exit_path}", 1, 1, 0, 0,
           "no process of the jail left after the refresh")
