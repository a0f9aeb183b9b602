"""Hostile article servers: each bad article fails alone, with a reason, in bounded time and memory.

A loopback server plays every kind of bad article at once; only its own host:port is
trusted (exempt from the address check), so redirects to any other loopback or metadata
address are refused exactly as on the internet.
"""

import contextlib
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import articles

from ..helpers import FIXTURES
from .figures import record

REAL_PAGE = gzip.decompress(sorted((FIXTURES / "articles").glob("*.html.gz"))[0].read_bytes())
BOMB = gzip.compress(b"\0" * 200_000_000, compresslevel=1)  # 200 MB of zeros in ~200 KB


class Hostile(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ok":
            return self.send(200, REAL_PAGE)
        if path == "/big":  # 50 MB of HTML
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            chunk = b"<p>" + b"x" * 65533
            for _ in range(50_000_000 // 65536):
                self.wfile.write(chunk)
            return None
        if path == "/drip":  # one byte a second
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for byte in b"<html><body><p>slowly":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)
            return None
        if path == "/bomb":
            return self.send(200, BOMB, headers={"Content-Encoding": "gzip"})
        if path == "/not-gzip":
            return self.send(200, b"<html>plain, said to be gzip</html>", headers={"Content-Encoding": "gzip"})
        if path == "/brotli":
            return self.send(200, b"\x8b\x03\x80hello\x03", headers={"Content-Encoding": "br"})
        if path == "/loop":
            return self.send(302, b"", headers={"Location": "/loop"})
        if path == "/to-loopback":
            return self.send(302, b"", headers={"Location": "http://127.0.0.1:9/admin"})
        if path == "/to-metadata":
            return self.send(301, b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        if path == "/to-ipv6-loopback":
            return self.send(302, b"", headers={"Location": "http://[::1]:9/"})
        if path == "/to-file":
            return self.send(302, b"", headers={"Location": "file:///etc/passwd"})
        if path == "/pdf":
            return self.send(200, b"%PDF-1.7 ...", kind="application/pdf")
        if path == "/bad-bytes":
            return self.send(200, b"<html><body><article><p>" + bytes(range(128, 256)) * 40 + b"</p></article>",
                             kind="text/html; charset=utf-8")
        if path == "/bad-charset":
            return self.send(200, REAL_PAGE, kind="text/html; charset=no-such-charset-9")
        if path == "/empty":
            return self.send(200, b"", kind="text/html")
        return self.send(404, b"not here")

    def send(self, status, body, kind="text/html; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the reader gave up, as it should
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


EXPECTED = {  # path -> (status, a piece of the reason)
    "/ok": ("ok", None),
    "/big": ("failed", "larger than 2 MB"),
    "/drip": ("failed", "slower than 3 s"),
    "/bomb": ("failed", "larger than 2 MB"),
    "/not-gzip": ("failed", "Error"),
    "/brotli": ("failed", "unsupported content encoding 'br'"),
    "/loop": ("failed", "more than 5 redirects"),
    "/to-loopback": ("failed", "127.0.0.1, a non-public address"),
    "/to-metadata": ("failed", "169.254.169.254, a non-public address"),
    "/to-ipv6-loopback": ("failed", "::1, a non-public address"),
    "/to-file": ("failed", "not an http(s) URL"),
    "/pdf": ("not html", "content type application/pdf"),
    "/bad-bytes": (None, None),  # read or refused, never a crash
    "/bad-charset": (None, None),
    "/empty": ("failed", "no article text found"),
    "/missing": ("failed", "HTTP 404"),
}


def test_every_hostile_article_fails_alone_with_a_reason(server):
    urls = [f"http://{server}{path}" for path in EXPECTED]
    t0 = time.monotonic()
    found = articles.fetch_all(urls, trusted=frozenset({server}), article_timeout=3, stage_timeout=30)
    elapsed = time.monotonic() - t0
    for path, (status, reason) in EXPECTED.items():
        article = found[f"http://{server}{path}"]
        if status is not None:
            assert article.status == status, (path, article.status, article.error)
        if reason is not None:
            assert reason in (article.error or ""), (path, article.error)
        if article.status != "ok":
            assert article.error and "\n" not in article.error
        assert article.bytes <= articles.MAX_BYTES
    assert found[f"http://{server}/ok"].text and len(found[f"http://{server}/ok"].text) > 500
    record("articles: hostile servers (50 MB body, 1 B/s drip, gzip bomb, redirect loop, redirects to loopback, "
           "metadata, IPv6 loopback and file:, PDF, broken gzip, brotli, invalid bytes and charset, empty, 404)",
           len(EXPECTED), len(EXPECTED) - 1, 0, 0,
           f"each failed alone with a reason; the real page read; {elapsed:.1f} s for all, 2 at a time (one host)")


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:9/", "non-public address"),
    ("http://localhost/", "non-public address"),
    ("http://10.1.2.3/", "non-public address"),
    ("http://[fe80::1]/", "non-public address"),
    ("http://0.0.0.0/", "non-public address"),
    ("http://[::ffff:127.0.0.1]/", "non-public address"),
    ("http://user:pw@example.com/", "user info"),
    ("ftp://example.com/", "not an http(s) URL"),
])
def test_no_request_to_a_private_address_even_untrusted_loopback(url, reason):
    article = articles.fetch_all([url], article_timeout=3)[url]
    assert article.status == "failed" and reason in article.error, article.error
