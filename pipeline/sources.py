"""Fetch the front pages, politely and persistently, and keep every page as fetched.

Each fetched page is written unchanged to ``data/raw/YYYY-MM-DD/<source>-<HHMMSS>.html``
*before* it is parsed, so any run can be re-parsed later with a fixed parser.
``--snapshot DIR`` reads ``DIR/hn.html`` and ``DIR/lobsters.html`` instead of fetching.

Retries: httpx's transport retries connection failures; this module retries 429
and 5xx responses with exponential backoff, honouring ``Retry-After`` (capped, so
a refresh never hangs). Other 4xx are not retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from . import __version__
from .sites import SITES

SOURCES = {slug: site.front_page for slug, site in SITES.items()}  # slug -> default front page
USER_AGENT = f"newsreader/{__version__} (+https://github.com/newsreader; daily digest, one request per site)"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
MAX_BYTES = 5 * 1024 * 1024  # a front page is ~50 KB
MAX_ATTEMPTS = 4
BACKOFF_S = 1.0
MAX_WAIT_S = 30.0


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
    html: str
    path: Path | None  # the raw snapshot on disk
    url: str


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


def fetch_html(
    source: str,
    url: str,
    client: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int = MAX_BYTES,
) -> str:
    """GET one page and return its text, or raise FetchError with a one-line reason."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    if attempt == MAX_ATTEMPTS:
                        raise FetchError(source, f"HTTP {response.status_code} from {url} after {attempt} attempts")
                    sleep(retry_after(response, attempt))
                    continue
                if response.status_code >= 400:
                    raise FetchError(source, f"HTTP {response.status_code} from {url}")
                content_type = response.headers.get("Content-Type", "")
                if "html" not in content_type.lower():
                    got = content_type or "no content type"
                    raise FetchError(source, f"expected an HTML page from {url}, got {got}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(source, f"page from {url} is larger than {max_bytes // 1024} KB; refusing it")
                return body.decode(response.encoding or "utf-8", errors="replace")
        except httpx.TooManyRedirects:
            raise FetchError(source, f"too many redirects from {url}") from None
        except httpx.TimeoutException:
            if attempt == MAX_ATTEMPTS:
                raise FetchError(source, f"timed out fetching {url} after {attempt} attempts") from None
            sleep(BACKOFF_S * 2 ** (attempt - 1))
        except httpx.TransportError as exc:
            raise FetchError(source, f"cannot reach {url} ({exc.__class__.__name__}: {exc})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def save_raw(source: str, html: str, raw_dir: Path, now: datetime | None = None) -> Path:
    """Write the page unchanged under raw_dir/YYYY-MM-DD/<source>-<HHMMSS>.html."""
    now = now or datetime.now(UTC)
    folder = raw_dir / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}-{now.strftime('%H%M%S')}.html"
    path.write_text(html, encoding="utf-8")
    return path


def fetch(
    source: str,
    raw_dir: Path,
    *,
    url: str | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Page:
    """Fetch a source's front page and save the raw snapshot before anything else."""
    url = url or SOURCES[source]
    own_client = client is None
    client = client or make_client()
    try:
        html = fetch_html(source, url, client, sleep=sleep)
    finally:
        if own_client:
            client.close()
    return Page(source, html, save_raw(source, html, raw_dir), url)


def read_snapshot(source: str, snapshot_dir: Path) -> Page:
    """The page for `source` from a snapshot folder (DIR/hn.html, DIR/lobsters.html)."""
    path = Path(snapshot_dir) / f"{source}.html"
    if not path.is_file():
        raise SourceError(source, f"no {path} in the snapshot; skipping {source}")
    try:
        html = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SourceError(source, f"cannot read {path}: {exc.strerror}") from None
    return Page(source, html, path, path.resolve().as_uri())
