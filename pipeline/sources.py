"""Fetch the sources' listings (front pages, feeds), politely and persistently, and keep each as fetched.

Each fetched listing is written unchanged to ``data/raw/YYYY-MM-DD/<source>-<HHMMSS>.<suffix>``
*before* it is parsed, so any run can be re-parsed later with a fixed parser.
``--snapshot DIR`` reads ``DIR/<source>.html`` (or ``.xml``, ``.json``) instead of fetching.

Retries: httpx's transport retries connection failures; this module retries 429
and 5xx responses with exponential backoff, honouring ``Retry-After`` (capped, so
a refresh never hangs). Other 4xx are not retried. A listing fetched before is asked
for with its ETag / Last-Modified, so an unchanged feed answers 304 and costs nothing;
at most `per_host` requests go to one host at once (`Politeness`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from . import __version__

USER_AGENT = f"newsreader/{__version__} (+https://github.com/newsreader; daily digest, one request per site)"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)  # each read; and a whole body within BODY_S (a drip never ends)
BODY_S = 60.0
MAX_BYTES = 5 * 1024 * 1024  # a front page is ~50 KB, a long feed 2 MB
MAX_ATTEMPTS = 4
BACKOFF_S = 1.0
MAX_WAIT_S = 30.0
# What a raw copy or a snapshot folder holds for a source, by suffix: its listing's type.
SUFFIXES = {".html": "text/html", ".xml": "application/xml", ".json": "application/json"}


class SourceError(Exception):
    """A source that could not be read; the message names the source and what failed."""

    def __init__(self, source: str, message: str):
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}")


class FetchError(SourceError):
    """The page could not be fetched; the message says why."""


@dataclass
class Page:
    source: str
    body: bytes
    path: Path | None  # the raw snapshot on disk
    url: str
    content_type: str = "text/html"
    etag: str | None = None  # the server's validators, sent back next time
    last_modified: str | None = None
    not_modified: bool = False  # 304: the listing is as it was at the last fetch (body empty)

    @property
    def html(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Request:
    """How to ask for one listing: what it may be, and what the last fetch of it said."""

    accept: str = "text/html"
    content_types: tuple[str, ...] = ("html",)  # empty: any
    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {"Accept": self.accept}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


HTML = Request()


class Politeness:
    """At most `per_host` listing requests to one host at once, whatever the pool's size."""

    def __init__(self, per_host: int = 2):
        self.per_host = per_host
        self.lock = threading.Lock()
        self.hosts: dict[str, threading.BoundedSemaphore] = {}

    @contextlib.contextmanager
    def hold(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "", urlsplit(url).port)
        with self.lock:
            gate = self.hosts.setdefault(str(host), threading.BoundedSemaphore(self.per_host))
        with gate:
            yield


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept": "text/html"},
        timeout=TIMEOUT,
        follow_redirects=True,
        max_redirects=5,
        transport=transport or httpx.HTTPTransport(retries=2),
    )


def retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before the next attempt: Retry-After if given, else backoff."""
    header = response.headers.get("Retry-After", "").strip()
    wait = BACKOFF_S * 2 ** (attempt - 1)
    if header.isdigit():
        wait = float(header)
    elif header:
        with contextlib.suppress(TypeError, ValueError):
            wait = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
    return min(max(wait, 0.0), MAX_WAIT_S)


def fetch_listing(source: str, url: str, client: httpx.Client, request: Request = HTML, *,
                  sleep: Callable[[float], None] = time.sleep, max_bytes: int = MAX_BYTES) -> Page:
    """GET one listing (not yet saved: `path` is None), or raise FetchError with a one-line reason."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with client.stream("GET", url, headers=request.headers()) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    if attempt == MAX_ATTEMPTS:
                        raise FetchError(source, f"HTTP {response.status_code} from {url} after {attempt} attempts")
                    sleep(retry_after(response, attempt))
                    continue
                return read_response(source, url, response, request, max_bytes, time.monotonic() + BODY_S)
        except httpx.TooManyRedirects:
            raise FetchError(source, f"too many redirects from {url}") from None
        except httpx.TimeoutException:
            if attempt == MAX_ATTEMPTS:
                raise FetchError(source, f"timed out fetching {url} after {attempt} attempts") from None
            sleep(BACKOFF_S * 2 ** (attempt - 1))
        except httpx.TransportError as exc:
            raise FetchError(source, f"cannot reach {url} ({exc.__class__.__name__}: {exc})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def read_response(source: str, url: str, response: httpx.Response, request: Request, max_bytes: int,
                  deadline: float = float("inf")) -> Page:
    """One answer that is not to be retried: 304, a refusal, or a body of the kind asked for, whole by
    `deadline` (time.monotonic)."""
    validators = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
    if response.status_code == 304:
        return Page(source, b"", None, url, not_modified=True, etag=validators["etag"] or request.etag,
                    last_modified=validators["last_modified"] or request.last_modified)
    if response.status_code >= 400:
        raise FetchError(source, f"HTTP {response.status_code} from {url}")
    content_type = response.headers.get("Content-Type", "")
    if request.content_types and not any(t in content_type.lower() for t in request.content_types):
        got = content_type or "no content type"
        what = "an HTML page" if request.content_types == ("html",) else " or ".join(request.content_types)
        raise FetchError(source, f"expected {what} from {url}, got {got}")
    body = bytearray()
    for chunk in response.iter_bytes():  # as each read returns
        body += chunk
        if time.monotonic() > deadline:
            raise FetchError(source, f"page from {url} is slower than {BODY_S:g} s to arrive; refusing it")
        if len(body) > max_bytes:
            raise FetchError(source, f"page from {url} is larger than {max_bytes // 1024} KB; refusing it")
    if "html" in request.content_types:  # a page is kept as text, decoded by the charset it declared
        body = bytearray(bytes(body).decode(response.encoding or "utf-8", errors="replace").encode("utf-8"))
    return Page(source, bytes(body), None, url, content_type, **validators)


def save_raw(source: str, body: bytes | str, raw_dir: Path, now: datetime | None = None,
             suffix: str = ".html") -> Path:
    """Write the listing unchanged under raw_dir/YYYY-MM-DD/<source>-<HHMMSS><suffix>."""
    now = now or datetime.now(UTC)
    folder = raw_dir / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}-{now.strftime('%H%M%S')}{suffix}"
    path.write_bytes(body.encode("utf-8") if isinstance(body, str) else body)
    return path


def fetch(source: str, raw_dir: Path, *, url: str, client: httpx.Client | None = None,
          request: Request = HTML, sleep: Callable[[float], None] = time.sleep) -> Page:
    """Fetch a source's listing and save the raw snapshot before anything else (a 304 saves nothing)."""
    own_client = client is None
    client = client or make_client()
    try:
        page = fetch_listing(source, url, client, request, sleep=sleep)
    finally:
        if own_client:
            client.close()
    if not page.not_modified:
        suffix = ".html" if "html" in request.content_types else ".json" if page.body.lstrip()[:1] == b"{" else ".xml"
        page.path = save_raw(source, page.body, raw_dir, suffix=suffix)
    return page


def read_snapshot(source: str, snapshot_dir: Path) -> Page:
    """The listing for `source` from a snapshot folder (DIR/hn.html, DIR/lobsters.html, DIR/myfeed.xml)."""
    found = [Path(snapshot_dir) / f"{source}{suffix}" for suffix in SUFFIXES]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        raise SourceError(source, f"no {found[0]} in the snapshot; skipping {source}")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise SourceError(source, f"cannot read {path}: {exc.strerror}") from None
    return Page(source, body, path, path.resolve().as_uri(), SUFFIXES[path.suffix])
