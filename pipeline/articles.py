"""Articles: what each story links to, fetched on the host, read with trafilatura, kept as WARC.

Article pages are written by strangers, so this module treats them as it treats the front
pages: bounded in every dimension and never trusted.

- **Fetch** (`fetch_all`): httpx, a bounded number of requests at once (overall and per
  host), connect/read timeouts, a deadline per article and for the stage, a byte cap on the
  *decoded* body (read raw and decompressed here, so a gzip bomb stops at the cap), HTML only
  by content type, at most `MAX_REDIRECTS` redirects, a User-Agent naming the tool, and no
  request to a private, loopback, link-local or otherwise non-public address, IPv6 forms
  that embed one included: checked on every hop, on the very address connected to (the
  name is resolved once, `PinnedBackend`), so a second DNS answer cannot differ from the
  one checked. Each failure costs that article alone, with a reason.
- **Extract** (`extract`): trafilatura (F1 0.959 on the 61 shared benchmark pages, see
  tests/test_articles.py) without the page's own comment section: title, description,
  author, date, language and the main text.
- **Archive**: every response goes into a WARC file (`warcio`), one a day beside the raw
  front pages; a snapshot's `articles.warc.gz` is replayed instead of fetching.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
import lxml.etree

from . import __version__, discussions
from .text import LIBXML, one_line

USER_AGENT = f"newsreader/{__version__} (+https://github.com/newsreader/newsreader; article reader)"
MAX_BYTES = 2_000_000  # decoded bytes of one article page
MAX_REDIRECTS = 5
ARTICLE_TIMEOUT_S = 15.0  # wall clock for one article, redirects and slow bodies included
STAGE_TIMEOUT_S = 60.0  # wall clock for all of a refresh's articles
CONCURRENCY, PER_HOST = 48, 2  # requests in flight: in all (to many hosts), and to any one host
EXCERPT_CHARS = 4000  # of the main text, what the judge's sandbox gets
# Of the main text, what history keeps (UTF-8 bytes): every value stays readable under the served
# Datasette's value limit (serve.VALUE_LIMIT). The longest of 120 real benchmark articles is 20 KB.
TEXT_BYTES = 200_000
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Article:
    """One article as fetched and read: what the history's `articles` table stores."""

    url: str
    status: str = "failed"  # 'ok', 'not html', 'failed'
    http_status: int | None = None
    content_type: str | None = None
    bytes: int = 0
    fetched_at: str = ""
    final_url: str | None = None
    title: str | None = None
    description: str | None = None
    author: str | None = None
    published: str | None = None
    language: str | None = None
    text: str | None = None
    error: str | None = None
    body: bytes | None = None  # the decoded page (for the WARC; not stored in the history)

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "body"}


# --- reading -----------------------------------------------------------------------------------

def extract(html: bytes | str, url: str | None = None) -> dict:
    """The readable parts of an article page: title, description, author, published, language, text.

    trafilatura decides what the main text is; the page's own comment section is left out
    (the discussion is read from HN and Lobsters themselves). Empty fields are None.
    """
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # an unreadable page is our verdict, not a log line
    with LIBXML, warnings.catch_warnings():  # one thread in libxml2 at a time (text.LIBXML says why)
        warnings.simplefilter("ignore")  # lxml's FutureWarnings from inside trafilatura
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    fields = {"title": None, "description": None, "author": None, "published": None, "language": None,
              "text": None}
    if doc is None:
        return fields
    found = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    for ours, theirs in (("title", "title"), ("description", "description"), ("author", "author"),
                         ("published", "date"), ("language", "language"), ("text", "text")):
        value = found.get(theirs)
        fields[ours] = " ".join(str(value).split()) if value and ours != "text" else (value or None)
    if fields["text"]:
        text = "\n".join(line.strip() for line in fields["text"].splitlines() if line.strip())
        fields["text"] = text.encode("utf-8")[:TEXT_BYTES].decode("utf-8", "ignore")
    return fields


# --- fetching ----------------------------------------------------------------------------------

class Refused(Exception):
    """A URL this reader will not request (the reason is the message)."""


NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use NAT64, never global
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, IPv4-compatible, 6to4, Teredo's client, NAT64), if any."""
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address.packed[:12] == bytes(12) or address in NAT64:  # ::a.b.c.d (deprecated), 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(address.packed[12:])
    return None


def public(text: str) -> bool:
    """Whether an address may be requested: global, and no IPv6 form of a non-global IPv4 address."""
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL:
            return False
        inner = embedded_ipv4(address)
        if inner is not None and not inner.is_global:
            return False
    return address.is_global


def resolve_public(host: str, port: int) -> list[tuple]:
    """The addresses to connect to for host:port, resolved once; refused if any is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host!r}: {exc}") from None
    for info in infos:
        if not public(info[4][0]):
            raise Refused(f"{host} resolves to {info[4][0].split('%')[0]}, a non-public address")
    return infos


class PinnedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to the address it checked: the name is resolved once,
    every answer must be public, and the socket is opened to that very answer. A second lookup by the
    connection (DNS rebinding: public first, 127.0.0.1 next) cannot happen. TLS still names the host
    (SNI and certificate checks take it from the URL, as the Host header does). `trusted`: host:port pairs
    connected to as they are (the tests' loopback servers)."""

    def __init__(self, trusted: frozenset[str] = frozenset()):
        self.trusted = trusted

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if f"{host}:{port}" in self.trusted:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            infos = resolve_public(host, port)
        except Refused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception = httpcore.ConnectError(f"no address for {host}")
        for *_, address in infos:  # an address literal: the default backend connects to it without a lookup
            try:
                return super().connect_tcp(address[0], port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last


def pinned_transport(trusted: frozenset[str] = frozenset(), limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through PinnedBackend (no proxy from the environment: a
    proxy would do its own lookup). httpx has no public option for a network backend, so the pool it
    built is replaced by the same pool with ours (httpx is pinned below 1.0 in pyproject)."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=PinnedBackend(trusted))
    return transport


def check_url(url: str) -> None:
    """Refuse anything but a plain http(s) URL (its address is checked when it is connected to)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url[:200]!r}")
    if parts.username or parts.password:
        raise Refused("a URL with user info")


def decoder(encoding: str):
    """A decompressor for a Content-Encoding, or None for identity; unknown encodings are refused."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise Refused(f"unsupported content encoding {encoding!r}")


def read_body(response: httpx.Response, deadline: float, timeout: float) -> bytes:
    """The decoded body, stopped at MAX_BYTES (decompressed bytes) and at the deadline."""
    if response.is_stream_consumed:  # built in memory (a test's transport): the whole body is already there
        if len(response.content) > MAX_BYTES:
            raise Refused(f"larger than {MAX_BYTES // 1_000_000} MB")
        return response.content
    inflate = decoder(response.headers.get("content-encoding", ""))
    out = bytearray()
    for chunk in response.iter_raw():  # as each read returns: a chunk size would wait for that many bytes
        # (a server sending a byte a second held the read for all its bytes, past the deadline)
        if time.monotonic() > deadline:
            raise Refused(f"slower than {timeout:g} s")
        data = chunk if inflate is None else inflate.decompress(chunk, MAX_BYTES + 1 - len(out))
        out += data
        if len(out) > MAX_BYTES or (inflate is not None and inflate.unconsumed_tail):
            raise Refused(f"larger than {MAX_BYTES // 1_000_000} MB")
    return bytes(out)


def fetch_one(client: httpx.Client, url: str, timeout: float = ARTICLE_TIMEOUT_S, raw: bool = False) -> Article:
    """GET one article, following redirects by hand so every hop is checked (its URL here, its address
    by the client's PinnedBackend as it connects); never raises.

    `raw`: a discussion page (HTML or JSON), kept as fetched, not read as an article.
    """
    article = Article(url=url, fetched_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    deadline = time.monotonic() + timeout
    target = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(target)
            with client.stream("GET", target, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate",
                                                       "Accept": "text/html,application/xhtml+xml"}) as response:
                article.http_status, article.final_url = response.status_code, target
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise Refused(f"HTTP {response.status_code} without a Location")
                    target = urljoin(target, location)
                    continue
                if response.status_code != 200:
                    raise Refused(f"HTTP {response.status_code}")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                article.content_type = kind or None
                if kind not in HTML_TYPES + (("application/json",) if raw else ()):
                    article.status, article.error = "not html", f"content type {kind or 'missing'}"
                    return article
                body = read_body(response, deadline, timeout)
            article.bytes, article.body = len(body), body
            if raw:
                article.status = "ok"
                return article
            article.__dict__.update(extract(body, url=target))
            article.status = "ok" if article.text else "failed"
            article.error = None if article.text else "no article text found"
            return article
        raise Refused(f"more than {MAX_REDIRECTS} redirects")
    except Refused as exc:
        article.error = one_line(str(exc), 300)
    except (httpx.HTTPError, httpx.StreamError) as exc:
        article.error = one_line(f"{exc.__class__.__name__}: {exc}", 300) or exc.__class__.__name__
    except (ValueError, UnicodeError, zlib.error) as exc:  # a malformed URL, header or body
        article.error = one_line(f"{exc.__class__.__name__}: {exc}", 300)
    return article


def fetch_all(urls: list[str], *, transport: httpx.BaseTransport | None = None,
              trusted: frozenset[str] = frozenset(), replay: Path | None = None,
              stage_timeout: float = STAGE_TIMEOUT_S, article_timeout: float = ARTICLE_TIMEOUT_S,
              raw: frozenset[str] = frozenset(), done: Callable[[Article], None] | None = None
              ) -> dict[str, Article]:
    """Fetch every URL at once within the limits (CONCURRENCY overall, PER_HOST per host) and the
    stage deadline; an article not finished by then is recorded as failed. `done` sees each as it ends.

    `replay`: answer from that WARC file instead of the network (no address is resolved, as with a
    `transport` given by a test: neither opens a connection).
    `trusted`: host:port pairs whose address is not checked (the tests' loopback servers only).
    `raw`: URLs fetched as they are (discussion pages and JSON), not read as articles.
    """
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    if replay is not None:
        transport = replay_transport(replay)
    elif transport is None:  # a replay or a test's transport opens no connection; ours checks every one
        transport = pinned_transport(trusted, limits)
    results: dict[str, Article] = {}
    hosts: dict[str, threading.Semaphore] = {}
    lock = threading.Lock()
    timeout = httpx.Timeout(connect=5.0, read=5.0, write=5.0, pool=stage_timeout)
    client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, limits=limits)

    def work(url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        with lock:
            gate = hosts.setdefault(host, threading.Semaphore(PER_HOST))
        with gate:
            try:
                article = fetch_one(client, url, article_timeout, raw=url in raw)
            except Exception as exc:  # a bug here must cost this article, not the stage
                article = Article(url=url, error=one_line(f"{exc.__class__.__name__}: {exc}", 300),
                                  fetched_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        with lock:
            results[url] = article
        if done:
            done(article)

    pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="article")
    try:
        futures = [pool.submit(work, url) for url in dict.fromkeys(urls)]
        stop = time.monotonic() + stage_timeout
        for future in futures:
            remaining = stop - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(Exception):  # a late or broken one is recorded below as not finished
                future.result(timeout=remaining)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()  # a request still running past the stage deadline ends with an error nobody waits for
    with lock:
        for url in dict.fromkeys(urls):
            results.setdefault(url, Article(url=url, error=f"not fetched within the {stage_timeout:g} s stage limit",
                                            fetched_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
        return dict(results)


# --- the archive ---------------------------------------------------------------------------------

def write_warc(path: Path, articles: list[Article]) -> None:
    """Append the fetched responses (status, content type, decoded body) to a gzip WARC file."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        writer = WARCWriter(out, gzip=True)
        for a in articles:
            if a.http_status is None:
                continue
            headers = [("Content-Type", a.content_type or "application/octet-stream")]
            status = StatusAndHeaders(f"{a.http_status} {'OK' if a.http_status == 200 else 'Other'}", headers,
                                      protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(a.url, "response",
                                                          payload=io.BytesIO(a.body or b""), http_headers=status))


def read_warc(path: Path) -> dict[str, tuple[int, str, bytes]]:
    """URL -> (HTTP status, content type, body) of every response record in a WARC file."""
    from warcio.archiveiterator import ArchiveIterator

    found = {}
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response":
                continue
            url = record.rec_headers.get_header("WARC-Target-URI")
            status = int(record.http_headers.get_statuscode() or "0") if record.http_headers else 0
            kind = record.http_headers.get_header("Content-Type") if record.http_headers else None
            found[url] = (status, kind or "", bounded_read(record.content_stream()))
    return found


def bounded_read(stream, limit: int = MAX_BYTES) -> bytes:
    """At most `limit` + 1 bytes of a (decompressing) stream, read a block at a time: a replayed record is
    bounded as a live body is, so a gzip bomb in a WARC stops at the cap (fetch_one then refuses it)."""
    out = bytearray()
    while len(out) <= limit:
        block = stream.read(min(65536, limit + 1 - len(out)))
        if not block:
            break
        out += block
    return bytes(out)


def replay_transport(path: Path) -> httpx.MockTransport:
    """An httpx transport answering from a WARC file (a URL it does not hold: 404), so a snapshot
    refresh reads exactly what a live one read."""
    responses = read_warc(path)

    def answer(request: httpx.Request) -> httpx.Response:
        found = responses.get(str(request.url))
        if found is None:
            return httpx.Response(404, text="not in the snapshot's WARC")
        status, kind, body = found
        return httpx.Response(status, headers={"Content-Type": kind}, stream=httpx.ByteStream(body))

    return httpx.MockTransport(answer)


# --- one site's reading ---------------------------------------------------------------------------

def key(story) -> str:
    """Where a story's article is kept: its canonical URL, or a self post's discussion URL."""
    return story.columns()["canonical_url"] or story.discussion_url


@dataclass
class Reading:
    """What the host read for one site's stories (by source_id), and the responses for the archive."""

    articles: dict[str, Article]
    discussions: dict[str, discussions.Discussion]
    fetched: list[Article]


def read(kind, stories: list, *, cached: dict[str, Article] | None = None, replay: Path | None = None,
         transport: httpx.BaseTransport | None = None, trusted: frozenset[str] = frozenset(),
         stage_timeout: float = STAGE_TIMEOUT_S) -> Reading:
    """Each story's article (unless `cached` holds it by key, or the listing carried its text) and
    discussion (where its site `kind` has one: `kind.discussion_url`, `kind.parse_discussion`), fetched at
    once; a self post's article is its own text from the discussion. Nothing here raises for one bad page."""
    cached = {**(cached or {}), **listed_texts(stories)}
    article_urls = {s.source_id: s.url for s in stories if s.url and key(s) not in cached}
    discussion_urls = {s.source_id: url for s in stories if (url := kind.discussion_url(s))}
    fetched = fetch_all([*article_urls.values(), *discussion_urls.values()], replay=replay, transport=transport,
                        trusted=trusted, stage_timeout=stage_timeout, raw=frozenset(discussion_urls.values()))
    found, threads = {}, {}
    for story in stories:
        page = fetched.get(discussion_urls.get(story.source_id, ""))
        thread = None
        if page is not None and page.status == "ok" and page.body:
            try:
                with LIBXML:
                    thread = kind.parse_discussion(page.body, page.content_type or "")
            except (ValueError, TypeError, AttributeError, lxml.etree.LxmlError):  # JSON errors are ValueErrors
                thread = None
        if thread is not None:
            threads[story.source_id] = thread
        if story.url or key(story) in cached:
            found[story.source_id] = cached.get(key(story)) or fetched[article_urls[story.source_id]]
        elif thread is not None and thread.self_text:
            found[story.source_id] = Article(url=story.discussion_url, status="ok", http_status=page.http_status,
                                             content_type=page.content_type, bytes=len(thread.self_text),
                                             fetched_at=page.fetched_at, text=thread.self_text)
    return Reading(found, threads, [a for a in fetched.values() if a.http_status is not None])


def listed_texts(stories: list) -> dict[str, Article]:
    """The articles a listing carried (a full-text feed item's own content), by key: read, not fetched."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {key(s): Article(url=key(s), status="ok", content_type="text/plain; charset=utf-8 (from the listing)",
                            bytes=len(s.text.encode()), fetched_at=now, final_url=s.url, title=s.title, text=s.text)
            for s in stories if getattr(s, "text", None)}
