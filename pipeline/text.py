"""Text for run records, logs and the terminal: one line, secrets redacted, length capped.

Error messages from model providers and servers can echo an API key back, and
kernel tracebacks carry colour codes; nothing stored or printed should.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

# libxml2 work (lxml, and trafilatura over it) happens in one thread at a time in this process. Articles,
# discussions and listings are read in parallel threads, and two of them in libxml2 at once ended in
# "double free or corruption" (two trafilatura extractions) and "Fatal Python error: Aborted" (an
# extraction beside a discussion's parse); trafilatura#840 reports the same. The work is milliseconds
# against the network's seconds. Re-entrant: a parser that parses a fragment inside holds it already.
LIBXML = threading.RLock()


def describe(exc: BaseException) -> str:
    """An exception as one line for run records: its class and message."""
    return one_line(f"{exc.__class__.__name__}: {exc}")


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours in kernel tracebacks
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove the values of secret-looking environment variables (API keys) from text we store or print.

    Error messages from model providers and servers can echo a key back; run records,
    logs and Datasette must never show one.
    """
    for name, value in os.environ.items():
        if len(value) >= 8 and SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"[{name}]")
    return text


def one_line(text: str, limit: int = 400) -> str:
    """Text for run records and logs: secrets redacted, whitespace collapsed, length capped."""
    text = " ".join(ANSI.sub("", redact(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~<-])/[^\s'\"(),;]+")  # not a closing tag's `</code>`


def without_paths(text: str, data_dir: Path) -> str:
    """Text for run records that Datasette publishes: a file under the data folder is named relative to it,
    any other absolute path by its last part only."""
    roots = {str(Path(data_dir).resolve()), str(Path(data_dir).absolute())}

    def shorten(match: re.Match) -> str:
        path = match.group()
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return path[len(root) + 1:] or "."
        return Path(path).name or path

    return ABSOLUTE_PATH.sub(shorten, text)


def http_link(url: str | None) -> str | None:
    """The URL if it is http(s), else None: only such links are ever put in an href or a message (a
    stranger's `javascript:` or `data:` link never is)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
