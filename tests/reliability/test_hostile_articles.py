"""Hostile article servers: each bad article fails alone, with a reason, in bounded time and memory.

A loopback server plays every kind of bad article at once; only its own host:port is
trusted (exempt from the address check), so redirects to any other loopback or metadata
address are refused exactly as on the internet.
"""

import gzip
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from pipeline import articles

from ..helpers import FIXTURES, LoopbackServer
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
        self.wfile.write(body)  # the reader may give up, as it should: LoopbackServer says nothing of it

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = LoopbackServer(Hostile)
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
    assert elapsed < 3 + 5, elapsed  # the drip is cut at its 3 s (not held for its 21 bytes' 21 s)
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


# IPv6 forms that carry a loopback or private IPv4 address: 5 of 30 such forms passed the address check.
EMBEDDED = {
    "IPv4-compatible loopback": "::127.0.0.1", "IPv4-compatible private": "::10.0.0.1",
    "IPv4-compatible metadata": "::169.254.169.254",
    "NAT64 loopback": "64:ff9b::127.0.0.1", "NAT64 private": "64:ff9b::192.168.1.1",
    "NAT64 metadata": "64:ff9b::169.254.169.254", "local-use NAT64": "64:ff9b:1::a00:1",
    "6to4 loopback": "2002:7f00:1::", "6to4 private": "2002:c0a8:101::1", "6to4 metadata": "2002:a9fe:a9fe::",
    "Teredo, client 127.0.0.1": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "IPv4-mapped private": "::ffff:10.0.0.1", "IPv4-mapped metadata": "::ffff:169.254.169.254",
}


@pytest.mark.parametrize("form", EMBEDDED)
def test_no_ipv6_form_of_a_private_ipv4_address_is_requested(form):
    url = f"http://[{EMBEDDED[form]}]/"
    article = articles.fetch_all([url], article_timeout=3)[url]
    assert article.status == "failed" and "non-public address" in article.error, article.error


def test_public_ipv6_and_nat64_of_a_public_address_are_allowed():
    for address in ("2606:4700:4700::1111", "64:ff9b::8.8.8.8", "2a00:1450:4001:82b::200e"):
        assert articles.public(address), address


def test_a_second_dns_answer_cannot_differ_from_the_one_checked(monkeypatch):
    """DNS rebinding: the first lookup of a name says a public address, every later one 127.0.0.1. The check
    resolved, then the connection resolved again, and a loopback-only page landed in articles.text."""
    secret = b"<html><body><article><p>" + b"LOOPBACK-ONLY-7e21 internal page. " * 40 + b"</p></article></body></html>"
    hits = []

    class Internal(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(secret)))
            self.end_headers()
            self.wfile.write(secret)

        def log_message(self, *args):
            pass

    httpd = LoopbackServer(Internal)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    real, answers = socket.getaddrinfo, []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        answers.append(host)
        address = "203.0.113.7" if len(answers) == 1 else "127.0.0.1"  # public (TEST-NET-3) first, then loopback
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.example:{port}/internal"
    try:
        article = articles.fetch_all([url], article_timeout=2, stage_timeout=10)[url]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert hits == [] and "LOOPBACK-ONLY" not in (article.text or "")
    assert article.status == "failed" and len(answers) == 1, (article.error, answers)
    record("articles: DNS rebinding (public answer, then 127.0.0.1) and 13 IPv6 forms embedding private IPv4",
           1 + len(EMBEDDED), 1 + len(EMBEDDED), 0, 0,
           "one lookup, the connection made to the checked address; every embedded form refused")


# Runs a command and prints its peak resident memory (KB): the refresh's own, not this test process's.
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def test_a_gzip_bomb_in_a_snapshot_warc_is_inflated_only_up_to_the_cap(tmp_path):
    """`--snapshot` replays articles.warc.gz: a gzip-encoded record was inflated whole before the 2 MB cap
    (a 0.58 MB record took the refresh to 2.4 GB). Each record is inflated up to the cap, as live bodies are."""
    import io
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from pipeline import parse

    from ..helpers import SNAPSHOT

    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    for name in ("hn.html", "lobsters.html"):
        shutil.copy(SNAPSHOT / name, snapshot / name)
    story = next(s for s in parse.parse("hn", (SNAPSHOT / "hn.html").read_text()) if s.url)
    packed = io.BytesIO()  # 600 MB of zeros, compressed a block at a time (this process never holds them)
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9) as bomb_file:
        bomb_file.write(b"<html><body>")
        block = bytes(1024 * 1024)
        for _ in range(600):
            bomb_file.write(block)
    bomb = packed.getvalue()
    with open(snapshot / "articles.warc.gz", "wb") as out:
        writer = WARCWriter(out, gzip=True)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
                                   protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(story.url, "response", payload=io.BytesIO(bomb),
                                                      http_headers=headers))
    done = subprocess.run(["/usr/bin/env", "python3", "-c", PEAK, str(Path(sys.executable).with_name("newsreader")),
                           "refresh", "--db", str(tmp_path / "news.db"), "--snapshot", str(snapshot)],
                          capture_output=True, text=True, timeout=300)
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert done.returncode == 0, done.stderr
    assert peak_mb < 400, peak_mb
    conn = sqlite3.connect(tmp_path / "news.db")
    error = conn.execute("SELECT error FROM articles WHERE url = ?", [articles.key(story)]).fetchone()
    conn.close()
    assert error == ("larger than 2 MB",), error
    record(f"articles: a {len(bomb) // 1024} KB gzip record inflating to 600 MB in a --snapshot WARC", 1, 1, 0, 0,
           f"refused at the 2 MB cap; the refresh peaked at {peak_mb:.0f} MB")
