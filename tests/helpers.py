"""Helpers shared by test modules (fixtures live in conftest.py; plain functions live here)."""

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(db, *args: str):
    """`newsreader serve --db DB` on a free loopback port; yields (base URL, the banner line it printed)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--db", str(db), "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    banner = proc.stdout.readline()
    # Keep reading its log: a full pipe would block the server on its next log line.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"newsreader serve did not start: {proc.stdout.read()}")
    try:
        yield f"http://127.0.0.1:{port}", banner
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# Out of the interpreter, lazily through map() so no module object is ever checked: the escape
# issue 14 describes. `run(cmd)` is subprocess.getoutput in whatever process runs this code,
# `environ` its os.environ, `mods` its sys.modules.
ESCAPE_TO_PROCESS = """
g = (x for x in [1])
fr = g.gi_frame
ga = fr.f_locals['static_tools']['getattr']
get = next(map(ga, map(ga, [fr], ['f_globals']), ['get']))
mods = next(map(ga, map(ga, map(get, ['inspect']), ['sys']), ['modules']))
run = next(map(ga, map(mods.get, ['subprocess']), ['getoutput']))
environ = next(map(ga, map(mods.get, ['os']), ['environ']))
"""
