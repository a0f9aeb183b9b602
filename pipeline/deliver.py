"""Delivery: the day's digest to the reader's channels (`[[deliver]]`: email over SMTP, a push through
Apprise, a signed JSON webhook), each day once per channel.

Exactly once is an outbox in the history (schema.sql's `outbox`): the intent is recorded ('sending')
before the send and the outcome after it, each in its own transaction. A day 'sent' is not sent
again (but by --resend); a failed send is 'pending' with its error and a time to try again (backoff
for the automatic tries after a refresh; `newsreader deliver` by hand tries now), then 'failed' once
`max_attempts` are spent. A crash between the send and its record leaves 'sending': the next try
sends with the same idempotency key (the email's Message-ID, the webhook's Idempotency-Key), so a
receiver that keeps keys drops the copy. A failing channel costs that channel's delivery, never
the refresh, and its row says why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import schema, store
from .config import DEFAULT_SENDER
from .text import http_link, one_line

BACKOFF_S = 300  # the first automatic retry after a failed send; doubled each time, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 6 * 3600
SMTP_TIMEOUT_S = 30
TOP_STORIES = 5  # a push message names this many stories
VOTE_DAYS = 14  # a mail's vote links work this long


class DeliveryError(Exception):
    """A send that failed; the message says why in one line (no secret in it)."""


@dataclass(frozen=True)
class Channel:
    """One `[[deliver]]` entry as config.check_channel made it."""

    name: str
    kind: str  # email | apprise | webhook
    target: str  # the mail address, the Apprise URL, the webhook URL
    when: str = "refresh"  # after each refresh, or "HH:MM": from that time of day (local) on
    only_relevant: bool = True
    min_score: int = 0
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    max_attempts: int = 5
    smtp: str | None = None
    sender: str = DEFAULT_SENDER
    per_story: bool = False  # apprise: a push a story (those min_score lets through), not one a day

    @classmethod
    def from_config(cls, entry: dict) -> Channel:
        return cls(entry["name"], entry["kind"], entry[entry["kind"]], entry["when"], entry["only_relevant"],
                   entry["min_score"], tuple(entry["tags"]), tuple(entry["sources"]), entry["max_attempts"],
                   entry.get("smtp"), entry.get("from") or cls.sender, entry.get("per_story", False))


@dataclass(frozen=True)
class Links:
    """Where the reader's newsreader answers (`public_url`), and the key its vote links are signed with."""

    public_url: str
    secret: bytes

    @classmethod
    def of(cls, public_url: str | None, history) -> Links | None:
        """The links for mails from this history (its signing key, made once), or None without a public_url."""
        return cls(public_url, store.token_secret(history)) if public_url else None

    def page(self, day: str) -> str:
        return f"{self.public_url.rstrip('/')}/digest/{day}"

    def vote(self, story_id: int, vote: str, reader: str, now: datetime) -> str:
        expires = int((now + timedelta(days=VOTE_DAYS)).timestamp())
        return f"{self.public_url.rstrip('/')}/vote/{vote_token(self.secret, story_id, vote, reader, expires)}"


@dataclass
class Digest:
    """What one channel gets of one day: that day's latest run's stories, as the channel filters them."""

    day: str
    run_id: int
    stories: list[dict] = field(default_factory=list)
    links: Links | None = None  # None: no public_url, so no vote links and no link to the page
    reader: str = ""  # the channel, named in its vote tokens
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def vote_token(secret: bytes, story_id: int, vote: str, reader: str, expires: int) -> str:
    """A signed, expiring vote for one story by one reader: what a mail's 👍/👎 link carries."""
    payload = b64(json.dumps([story_id, vote, reader, expires], separators=(",", ":")).encode())
    return f"{payload}.{b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())}"


def read_vote_token(secret: bytes | None, token: str, now: datetime | None = None) -> tuple[int, str, str] | None:
    """(story id, vote, reader) of a token this key signed and that has not expired; else None."""
    payload, _, signature = token.partition(".")
    if not secret or not signature:
        return None
    expected = b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        story_id, vote, reader, expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if vote not in ("up", "down") or not isinstance(story_id, int) or expires < (now or datetime.now(UTC)).timestamp():
        return None
    return story_id, vote, reader


@dataclass
class Outcome:
    channel: str
    day: str
    status: str  # sent | pending | failed | skipped
    detail: str = ""


