"""A real browser: `newsreader serve` on a loopback port, headless Chromium driven over DevTools.

The day's page at a phone's and a laptop's width (measured in the page: nothing wider than
the window), every relevant story with its title, summary and tags, new ones first; the story
and tag pages opened by clicking; a vote clicked, stored in feedback.db and shown after a
reload. Screenshots go to test-output/browser/ for a reviewer to look at.

`make test` installs Debian's chromium when it is missing; without it this test fails with a
message saying so (it is never skipped).
"""

import base64
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from pipeline import store

from .helpers import served, two_day_history

OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, ("chromium is not installed: run `make test` (it installs Debian's chromium) "
                  "or apt-get install chromium")
    return path


class Page:
    """One Chromium tab over the DevTools protocol: navigate, evaluate, screenshot."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def loaded(self, url_part: str = ""):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.eval("document.readyState") == "complete" and url_part in self.eval("location.href"):
                return
            time.sleep(0.1)
        raise AssertionError(f"page did not load ({url_part})")

    def goto(self, url: str, width: int):
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                  mobile=width < 600)
        self.send("Page.navigate", url=url)
        time.sleep(0.2)
        self.loaded(url.split("/", 3)[-1])

    def click(self, selector: str, then: str):
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")
        time.sleep(0.3)
        self.loaded(then)

    def screenshot(self, path: Path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)  # whichever test shoots first (the order is random)
        path.write_bytes(base64.b64decode(data))

    def close(self):
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    db = two_day_history(tmp_path_factory.mktemp("browser") / "news.db")
    with served(db) as (base, banner):
        page = Page(tmp_path_factory.mktemp("profile"))
        try:
            yield base, db, banner, page
        finally:
            page.close()


# Anything laid out wider than the window: the page itself, or any element's right edge.
OVERFLOW = """(() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 1)
    .map(e => e.tagName + '.' + e.className);
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
})()"""


@pytest.mark.parametrize("width", [390, 1280])
def test_the_digest_page_fits_and_shows_every_relevant_story(site, width):
    base, db, banner, page = site
    assert f"{base}/digest" in banner  # serve prints the digest URL
    page.goto(f"{base}/digest", width)
    page.eval("document.querySelector('#still-on-front-page').open = true")  # collapsed: open it to measure
    measured = page.eval(OVERFLOW)
    assert measured["scroll"] <= measured["width"] and not measured["wide"], measured
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(OUTPUT / f"digest-{width}.png")
    text = page.eval("document.body.innerText")
    rows = sqlite3.connect(db).execute(
        "SELECT title, summary, tags FROM digest_stories WHERE run_id = (SELECT max(id) FROM runs)").fetchall()
    assert len(rows) > 20
    for title, summary, tags in rows:
        assert title in text and summary in text, title
        assert all(tag in text for tag in tags.split(", "))
    assert text.index("New today") < text.index("Still on the front page")


def test_the_story_and_tag_pages_open_from_the_digest(site):
    base, db, _, page = site
    page.goto(f"{base}/digest", 390)
    story = page.eval("document.querySelector('#new-today .story').dataset.story")
    page.click(f"#story-{story} a[href='/story/{story}']", f"/story/{story}")
    title = sqlite3.connect(db).execute("SELECT title FROM stories WHERE id = ?", [int(story)]).fetchone()[0]
    assert page.eval("document.querySelector('h1').innerText") == title
    assert page.eval(OVERFLOW)["scroll"] <= 390
    page.screenshot(OUTPUT / "story-390.png")
    page.goto(f"{base}/digest", 390)
    tag = page.eval(f"document.querySelector('#story-{story} a.tag').innerText")
    page.click(f"#story-{story} a.tag", f"/tag/{tag}")
    assert page.eval("document.querySelector('h1').innerText") == tag
    assert title in page.eval("document.body.innerText")


def test_a_vote_click_is_stored_and_shown_after_reload(site):
    base, db, _, page = site
    page.goto(f"{base}/digest", 1280)
    story = page.eval("document.querySelector('#new-today .story').dataset.story")
    assert page.eval(f"document.querySelector('#story-{story}').dataset.vote") == ""
    page.click(f"#story-{story} button[value='up']", "/digest")
    assert sqlite3.connect(store.feedback_path(db)).execute(
        "SELECT vote FROM feedback WHERE story_id = ?", [int(story)]).fetchone() == ("up",)
    page.goto(f"{base}/digest", 1280)
    assert page.eval(f"document.querySelector('#story-{story}').dataset.vote") == "up"
    assert page.eval(f"document.querySelector('#story-{story} button[value=up]').getAttribute('aria-pressed')") \
        == "true"


def test_the_mail_renders_at_a_phones_width_with_nothing_wider_than_the_window(site, tmp_path):
    """The HTML part of the day's mail (deliver.as_html, with vote links), opened as a mail client would
    show it: at 390 px nothing is laid out wider than the window."""
    from datetime import UTC, datetime

    from pipeline import deliver

    _, db, _, page = site
    conn = store.open_db(db).conn
    day = conn.execute("SELECT substr(max(started_at), 1, 10) FROM runs").fetchone()[0]
    channel = deliver.Channel("mail", "email", "reader@example.org", smtp="smtp://127.0.0.1:25")
    digest = deliver.digest_for(conn, channel, day)
    digest.links, digest.reader, digest.now = (deliver.Links("http://news.example:8001", b"k" * 32), "mail",
                                               datetime.now(UTC))
    digest.stories.append({**digest.stories[0], "title": "A" * 300, "summary": "https://example.org/" + "x" * 200})
    mail = tmp_path / "mail.html"
    mail.write_text(deliver.as_html(digest), encoding="utf-8")
    page.goto(mail.as_uri(), 390)
    measured = page.eval(OVERFLOW)
    assert measured["scroll"] <= measured["width"] and measured["wide"] == [], measured
    assert page.eval("document.querySelectorAll('li').length") == len(digest.stories) > 1
    assert page.eval("[...document.querySelectorAll('a')].filter(a => a.textContent.includes('👍')).length") \
        == len(digest.stories)
    page.screenshot(OUTPUT / "mail-390.png")
