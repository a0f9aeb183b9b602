"""Anonymous visitors of `newsreader serve`: one query cannot outlive the time limit or starve the others,
and the history they can read names no server paths."""

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import requests

from pipeline import store

from ..helpers import SNAPSHOT, served
from .figures import record

# Measures how fast a quick query answers while hostile ones run: alone on the machine and in file order,
# after the parallel part of `make test` (another worker's load, and some shuffled orders of the cases,
# made one `select 1` wait 4 s; why is not yet understood).
pytestmark = pytest.mark.serial

LIMIT_S = 3.0  # sql_time_limit_ms that `newsreader serve` sets
HOSTILE = {
    "instr over printf": "select instr(printf('%.*c', 2000000000, 'x'), 'y')",
    "nested replace": "select length(replace(replace(replace(hex(zeroblob(10000)), '0', '00000000'), '0', "
                      "'00000000'), '0', '00000000'))",
    "huge LIKE pattern": "select 'x' like '" + "%x" * 3000 + "'",
    "recursive string builder": "with recursive s(n, t) as (select 1, 'x' union all select n + 1, t || t from s "
                                "where n < 40) select length(max(t)) from s",
    # Quadratic inside one call, no printf needed: 4.5 s a call at 1 MB, with SQLite's own instr and replace.
    "instr over hex(zeroblob)": "select instr(hex(zeroblob(499999)), hex(zeroblob(249999)) || '1')",
    "replace over hex(zeroblob)": "select length(replace(hex(zeroblob(499999)), hex(zeroblob(249999)) || '1', 'x'))",
    "instr at the value limit": "select instr(hex(zeroblob(124999)), hex(zeroblob(62499)) || '1')",
    "instr, many calls": "select sum(instr(hex(zeroblob(124999 - i % 2)), hex(zeroblob(62499)) || '1')) "
                         "from (with recursive n(i) as (select 1 union all select i + 1 from n where i < 100000) "
                         "select i from n)",
    "a count to the time limit": "with recursive n(i) as (select 1 union all select i + 1 from n) "
                                 "select count(*) from n",
}
ANSWERED = {"instr at the value limit": [{"instr(hex(zeroblob(124999)), hex(zeroblob(62499)) || '1')": 0}]}
# (instr and replace are linear now: at the value limit one call takes milliseconds, not SQLite's 0.3 s)


@pytest.fixture(scope="module")
def server(refreshed):
    db = refreshed
    with served(db) as (base, _):
        yield base, db


def query(base: str, sql: str, timeout: float = 30) -> tuple[int, dict, float]:
    url = f"{base}/news.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "array"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    elapsed = time.monotonic() - t0
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"raw": body[:200].decode("utf-8", "replace")}
    return status, payload, elapsed


@pytest.mark.parametrize("name", HOSTILE)
def test_one_query_cannot_outlive_the_time_limit_or_starve_others(server, name):
    """Three visitors send the query again and again for 2 s (a new one 50 ms after each answer, as a
    script would); a fourth keeps asking `select 1`, which must always answer within 100 ms."""
    base, _ = server
    results, quick = [], []
    stop = time.monotonic() + 2.0

    def hostile():
        while time.monotonic() < stop:
            results.append(query(base, HOSTILE[name]))
            time.sleep(0.05)

    threads = [threading.Thread(target=hostile) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    while time.monotonic() < stop:
        status, payload, elapsed = query(base, "select 1 as one")
        assert status == 200 and payload == [{"one": 1}]
        quick.append(elapsed)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert results and quick
    # A query that runs to the limit ends 0.4-2.4 s past it when three run at once on two cores (measured:
    # 3.4, 3.9, 4.3 s; 3.5 s alone; on 2026-12-08 5.2 and 5.4 s in one run of four), however cheap each of
    # its calls: each of them takes the GIL, shared with the other two and the server. Bounded, not timed.
    slack = 3 if name in ("instr, many calls", "a count to the time limit") else 1
    for status, payload, elapsed in results:
        assert elapsed <= LIMIT_S + slack, (name, elapsed)
        if name in ANSWERED:
            assert status == 200 and payload == ANSWERED[name] and elapsed < 1, (payload, elapsed)
            continue
        reason = json.dumps(payload)  # refused by a bound, with SQLite's reason
        assert status == 400 and any(word in reason for word in ("too big", "not authorized", "too complex",
                                                                 "interrupted", "too long")), reason
    p95 = sorted(quick)[int(len(quick) * 0.95)]
    assert max(quick) < 0.1, quick
    record(f"Datasette: '{name}' from 3 visitors for 2 s, select 1 from a 4th", len(results) + len(quick),
           len(results), 0, 0, f"{len(results)} hostile answers, slowest {max(e for _, _, e in results):.2f} s "
           f"(limit {LIMIT_S:g} s + {slack}); select 1 p95 {p95 * 1000:.0f} ms, max {max(quick) * 1000:.0f} ms")


def test_run_errors_shown_to_visitors_name_no_server_paths(tmp_path):
    """A failed site's error names files relative to the data folder, never where it lives on the server."""
    db = tmp_path / "data" / "news.db"
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "hn.html").write_text((SNAPSHOT / "hn.html").read_text())  # lobsters.html is missing
    done = subprocess.run([str(Path(sys.executable).with_name("newsreader")), "refresh", "--db", str(db),
                           "--snapshot", str(snapshot)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "partial" in done.stderr, done.stderr
    conn = sqlite3.connect(db)
    errors = [row[0] for row in conn.execute("SELECT error FROM runs UNION ALL SELECT error FROM run_sites")
              if row[0]]
    conn.close()
    assert errors and all(str(tmp_path) not in error for error in errors), errors
    assert any("lobsters.html" in error for error in errors), errors


CROSS_SITE = {
    "another site's Origin": {"Origin": "https://evil.example"},
    "an opaque Origin": {"Origin": "null"},
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site same-site (a sibling subdomain)": {"Sec-Fetch-Site": "same-site"},
    "no Origin, no Sec-Fetch-Site": {},
}


def test_a_cross_site_vote_without_cookies_is_refused_by_the_real_server(refreshed_copy):
    """asgi-csrf checks its token only when a request carries cookies, and a cross-site form sends none
    under SameSite=Lax: such a POST stored votes. Now a POST must show it comes from the page itself."""
    db = refreshed_copy
    with served(db) as (base, _banner):
        for name, headers in CROSS_SITE.items():
            forged = requests.post(f"{base}/feedback/vote", data={"story_id": 2, "vote": "down"}, headers=headers,
                                   timeout=10, allow_redirects=False)
            assert forged.status_code == 403, name
        with requests.Session() as browser:  # the reader's own browser, on the page, with its token: stored
            token = re.search(r'name="csrftoken" value="([^"]+)"', browser.get(f"{base}/digest", timeout=10).text)
            done = browser.post(f"{base}/feedback/vote", data={"story_id": 2, "vote": "up", "csrftoken": token[1]},
                                headers={"Origin": base, "Sec-Fetch-Site": "same-origin"}, timeout=10,
                                allow_redirects=False)
    assert done.status_code == 302
    assert sqlite3.connect(store.feedback_path(db)).execute("SELECT vote FROM feedback WHERE story_id = 2"
                                                            ).fetchall() == [("up",)]
    record("Datasette: a vote POSTed from another site without cookies (5 forms of Origin / Sec-Fetch-Site)",
           len(CROSS_SITE), len(CROSS_SITE), 0, 0, "each refused with 403, no vote stored; the reader's own "
           "same-origin vote with its token stored")
