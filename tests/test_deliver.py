"""The digest comes to the reader: a loopback SMTP server (aiosmtpd) and a loopback webhook receiver take
what a refresh and `newsreader deliver` send, and the outbox keeps each day to one delivery a channel."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import sqlite3
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from pipeline.cli import cli

from .helpers import SNAPSHOT, LoopbackServer

SECRET = "a shared secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """What the loopback SMTP server received: each message, parsed."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


class Receiver:
    """A loopback webhook: answers `statuses` in turn (then 200), after `delay` seconds; keeps every body."""

    def __init__(self, statuses=(), delay: float = 0.0):
        self.statuses, self.delay, self.received = list(statuses), delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.received.append((status, dict(self.headers), body))  # taken in, whatever follows
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender was killed while we waited: it never hears the answer
                    pass

        self.httpd = LoopbackServer(Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(*statuses, delay=0.0):
        made.append(Receiver(statuses, delay))
        return made[-1]

    yield make
    for r in made:
        r.close()


def workdir_with(tmp_path: Path, channels: str) -> Path:
    (tmp_path / "newsreader.toml").write_text(channels, encoding="utf-8")
    return tmp_path


def newsreader(workdir: Path, *args, env=None):
    env = {"NEWSREADER_WEBHOOK_SECRET": SECRET, **(env or {})}
    return CliRunner(env=env).invoke(cli, ["--config", str(workdir / "newsreader.toml"), *args,
                                           "--db", str(workdir / "news.db")])


def refresh(workdir: Path):
    return newsreader(workdir, "refresh", "--snapshot", str(SNAPSHOT))


def outbox(workdir: Path) -> list[tuple]:
    return sqlite3.connect(workdir / "news.db").execute(
        "SELECT channel, status, attempts, sends FROM outbox ORDER BY channel").fetchall()


def test_a_refresh_mails_the_day_once_and_resend_mails_it_again(tmp_path, smtp):
    box, port = smtp
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "morning-mail"\nemail = "reader@example.org"\n'
                                  f'smtp = "smtp://127.0.0.1:{port}"\nfrom = "newsreader@example.org"\n')
    first = refresh(work)
    assert first.exit_code == 0, first.output
    assert "deliver morning-mail: sent" in first.output
    assert len(box.messages) == 1
    to, message = box.messages[0]
    assert to == ["reader@example.org"] and message["From"] == "newsreader@example.org"
    assert message["Subject"].startswith("newsreader digest ") and message["Message-ID"].endswith("@newsreader>")
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    conn = sqlite3.connect(work / "news.db")
    relevant = [t for (t,) in conn.execute("SELECT title FROM digest_stories WHERE run_id = 1")]
    assert relevant and all(title in text for title in relevant)
    assert all(html_escaped(title) in page for title in relevant)
    assert refresh(work).exit_code == 0
    assert len(box.messages) == 1  # the second refresh of the day sends nothing
    again = newsreader(work, "deliver", "--resend")
    assert again.exit_code == 0, again.output
    assert len(box.messages) == 2 and box.messages[1][1]["Message-ID"] != message["Message-ID"]
    assert outbox(work) == [("morning-mail", "sent", 1, 2)]


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_a_receiver_that_fails_twice_then_works_gets_the_day_exactly_once(tmp_path, receiver):
    hook = receiver(500, 503)
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "hook"\nwebhook = "{hook.url}"\n')
    first = refresh(work)
    assert first.exit_code == 0 and "deliver hook: pending (webhook answered HTTP 500" in first.output
    status = newsreader(work, "status")
    assert "undelivered: " in status.output and "to hook: pending after 1 attempt(s) — webhook answered HTTP 500" \
        in status.output
    assert refresh(work).exit_code == 0  # within the backoff: the refresh does not try again
    assert len(hook.received) == 1
    second = newsreader(work, "deliver")  # by hand: now
    assert second.exit_code == 1 and "pending" in second.output
    third = newsreader(work, "deliver")
    assert third.exit_code == 0 and "hook" in third.output and "sent" in third.output
    assert newsreader(work, "deliver").output.strip().endswith("skipped (sent already)")
    delivered = [(headers, body) for status, headers, body in hook.received if status == 200]
    assert len(delivered) == 1 and len(hook.received) == 3
    headers, body = delivered[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Newsreader-Signature"] == expected
    sent = json.loads(body)
    assert sent["channel"] == "hook" and sent["stories"] and all(s["relevant"] == 1 for s in sent["stories"])
    assert len({h["Idempotency-Key"] for _, h, _ in hook.received}) == 1  # one send, tried three times
    assert outbox(work) == [("hook", "sent", 3, 1)]
    assert "undelivered" not in newsreader(work, "status").output


def test_a_push_goes_through_apprise_with_the_count_and_the_top_stories(tmp_path, receiver):
    hook = receiver()
    port = hook.httpd.server_address[1]
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "phone"\napprise = "json://127.0.0.1:{port}/hook"\n'
                                  "min_score = 60\ntags = [\"security\", \"databases\", \"systems\"]\n")
    out = refresh(work)
    assert out.exit_code == 0 and "deliver phone: sent" in out.output, out.output
    (status, headers, body), = hook.received
    sent = json.loads(body)
    assert sent["title"].startswith("newsreader digest ") and sent["title"].endswith("stories")
    conn = sqlite3.connect(work / "news.db")
    top = conn.execute("SELECT s.title FROM judgments AS j JOIN stories AS s ON s.id = j.story_id WHERE j.relevant "
                       "AND j.score >= 60 AND EXISTS (SELECT 1 FROM story_tags AS t WHERE t.story_id = j.story_id "
                       "AND t.tag IN ('security', 'databases', 'systems')) ORDER BY j.score DESC, s.id").fetchall()
    assert top and top[0][0] in sent["message"]