STORIES = """
SELECT s.id AS story_id, s.source, coalesce(src.label, s.source) AS label, s.title,
       coalesce(s.url, s.discussion_url) AS url, s.discussion_url, j.summary, j.score, j.relevant,
       (SELECT group_concat(t.tag, ', ') FROM story_tags AS t WHERE t.run_id = j.run_id
        AND t.story_id = j.story_id) AS tags
FROM judgments AS j JOIN stories AS s ON s.id = j.story_id LEFT JOIN sources AS src ON src.slug = s.source
WHERE j.run_id = :run AND (j.relevant = 1 OR :everything) AND j.score >= :min_score
  AND NOT EXISTS (SELECT 1 FROM story_links AS l JOIN judgments AS o ON o.run_id = l.run_id
                  AND o.story_id = l.linked_story_id AND (o.relevant = 1 OR :everything)
                  WHERE l.run_id = j.run_id AND l.story_id = j.story_id AND l.linked_story_id < j.story_id)
ORDER BY j.relevant DESC, j.score DESC, s.id
"""


def digest_for(conn: sqlite3.Connection, channel: Channel, day: str) -> Digest | None:
    """The day's digest as this channel takes it (None: no run landed that day)."""
    run = conn.execute("SELECT id FROM runs WHERE status IN ('ok', 'partial') AND substr(started_at, 1, 10) = ? "
                       "ORDER BY id DESC LIMIT 1", [day]).fetchone()
    if run is None:
        return None
    cursor = conn.execute(STORIES, {"run": run[0], "everything": int(not channel.only_relevant),
                                    "min_score": channel.min_score})
    names = [c[0] for c in cursor.description]
    stories = [dict(zip(names, row, strict=True)) for row in cursor]
    stories = [s for s in stories if (not channel.sources or s["source"] in channel.sources)
               and (not channel.tags or set((s["tags"] or "").split(", ")) & set(channel.tags))]
    return Digest(day, run[0], stories)


# --- what each channel is sent --------------------------------------------------------------------------------

def subject(digest: Digest) -> str:
    """The mail's subject and the push's title: the day and a count, never a stranger's title."""
    return f"newsreader digest {digest.day}: {len(digest.stories)} stor{'y' if len(digest.stories) == 1 else 'ies'}"


def votes_of(digest: Digest, story: dict) -> dict[str, str]:
    """The story's vote links ("up", "down"), when the reader's newsreader has a public_url."""
    if digest.links is None:
        return {}
    return {vote: digest.links.vote(story["story_id"], vote, digest.reader, digest.now) for vote in ("up", "down")}


def as_text(digest: Digest) -> str:
    lines = [subject(digest), ""]
    for s in digest.stories:
        lines += [f"* {s['title']} [{s['label']}]", f"  {s['summary']}", f"  {http_link(s['url']) or ''}".rstrip()]
        lines += [f"  more like this: {url}" if vote == "up" else f"  less like this: {url}"
                  for vote, url in votes_of(digest, s).items()]
        lines.append("")
    if digest.links is not None:
        lines.append(f"The day's page: {digest.links.page(digest.day)}")
    return "\n".join(lines).rstrip() + "\n"


def as_html(digest: Digest) -> str:
    """The day's stories as email-safe HTML: inline styles, every stranger's text escaped, http(s) links only."""
    e = html.escape
    items = []
    for s in digest.stories:
        title = e(s["title"])
        if http_link(s["url"]):
            title = f'<a href="{e(http_link(s["url"]))}" style="color:#1a0dab">{title}</a>'
        meta = " · ".join(x for x in (e(s["label"]), e(s["tags"] or "")) if x)
        votes = votes_of(digest, s)
        if votes:
            meta += (f' · <a href="{e(votes["up"])}">👍 more</a> · <a href="{e(votes["down"])}">👎 less</a>')
        items.append(f'<li style="margin:0 0 12px"><div style="font-weight:bold">{title}</div>'
                     f'<div style="color:#555;font-size:13px">{meta}</div><div>{e(s["summary"])}</div></li>')
    page = (f'<p><a href="{e(digest.links.page(digest.day))}">The day\'s page</a></p>'
            if digest.links is not None else "")
    body = ("font-family:sans-serif;max-width:40em;margin:0 auto;padding:8px;overflow-wrap:anywhere;"
            "word-break:break-word")
    return (f'<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'</head><body style="{body}">'
            f"<h1 style=\"font-size:20px\">{e(subject(digest))}</h1>"
            f'<ul style="padding-left:18px">{"".join(items)}</ul>{page}</body></html>')


