"""Source faults through httpx mock transports: one site misbehaves, the other lands, the message is clear."""

import sqlite3
import time

import httpx
import pytest

from pipeline import refresh

from ..helpers import SNAPSHOT
from .figures import after_module, record

GOOD = {"news.ycombinator.com": (SNAPSHOT / "hn.html").read_bytes(),
        "lobste.rs": (SNAPSHOT / "lobsters.html").read_bytes()}


def html(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": "text/html; charset=utf-8"})


def down(request):
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def redirect_loop(request):
    return httpx.Response(302, headers={"Location": str(request.url.copy_with(path="/loop"))})


def error_page(request):
    return html(b"<html><body><h1>We're having some trouble serving your request.</h1></body></html>")


def changed_markup(request):
    return html(GOOD["news.ycombinator.com"].replace(b"athing", b"story-row"))


def huge(request):
    return html(b"<html>" + b"x" * (20 * 1024 * 1024))


def drip(request):
    def slowly():
        for byte in b"<html><body>" + b"x" * 40:
            time.sleep(0.05)
            yield bytes([byte])
    return httpx.Response(200, content=slowly(), headers={"Content-Type": "text/html; charset=utf-8"})


def maintenance_json(request):
    return httpx.Response(503, json={"error": "maintenance"}, headers={"Retry-After": "0"})


FAULTS = {
    "site down": (down, "cannot reach https://news.ycombinator.com/"),
    "redirect loop": (redirect_loop, "too many redirects"),
    "200 with an error page": (error_page, "no story rows found"),
    "changed markup": (changed_markup, "no story rows found"),
    "20 MB body": (huge, "larger than"),
    "a byte at a time past the deadline": (drip, "slower than 1 s to arrive"),
    "503 until retries run out": (maintenance_json, "HTTP 503"),
}
SEEN = {"faults": 0}


@pytest.mark.parametrize("fault", FAULTS)
def test_one_site_faulty_the_other_lands(tmp_path, monkeypatch, fault):
    handler, message = FAULTS[fault]
    monkeypatch.setattr("pipeline.sources.BACKOFF_S", 0.0)
    monkeypatch.setattr("pipeline.sources.BODY_S", 1.0)

    def route(request):
        if request.url.host == "news.ycombinator.com":
            return handler(request)
        return html(GOOD[request.url.host])

    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), transport=httpx.MockTransport(route)))
    assert report.status == "partial" and report.sites == {"hn": "failed", "lobsters": "ok"}
    assert any(message in e for e in report.errors), report.errors
    conn = sqlite3.connect(tmp_path / "news.db")
    assert conn.execute("SELECT DISTINCT source FROM stories").fetchall() == [("lobsters",)]
    error = conn.execute("SELECT error FROM run_sites WHERE source = 'hn'").fetchone()[0]
    assert message in error and "\n" not in error
    raw = sorted(p.name.split("-")[0] for p in (tmp_path / "raw").rglob("*.html"))
    assert "lobsters" in raw  # what was fetched is kept
    SEEN["faults"] += 1


@after_module(lambda: any(SEEN.values()))
def source_fault_figures():
    record("source faults via httpx.MockTransport", len(FAULTS), SEEN["faults"], 0, 0,
           "clear one-line reason per site; the other site landed; run partial")