def test_a_failing_channel_costs_its_delivery_never_the_refresh(tmp_path):
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "mail"\nemail = "reader@example.org"\n'
                                  f'smtp = "smtp://127.0.0.1:{free_port()}"\n')  # nothing listens there
    out = refresh(work)
    assert out.exit_code == 0 and "Traceback" not in out.output
    assert "deliver mail: pending (SMTP 127.0.0.1" in out.output
    conn = sqlite3.connect(work / "news.db")
    assert conn.execute("SELECT status FROM runs").fetchall() == [("ok",)]
    assert outbox(work) == [("mail", "pending", 1, 1)]


@pytest.mark.parametrize("channel, message", [
    ('name = "x"\napprise = "bogus://nowhere"\n', "'bogus' is not a URL Apprise knows"),
    ('name = "x"\nemail = "reader@example.org"\n', "smtp must be smtp://host:port"),
    ('name = "x"\nemail = "reader@example.org"\nsmtp = "smtp://"\n', "smtp must be smtp://host:port"),
    ('name = "x"\nemail = "not an address"\nsmtp = "smtp://127.0.0.1:25"\n', "email is not a mail address"),
    ('name = "x"\nemail = "a@example.org\\nBcc: b@example.org"\nsmtp = "smtp://h:25"\n', "must be one line"),
    ('name = "x"\nwebhook = "ftp://example.org/hook"\n', "webhook must be an http(s) URL"),
    ('name = "x"\nwebhook = "https://example.org/hook"\nemail = "a@example.org"\n', "exactly one of"),
    ('name = "x"\nwebhook = "https://example.org/hook"\nwhen = "25:00"\n', "when must be"),
    ('name = "x"\nwebhook = "https://example.org/hook"\ntags = ["nope"]\n', "tags names 'nope'"),
    ('name = "Bad Name"\nwebhook = "https://example.org/hook"\n', "name must be unique"),
    ('name = "x"\nwebhook = "https://example.org/hook"\ncolour = "red"\n', "unknown key 'colour'"),
])
def test_a_misconfigured_channel_is_one_line_before_any_fetch(tmp_path, channel, message):
    work = workdir_with(tmp_path, "[[deliver]]\n" + channel)
    out = refresh(work)
    assert out.exit_code == 1 and message in out.output, out.output
    assert "Traceback" not in out.output and not (work / "news.db").exists()


def test_a_webhook_needs_its_secret_and_a_user_needs_a_password(tmp_path):
    work = workdir_with(tmp_path, '[[deliver]]\nname = "hook"\nwebhook = "https://example.org/hook"\n')
    out = CliRunner(env={"NEWSREADER_WEBHOOK_SECRET": ""}).invoke(
        cli, ["--config", str(work / "newsreader.toml"), "config"])
    assert out.exit_code == 1 and "set NEWSREADER_WEBHOOK_SECRET" in out.output
    work = workdir_with(tmp_path, '[[deliver]]\nname = "m"\nemail = "a@example.org"\nsmtp = "smtp://me@h:587"\n')
    out = CliRunner(env={"NEWSREADER_SMTP_PASSWORD": ""}).invoke(
        cli, ["--config", str(work / "newsreader.toml"), "config"])
    assert out.exit_code == 1 and "NEWSREADER_SMTP_PASSWORD is not set" in out.output


