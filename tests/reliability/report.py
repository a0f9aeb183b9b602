"""Write RELIABILITY.md from the figures the reliability tests recorded (test-output/reliability.json).

    NEWSREADER_SOAK=1 python -m pytest tests/reliability && python -m tests.reliability.report
"""

import json
import platform
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from .figures import OUTPUT

ROOT = Path(__file__).resolve().parents[2]

# What the figures above rest on: where the model's code ran, and what that does and does not isolate.
EXECUTORS = [
    "## Where the model's code ran",
    "",
    "Every refresh above used the default executor, `jail`: the model-written code ran in a bubblewrap "
    "process per site (no network, empty environment, no capabilities, own PID namespace, a seccomp filter "
    "refusing ptrace, read-only system paths, interpreter files and package folders, a read-only `/dev` and no "
    "`/tmp`, one 96 MB tmpfs holding its sandbox DB as the only writable place, address-space/CPU/file/process "
    "limits, a host-enforced wall-clock deadline per step that kills the jail's PID 1 and so its whole PID "
    "namespace). The `jail:` rows show an agent that escapes smolagents' interpreter reaching only that "
    "process. Not isolated by the jail: the kernel itself (shared with the host), memory as a whole (limits are "
    "per process; there is no cgroup) and CPU share. `--executor docker` adds cgroup limits; `--executor local` "
    "isolates nothing and is for the built-in models only.",
]

# Hardening round 3 (issue 28): what a red team broke on 2026-12-02, and the row above that tests each.
HARDENING = [
    ("host hang from the returned sandbox (a costly expression index)",
     "an extra table with a costly expression index, written around the sql tool"),
    ("the jail outlives the host's kill (ptrace of its PID 1)",
     "jail: ptrace of the jail's PID 1; jail: a detached, signal-ignoring process in the jail"),
    ("SSRF by DNS rebinding", "articles: DNS rebinding"),
    ("unbounded writable /dev in the jail", "jail: write until refused"),
    ("vote CSRF without cookies", "Datasette: a vote POSTed from another site without cookies"),
    ("the jail binds a home folder", "jail: a venv whose python is ~/bin/python3"),
    ("a visitor's query outlives the time limit (instr over hex(zeroblob))",
     "Datasette: 'instr over hex(zeroblob)', 'replace over hex(zeroblob)', 'instr, many calls'"),
    ("evidence accepts any substring", "evidence: 'e', two words, a quote starting or ending mid-word"),
    ("IPv6 forms embedding IPv4 pass the address check", "articles: ... 13 IPv6 forms embedding private IPv4"),
    ("WARC record bomb", "articles: a ... gzip record inflating to 600 MB in a --snapshot WARC"),
    ("site_timeout not enforced during a model call", "LLM: an endpoint dripping its answer one byte a second"),
]

# Found on 2026-12-03 while making the test suite faster (issue 31), and what now tests each.
FOUND = [
    ("the refresh process aborted (\"Fatal Python error: Aborted\"): an article's extraction in libxml2 beside "
     "a discussion's parse in another thread", "tests/test_reading.py: no two threads are in libxml2 at once"),
    ("an article sent a byte a second was read for all its bytes (21 s), past its 3 s deadline: the body was "
     "read in 64 KB chunks, and the deadline checked only between them", "articles: hostile servers (the drip)"),
    ("a listing sent a byte at a time had no deadline at all (only each read's timeout)",
     "source faults: a byte at a time past the deadline"),
    ("tests that gave a refresh only a front-page transport looked up every article's real host",
     "tests/conftest.py: a test resolves no host name but localhost"),
]


def main() -> int:
    if not OUTPUT.is_file():
        print(f"no figures at {OUTPUT}: run the reliability tests first", file=sys.stderr)
        return 1
    rows = json.loads(OUTPUT.read_text())
    soak = all(r["soak"] for r in rows)
    lines = [
        "# Reliability",
        "",
        f"Written by `make soak` ({'long' if soak else 'fast'} variants) on "
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.platform()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}. Every figure comes from the test named in the row "
        "(`tests/reliability/`); `make test` runs the same tests with fewer trials.",
        "",
        "| test | inputs tried | faults survived | rows lost | malformed rows landed | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['test']} | {r['inputs']} | {r['faults']} | {r['rows_lost']} | {r['malformed_landed']} "
                     f"| {r['note']} |")
    lost = sum(r["rows_lost"] for r in rows)
    landed = sum(r["malformed_landed"] for r in rows)
    lines += ["", f"Total: {sum(r['inputs'] for r in rows)} inputs, {lost} rows lost, {landed} malformed rows landed."]
    lines += ["", *EXECUTORS, "", "## Hardening round 3: the eleven breaks and their rows", "",
              "| what broke | the row that tests it |", "|---|---|"]
    lines += [f"| {broke} | {row} |" for broke, row in HARDENING]
    lines += ["", "## Found while making the tests faster", "", "| what broke | what tests it |", "|---|---|"]
    lines += [f"| {broke} | {row} |" for broke, row in FOUND]
    (ROOT / "RELIABILITY.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {ROOT / 'RELIABILITY.md'}")
    return 0 if lost == 0 and landed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
