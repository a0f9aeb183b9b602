"""Fetching through httpx.MockTransport: retries, Retry-After, timeouts, bad bodies, raw snapshots."""

import httpx
import pytest

from pipeline import sources
from pipeline.sources import FetchError

PAGE = "<html><body><table><tr class='athing'></tr></table></body></html>"
HN, LOBSTERS = "https://news.ycombinator.com/", "https://lobste.rs/"


def client_for(handler):
    return sources.make_client(transport=httpx.MockTransport(handler))


def html_response(text=PAGE, status=200, **headers):
    return httpx.Response(status, text=text, headers={"Content-Type": "text/html; charset=utf-8", **headers})


def test_ok_page_is_saved_unchanged_before_parsing(tmp_path):
    seen = []

    def handler(request):
        seen.append(request)
        return html_response()

    page = sources.fetch("hn", tmp_path, url=HN, client=client_for(handler))
    assert page.html == PAGE
    assert page.path.read_text() == PAGE
    assert page.path.parent.parent == tmp_path
    assert page.path.name.startswith("hn-") and page.path.suffix == ".html"
    assert seen[0].headers["User-Agent"].startswith("newsreader/")


def test_429_then_200_waits_for_retry_after(tmp_path):
    replies = iter([html_response("slow down", 429, **{"Retry-After": "7"}), html_response()])
    waits = []
    page = sources.fetch("lobsters", tmp_path, url=LOBSTERS, client=client_for(lambda r: next(replies)),
                         sleep=waits.append)
    assert page.html == PAGE
    assert waits == [7.0]


def test_retry_after_is_capped(tmp_path):
    replies = iter([html_response("", 503, **{"Retry-After": "86400"}), html_response()])
    waits = []
    sources.fetch("hn", tmp_path, url=HN, client=client_for(lambda r: next(replies)), sleep=waits.append)
    assert waits == [sources.MAX_WAIT_S]


def test_persistent_500_is_a_clear_error_after_bounded_retries(tmp_path):
    calls = []

    def handler(request):
        calls.append(1)
        return html_response("oops", 500)

    waits = []
    with pytest.raises(FetchError, match=r"hn: HTTP 500 from https://news.ycombinator.com/ after 4 attempts"):
        sources.fetch("hn", tmp_path, url=HN, client=client_for(handler), sleep=waits.append)
    assert len(calls) == sources.MAX_ATTEMPTS
    assert waits == [1.0, 2.0, 4.0]  # exponential backoff
    assert not list(tmp_path.rglob("*.html"))  # nothing saved for a failed fetch


def test_404_is_not_retried(tmp_path):
    calls = []

    def handler(request):
        calls.append(1)
        return html_response("missing", 404)

    with pytest.raises(FetchError, match="HTTP 404"):
        sources.fetch("hn", tmp_path, url=HN, client=client_for(handler), sleep=lambda s: None)
    assert len(calls) == 1


def test_timeout_is_retried_then_reported(tmp_path):
    def handler(request):
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(FetchError, match="timed out fetching"):
        sources.fetch("hn", tmp_path, url=HN, client=client_for(handler), sleep=lambda s: None)


def test_unreachable_host_is_one_line(tmp_path):
    def handler(request):
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    with pytest.raises(FetchError, match=r"hn: cannot reach https://news.ycombinator.com/ \(ConnectError"):
        sources.fetch("hn", tmp_path, url=HN, client=client_for(handler))


def test_non_html_body_is_refused(tmp_path):
    def handler(request):
        return httpx.Response(200, json={"error": "maintenance"})

    with pytest.raises(FetchError, match="expected an HTML page .* got application/json"):
        sources.fetch("lobsters", tmp_path, url=LOBSTERS, client=client_for(handler))


def test_oversized_body_is_refused(tmp_path):
    def handler(request):
        return html_response("x" * (sources.MAX_BYTES + 10))

    with pytest.raises(FetchError, match="larger than"):
        sources.fetch("lobsters", tmp_path, url=LOBSTERS, client=client_for(handler))


def test_redirect_loop_is_a_clear_error(tmp_path):
    def handler(request):
        return httpx.Response(302, headers={"Location": str(request.url)})

    with pytest.raises(FetchError, match="too many redirects"):
        sources.fetch("hn", tmp_path, url=HN, client=client_for(handler))


def test_snapshot_reads_files_and_names_missing_ones(tmp_path):
    (tmp_path / "hn.html").write_text(PAGE)
    assert sources.read_snapshot("hn", tmp_path).html == PAGE
    with pytest.raises(sources.SourceError, match="lobsters: no .*lobsters.html in the snapshot; skipping lobsters"):
        sources.read_snapshot("lobsters", tmp_path)


def test_a_test_resolves_no_host_name_but_localhost():
    """conftest's `offline`: a test that would look up a real host fails at once, as with no network;
    loopback names, address literals and a server's "every interface" still resolve."""
    import socket

    with pytest.raises(socket.gaierror, match="tests are offline: example.com"):
        socket.getaddrinfo("example.com", 443)
    for host in ("localhost", "127.0.0.1", "::1", None):
        assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
