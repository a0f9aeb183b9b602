"""Refreshes while Datasette serves a bounded load of reads on loopback: no failed read, no lock error."""

import socket
import subprocess
import sys
import threading
import time

import httpx

from pipeline import refresh

from ..helpers import SNAPSHOT
from .figures import record, scale


def test_refresh_while_serving_reads(refreshed_copy, tmp_path):
    db = refreshed_copy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/news"
    paths = ["/digest.json?_shape=array", "/runs_health.json?_shape=array", "/stories.json?_shape=array&_size=50",
             "/search.json?_shape=array&q=security", "/trending_tags.json?_shape=array"]
    reads, failures = [0], []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + paths[0], timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, server.stderr.read() if server.poll() is not None else "no start"
                time.sleep(0.2)

        def reader():
            with httpx.Client(timeout=10) as client:
                i = 0
                while not stop.is_set() and reads[0] < 5000:
                    response = client.get(base + paths[i % len(paths)])
                    i += 1
                    reads[0] += 1
                    if response.status_code != 200 or "locked" in response.text:
                        failures.append((response.status_code, response.text[:200]))

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        refreshes = scale(2, 8)
        for _ in range(refreshes):
            assert refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT)).status == "ok"
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=10)
    assert failures == []
    assert reads[0] > 20
    record("refresh while Datasette serves reads", reads[0] + refreshes, refreshes, 0, 0,
           f"{reads[0]} reads by 3 clients during {refreshes} refreshes: 0 failed, no 'database is locked'")
