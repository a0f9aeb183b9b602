"""Serving the history with Datasette: the command line it runs, and one small plugin hook.

Everything else about the UI (descriptions, facets, canned queries, the Atom feed,
the chart) is configuration in metadata.yml. Configuration cannot show a title as
a link to its story without rendering untrusted text as HTML (`render_cell` does,
escaping the title and linking only http(s) URLs), nor bound what one anonymous
query may allocate (`prepare_connection` does).
"""

from __future__ import annotations

import os
import sqlite3
import sys

from datasette import hookimpl
from markupsafe import Markup, escape

from . import store


def datasette_args(db: str, host: str, port: int) -> list[str]:
    """`python -m datasette serve ...` for the history DB, metadata.yml and the installed plugins."""
    return [
        sys.executable, "-m", "datasette", "serve", db,
        "--metadata", str(store.METADATA_PATH),
        "--host", host, "--port", str(port),
        "--setting", "sql_time_limit_ms", "3000",
    ]


def database_name(db: str) -> str:
    return os.path.splitext(os.path.basename(db))[0]


SLOW_FUNCTIONS = {"printf", "format"}  # printf('%.*c', 2000000000, 'x'): seconds inside one call


def authorize(action, arg1, arg2, db_name, trigger):
    """Everything Datasette allows, except functions that can outlive sql_time_limit_ms in a single call."""
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in SLOW_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@hookimpl
def prepare_connection(conn, database, datasette):
    """Bound what one anonymous query can build: Datasette's time limit is a progress handler, which
    never runs inside a single function call, so one value is capped at 1 MB instead."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000)
    conn.set_authorizer(authorize)


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    """A story title becomes a link to the story; the title text stays escaped text."""
    if column != "title" or not isinstance(value, str):
        return None
    keys = row.keys() if hasattr(row, "keys") else []
    link = (row["url"] if "url" in keys else None) or (row["discussion_url"] if "discussion_url" in keys else None)
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        return None
    return Markup('<a href="{}" rel="nofollow noopener">{}</a>').format(escape(link), escape(value))