def test_a_hostile_title_cannot_add_headers_or_markup(tmp_path, smtp):
    from pipeline import deliver

    box, port = smtp
    story = {"story_id": 1, "source": "hn", "label": "HN", "title": '<script>alert(1)</script> "Q" & A',
             "url": "javascript:alert(1)", "discussion_url": None, "summary": "<img src=x onerror=alert(1)> Why.",
             "score": 90, "relevant": 1, "tags": "security"}
    channel = deliver.Channel("m", "email", "reader@example.org", smtp=f"smtp://127.0.0.1:{port}")
    deliver.send_email(channel, deliver.Digest("2026-12-03", 1, [story]), "<k@newsreader>")
    (_, message), = box.messages
    page = message.get_body(("html",)).get_content()
    assert "<script>" not in page and "<img" not in page and "javascript:" not in page
    assert "&lt;script&gt;" in page
    assert set(message.keys()) == {"Subject", "From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"}


def resend_in_child(db: str, channel, day: str) -> None:
    from pipeline import deliver, store

    deliver.deliver(store.connect(db), [channel], day, by_hand=True, resend=True)


def test_killed_at_random_points_between_send_and_record_a_day_is_never_sent_twice_nor_lost(
        tmp_path, receiver, monkeypatch):
    """20 trials: a new send of the day (a --resend) in a process killed at a random moment (before the
    intent, during the send, after it, before its record); then `deliver` as the next refresh would. For a
    receiver that keeps Idempotency-Keys, each trial's message arrives once (copies carry one key), and none
    is lost."""
    import multiprocessing

    from pipeline import deliver, store

    monkeypatch.setenv("NEWSREADER_WEBHOOK_SECRET", SECRET)
    hook = receiver(delay=0.15)
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "hook"\nwebhook = "{hook.url}"\n')
    assert refresh(work).exit_code == 0
    db = str(work / "news.db")
    conn = store.connect(db)
    day = conn.execute("SELECT day FROM outbox").fetchone()[0]
    channel = deliver.Channel("hook", "webhook", hook.url)
    rng, context, caught = random.Random(20), multiprocessing.get_context("fork"), 0
    for _ in range(20):
        before, (sends,) = len(hook.received), conn.execute("SELECT sends FROM outbox").fetchone()
        child = context.Process(target=resend_in_child, args=(db, channel, day))
        child.start()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        status, now_sends = conn.execute("SELECT status, sends FROM outbox").fetchone()
        if status != "sent":  # killed between the intent and its record: the next try, with the same key
            caught += 1
            assert [o.status for o in deliver.deliver(conn, [channel], day, by_hand=True)] == ["sent"]
        elif now_sends == sends:  # killed before the intent: this trial's send never began; it begins now
            deliver.deliver(conn, [channel], day, by_hand=True, resend=True)
        keys = [headers["Idempotency-Key"] for _, headers, _ in hook.received[before:]]
        accepted = {headers["Idempotency-Key"] for code, headers, _ in hook.received[before:] if code == 200}
        assert len(set(keys)) == 1 and accepted == set(keys), keys  # one message, not lost
    assert caught >= 3  # the kills did land between a send's intent and its record
    assert conn.execute("SELECT status, sends FROM outbox").fetchone() == ("sent", 21)


def test_a_push_a_story_above_a_score(tmp_path, receiver):
    hook = receiver()
    port = hook.httpd.server_address[1]
    work = workdir_with(tmp_path, f'[[deliver]]\nname = "phone"\napprise = "json://127.0.0.1:{port}/hook"\n'
                                  "per_story = true\nmin_score = 70\n")
    assert refresh(work).exit_code == 0
    conn = sqlite3.connect(work / "news.db")
    above = conn.execute("SELECT count(*) FROM digest_stories WHERE run_id = 1 AND score >= 70").fetchone()[0]
    titles = [json.loads(body)["title"] for _, _, body in hook.received]
    assert above > 1 and len(titles) == above
    assert all(not t.startswith("newsreader digest") for t in titles)
    assert outbox(work) == [("phone", "sent", 1, 1)]
    bad = workdir_with(tmp_path, '[[deliver]]\nname = "m"\nwebhook = "https://example.org/h"\nper_story = true\n')
    out = CliRunner(env={"NEWSREADER_WEBHOOK_SECRET": SECRET}).invoke(
        cli, ["--config", str(bad / "newsreader.toml"), "config"])
    assert out.exit_code == 1 and "per_story (a push a story) is for an apprise channel" in out.output
