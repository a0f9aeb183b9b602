"""A real browser: `newsreader serve` on a loopback port, headless Chromium renders the digest.

`make test` installs Debian's chromium when it is missing; without it this test fails
with a message saying so (it is never skipped).
"""

import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .helpers import served

OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,2200",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, ("chromium is not installed: run `make test` (it installs Debian's chromium) "
                  "or apt-get install chromium")
    return path


class TextCollector(HTMLParser):
    """Visible text of table cells in the rendered DOM."""

    def __init__(self):
        super().__init__()
        self.cells, self._depth, self._buf = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._depth += 1
            self._buf = []

    def handle_endtag(self, tag):
        if tag == "td" and self._depth:
            self._depth -= 1
            self.cells.append(" ".join("".join(self._buf).split()))

    def handle_data(self, data):
        if self._depth:
            self._buf.append(data)


@pytest.fixture
def server(refreshed_copy):
    db = refreshed_copy
    with served(db) as (base, banner):
        yield base, db, banner


def test_digest_renders_in_headless_chromium(server, tmp_path):
    base, db, banner = server
    assert f"{base}/news/digest" in banner  # serve prints the digest URL
    OUTPUT.mkdir(parents=True, exist_ok=True)
    browser = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", f"{base}/news/digest"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    (OUTPUT / "digest.html").write_text(dom)
    cells = TextCollector()
    cells.feed(dom)
    expected = sqlite3.connect(db).execute(
        "SELECT title, summary FROM digest_stories WHERE run_id = (SELECT max(id) FROM runs)").fetchall()
    assert len(expected) > 10
    for title, summary in expected:
        assert title in cells.cells, title
        assert summary in cells.cells, summary
    shot = OUTPUT / "digest.png"
    shot.unlink(missing_ok=True)
    subprocess.run([*browser, f"--screenshot={shot}", f"{base}/news/digest"], capture_output=True, timeout=120,
                   check=True)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