def as_push(digest: Digest) -> str:
    top = [f"- {s['title']}: {http_link(s['url']) or ''}".rstrip(": ") for s in digest.stories[:TOP_STORIES]]
    more = len(digest.stories) - len(top)
    return "\n".join([*top, *([f"and {more} more"] if more > 0 else [])])


def as_json(digest: Digest, channel: Channel, message_id: str) -> bytes:
    return json.dumps({"day": digest.day, "run_id": digest.run_id, "channel": channel.name, "message_id": message_id,
                       "stories": [{k: s[k] for k in ("story_id", "source", "title", "url", "discussion_url",
                                                       "summary", "score", "relevant", "tags")}
                                   for s in digest.stories]}, ensure_ascii=False).encode("utf-8")


# --- the senders ------------------------------------------------------------------------------------------------

def send_email(channel: Channel, digest: Digest, message_id: str) -> None:
    import smtplib
    from email.message import EmailMessage
    from email.utils import formatdate
    from urllib.parse import parse_qs, unquote, urlsplit

    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject(digest), channel.sender, channel.target
    message["Date"], message["Message-ID"] = formatdate(localtime=True), message_id
    message.set_content(as_text(digest))
    message.add_alternative(as_html(digest), subtype="html")
    parts = urlsplit(channel.smtp)
    secure = parts.scheme == "smtps"
    try:
        with (smtplib.SMTP_SSL if secure else smtplib.SMTP)(parts.hostname, parts.port or (465 if secure else 25),
                                                           timeout=SMTP_TIMEOUT_S) as smtp:
            if not secure and parse_qs(parts.query).get("starttls") == ["1"]:
                smtp.starttls()
            if parts.username:
                smtp.login(unquote(parts.username), os.environ.get("NEWSREADER_SMTP_PASSWORD", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {parts.hostname}:{parts.port or ''}: {one_line(str(exc)) or type(exc).__name__}"
                            ) from None


def send_apprise(channel: Channel, digest: Digest, message_id: str) -> None:
    import apprise

    notifier = apprise.Apprise()
    notifier.add(channel.target)
    pushes = [(f"{s['title']} [{s['label']}]", f"{s['summary']}\n{http_link(s['url']) or ''}".strip())
              for s in digest.stories] if channel.per_story else [(subject(digest), as_push(digest))]
    with apprise.LogCapture(level=apprise.logging.WARNING) as log:
        sent = all([notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
                    for title, body in pushes])
    if not sent:
        said = one_line(log.getvalue())[-300:] if hasattr(log, "getvalue") else ""
        raise DeliveryError(f"Apprise could not deliver to {channel.target.split('://')[0]}://…"
                            + (f": {said}" if said else ""))


def send_webhook(channel: Channel, digest: Digest, message_id: str) -> None:
    import httpx

    body = as_json(digest, channel, message_id)
    secret = os.environ.get("NEWSREADER_WEBHOOK_SECRET", "").encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    try:
        response = httpx.post(channel.target, content=body, timeout=15, headers={
            "Content-Type": "application/json", "X-Newsreader-Signature": signature, "Idempotency-Key": message_id})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}: {one_line(str(exc))[:200]}") from None
    if response.status_code >= 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}")


SENDERS: dict[str, Callable[[Channel, Digest, str], None]] = {
    "email": send_email, "apprise": send_apprise, "webhook": send_webhook}


# --- the outbox -------------------------------------------------------------------------------------------------

def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_id(channel: Channel, day: str, sends: int) -> str:
    """The send's idempotency key: the same for every try of one send, new for each --resend."""
    tag = hashlib.sha256(f"{channel.name}/{channel.target}/{day}/{sends}".encode()).hexdigest()[:16]
    return f"<{day}.{channel.name}.{sends}.{tag}@newsreader>"


def due(channel: Channel, now: datetime, by_hand: bool) -> bool:
    """Whether the channel is to be delivered now: by hand always; else after a refresh, or from its time."""
    if by_hand or channel.when == "refresh":
        return True
    hour, minute = map(int, channel.when.split(":"))
    local = now.astimezone()
    return (local.hour, local.minute) >= (hour, minute)


