"""Serving the history with Datasette: the command line it runs, and one small plugin hook.

Everything else about the UI (descriptions, facets, canned queries, the Atom feed,
the chart) is configuration in metadata.yml. The one thing configuration cannot
do is show a title as a link to its story without rendering untrusted text as
HTML; `render_cell` does exactly that, escaping the title and linking only
http(s) URLs (the schema refuses anything else anyway).
"""

from __future__ import annotations

import os
import sys

from datasette import hookimpl
from markupsafe import Markup, escape

from . import store


def datasette_args(db: str, host: str, port: int) -> list[str]:
    """`python -m datasette serve ...` for the history DB, metadata.yml and the installed plugins."""
    return [
        sys.executable, "-m", "datasette", "serve", db,
        "--metadata", str(store.ROOT / "metadata.yml"),
        "--host", host, "--port", str(port),
        "--setting", "sql_time_limit_ms", "3000",
    ]


def database_name(db: str) -> str:
    return os.path.splitext(os.path.basename(db))[0]


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
