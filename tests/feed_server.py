"""A loopback HTTP server for listings (feeds, front pages) that a test starts: files from one folder, each
path with its own behaviour (a delay, a status, an ETag that answers 304), and a record of what was asked."""

from __future__ import annotations

import mimetypes
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .helpers import LoopbackServer


@dataclass
class Behaviour:
    delay: float = 0.0  # seconds before answering
    status: int = 200  # anything but 200: that status, no body
    etag: str | None = None  # sent with the body; If-None-Match with it gets 304
    content_type: str | None = None  # default: by the file's suffix


@dataclass
class FeedServer:
    folder: Path
    behaviours: dict[str, Behaviour] = field(default_factory=dict)  # by path, e.g. "/hn.html"
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers) as asked
    served: list[tuple[str, float, float]] = field(default_factory=list)  # (path, asked at, answered at)
    in_flight: int = 0
    most_in_flight: int = 0

    def __post_init__(self):
        self.lock = threading.Lock()
        self.httpd = LoopbackServer(self.handler())
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append((self.path, dict(self.headers)))
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                asked = time.monotonic()
                try:
                    server.answer(self)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: nothing to say
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1
                        server.served.append((self.path, asked, time.monotonic()))

        return Handler

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        how = self.behaviours.get(request.path, Behaviour())
        time.sleep(how.delay)
        path = self.folder / request.path.lstrip("/")
        if how.status != 200 or not path.is_file():
            request.send_response(how.status if how.status != 200 else 404)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        if how.etag and request.headers.get("If-None-Match") == how.etag:
            request.send_response(304)
            request.send_header("ETag", how.etag)
            request.end_headers()
            return
        body = path.read_bytes()
        request.send_response(200)
        request.send_header("Content-Type", how.content_type or content_type(path))
        request.send_header("Content-Length", str(len(body)))
        if how.etag:
            request.send_header("ETag", how.etag)
        request.end_headers()
        request.wfile.write(body)


def content_type(path: Path) -> str:
    if path.suffix == ".html":
        return "text/html; charset=utf-8"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