def deliver(conn: sqlite3.Connection, channels: list[Channel], day: str, *, by_hand: bool = False,
            resend: bool = False, now: datetime | None = None, links: Links | None = None) -> list[Outcome]:
    """Each channel's digest of `day`, sent unless it was; never raises for a channel that fails. `links`:
    the vote links and the page link a mail carries (None: none)."""
    now = now or datetime.now(UTC)
    outcomes = []
    for channel in channels:
        if not due(channel, now, by_hand):
            outcomes.append(Outcome(channel.name, day, "skipped", f"not before {channel.when}"))
            continue
        outcomes.append(deliver_one(conn, channel, day, by_hand, resend, now, links))
    return outcomes


def deliver_one(conn: sqlite3.Connection, channel: Channel, day: str, by_hand: bool, resend: bool,
                now: datetime, links: Links | None = None) -> Outcome:
    row = conn.execute("SELECT status, attempts, sends, next_attempt_at FROM outbox WHERE channel = ? AND day = ?",
                       [channel.name, day]).fetchone()
    status, attempts, sends, next_at = row or (None, 0, 1, None)
    if status == "sent" and not resend:
        return Outcome(channel.name, day, "skipped", "sent already")
    if not by_hand and (status == "failed" or (next_at and next_at > stamp(now))):
        return Outcome(channel.name, day, "skipped", "gave up" if status == "failed" else f"next try at {next_at}")
    digest = digest_for(conn, channel, day)
    if digest is None or not digest.stories:
        return Outcome(channel.name, day, "skipped", "no digest that day" if digest is None else "nothing to send")
    digest.links, digest.reader, digest.now = links, channel.name, now
    if status == "sent":  # --resend: a new send, with its own key
        sends, attempts = sends + 1, 0
    key = message_id(channel, day, sends)
    with schema.transaction(conn):  # the intent, before anything leaves
        conn.execute(
            "INSERT INTO outbox (channel, day, run_id, status, stories, attempts, sends, message_id, updated_at) "
            "VALUES (?, ?, ?, 'sending', ?, ?, ?, ?, ?) ON CONFLICT (channel, day) DO UPDATE SET "
            "run_id = excluded.run_id, status = 'sending', stories = excluded.stories, attempts = excluded.attempts, "
            "sends = excluded.sends, message_id = excluded.message_id, updated_at = excluded.updated_at",
            [channel.name, day, digest.run_id, len(digest.stories), attempts + 1, sends, key, stamp(now)])
    try:
        SENDERS[channel.kind](channel, digest, key)
    except Exception as exc:  # any failure of a channel is that channel's: recorded, never raised
        return record_failure(conn, channel, day, attempts + 1, exc, now)
    with schema.transaction(conn):
        conn.execute("UPDATE outbox SET status = 'sent', last_error = NULL, next_attempt_at = NULL, sent_at = ?, "
                     "updated_at = ? WHERE channel = ? AND day = ?", [stamp(now), stamp(now), channel.name, day])
    return Outcome(channel.name, day, "sent", f"{len(digest.stories)} stories, {key}")


def record_failure(conn: sqlite3.Connection, channel: Channel, day: str, attempts: int, exc: Exception,
                   now: datetime) -> Outcome:
    error = one_line(str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")[:500]
    gave_up = attempts >= channel.max_attempts
    later = now + timedelta(seconds=min(BACKOFF_S * 2 ** (attempts - 1), MAX_BACKOFF_S))
    with schema.transaction(conn):
        conn.execute("UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ? "
                     "WHERE channel = ? AND day = ?",
                     ["failed" if gave_up else "pending", error, None if gave_up else stamp(later), stamp(now),
                      channel.name, day])
    return Outcome(channel.name, day, "failed" if gave_up else "pending",
                   f"{error}" + ("" if gave_up else f"; attempt {attempts} of {channel.max_attempts}, "
                                                    f"next at {stamp(later)}"))


def undelivered(conn: sqlite3.Connection) -> list[tuple]:
    """(channel, day, status, attempts, last error) of every day not sent, oldest first."""
    return conn.execute("SELECT channel, day, status, attempts, last_error FROM outbox WHERE status != 'sent' "
                        "ORDER BY day, channel").fetchall()
