"""Serving the history with Datasette: the command line it runs, and the plugin that adds the pages.

Datasette's own extension points do all of it: metadata.yml (descriptions, facets, canned
queries, the Atom feed, the chart, the writable `vote` query on feedback.db), templates in
`pipeline/templates/`, and this module's plugin hooks:

- `register_routes`: the day's page (`/digest`, `/digest/YYYY-MM-DD`), a story's page
  (`/story/ID`) and a tag's page (`/tag/SLUG`), rendered from templates (`extra_template_vars`
  gives them the site labels);
- `render_cell`: a story title as a link to its story, the title text escaped;
- `prepare_connection`: bounds on what one anonymous query may allocate.

Nothing names a database: `newsreader serve` renames metadata.yml's placeholders (`history`,
`feedback`) to whatever Datasette calls the files it serves, and tells the plugin which is which.
"""

from __future__ import annotations

import html
import json
import os
import sqlite3
import sys
from pathlib import Path

from datasette import hookimpl
from datasette.utils.asgi import NotFound, Response
from markupsafe import Markup, escape

from . import store
from .text import http_link

TEMPLATES = Path(__file__).with_name("templates")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def database_name(db: str | os.PathLike) -> str:
    """The name Datasette gives a database file (its file name without the extension)."""
    return os.path.splitext(os.path.basename(str(db)))[0]


def metadata_for(history: str | os.PathLike, votes: bool) -> dict:
    """metadata.yml for these files: placeholders renamed, and the vote queries refused unless voting is on."""
    import yaml

    names = {"history": database_name(history), "feedback": database_name(store.feedback_path(history))}
    meta = yaml.safe_load(store.METADATA_PATH.read_text(encoding="utf-8"))
    text = json.dumps(meta)
    from datasette.utils import tilde_encode

    for placeholder, name in names.items():  # links take Datasette's URL form of the name; config keys the name
        text = text.replace(f'/{placeholder}/', f'/{tilde_encode(name)}/')
        text = text.replace(f'"db": "{placeholder}"', f'"db": {json.dumps(name)}')
    meta = json.loads(text)
    meta["databases"] = {names[key]: value for key, value in meta["databases"].items()}
    if not votes:  # the queries stay, refused to everyone (Datasette's permission block): 403, buttons hidden
        for query in meta["databases"][names["feedback"]].get("queries", {}).values():
            query["allow"] = False
    meta.setdefault("plugins", {})["newsreader"] = {**names, "votes": votes}
    return meta


def datasette_args(db: str, host: str, port: int, *, votes: bool, metadata_dir: Path) -> list[str]:
    """Datasette's own `serve` for the history (read-only to visitors) and feedback.db, with this module
    registered as its plugin (`python -m pipeline.serve`: see main). feedback.db is created (or migrated)
    first: Datasette refuses a file that does not exist."""
    store.open_feedback(db).close()
    metadata_dir.mkdir(parents=True, exist_ok=True)
    metadata = metadata_dir / "datasette-metadata.json"
    metadata.write_text(json.dumps(metadata_for(db, votes), ensure_ascii=False, indent=1), encoding="utf-8")
    return [
        sys.executable, "-m", "pipeline.serve", "serve", db, str(store.feedback_path(db)),
        "--metadata", str(metadata), "--template-dir", str(TEMPLATES),
        "--host", host, "--port", str(port),
        "--setting", "sql_time_limit_ms", "3000", "--setting", "num_sql_threads", str(SQL_THREADS),
    ]


def app(db: str | os.PathLike, votes: bool = True):
    """The same Datasette `newsreader serve` runs, in process (tests, benchmarks): history, votes,
    rendered metadata and templates."""
    from datasette.app import Datasette

    register()
    store.open_feedback(db).close()
    return Datasette([str(db), str(store.feedback_path(db))], metadata=metadata_for(db, votes),
                     template_dir=str(TEMPLATES))


def register() -> None:
    """This module as a plugin of the Datasette in this process. It is not an entry point: installing
    newsreader must not add its routes to, or deny printf on, every Datasette in the environment."""
    import importlib

    from datasette.plugins import pm

    plugin = importlib.import_module("pipeline.serve")  # the module, also when this file runs as __main__
    if not pm.is_registered(plugin):
        pm.register(plugin, name="newsreader")


def main() -> None:
    """`python -m pipeline.serve serve ...`: Datasette's command line with this plugin registered."""
    from datasette.cli import cli

    register()
    cli(prog_name="datasette")


def serves(datasette) -> bool:
    """Whether this Datasette is the one newsreader serves (its metadata names the history): the hooks act
    only there, even in a process where another Datasette runs too (tests)."""
    return bool(datasette.plugin_config("newsreader"))


SLOW_FUNCTIONS = {"printf", "format"}  # printf('%.*c', 2000000000, 'x'): seconds inside one call
# Bytes of one value a visitor's query may read or build; every stored value fits (articles.TEXT_BYTES is
# the longest). Datasette checks its time limit every 1,000 SQLite instructions, so what one call can cost
# bounds how far past it a query runs: each string function here is linear in this.
VALUE_LIMIT = 250_000
SQL_THREADS = 8  # Datasette's default is 3: three visitors running slow queries held every one of them


def authorize(action, arg1, arg2, db_name, trigger):
    """Everything Datasette allows, except functions that can outlive sql_time_limit_ms in a single call."""
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in SLOW_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def as_text(value) -> str:
    """A value as SQLite's string functions read it (text, a number's digits, a blob's bytes as UTF-8)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def instr(haystack, needle):
    """SQLite's instr() in linear time: the built-in compares the needle at every position, so one call
    over hex(zeroblob(n)) costs n²/4 compares (4.5 s at 1 MB) where no time limit can stop it."""
    if haystack is None or needle is None:
        return None
    if isinstance(haystack, bytes) and isinstance(needle, bytes):
        return haystack.find(needle) + 1
    return as_text(haystack).find(as_text(needle)) + 1


def replace(text, old, new):
    """SQLite's replace() in linear time (the built-in is quadratic like instr); a result over the value
    limit is never built."""
    if text is None or old is None or new is None:
        return None
    text, old, new = as_text(text), as_text(old), as_text(new)
    if not old:
        return text
    if len(text.encode()) + text.count(old) * (len(new.encode()) - len(old.encode())) > VALUE_LIMIT:
        return "x" * (VALUE_LIMIT + 1)  # SQLite refuses it with its own "string or blob too big"
    return text.replace(old, new)


@hookimpl
def prepare_connection(conn, database, datasette):
    """Bound what one anonymous query can build, and how long one function call can run: Datasette's time
    limit is a progress handler, which never runs inside a single call. SQLite's own instr() and replace()
    are replaced by linear ones (numbers are read as Python writes them: 1e+20, not SQLite's 1.0e+20)."""
    if not serves(datasette):
        return
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, VALUE_LIMIT)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000)
    conn.set_authorizer(authorize)
    conn.create_function("instr", 2, instr, deterministic=True)
    conn.create_function("replace", 3, replace, deterministic=True)
    # The Atom feed builds HTML in SQL: every stored text goes through this first.
    conn.create_function("html_escape", 1, lambda v: html.escape(v) if isinstance(v, str) else v, deterministic=True)


def same_origin(scope) -> bool:
    """Whether a request comes from this site's own pages: its Origin names this host, or (no Origin)
    the browser says `Sec-Fetch-Site: same-origin`. asgi-csrf checks its token only when the request
    carries cookies, so a cross-site form without them (SameSite=Lax) was let through."""
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
    origin, fetch_site = headers.get("origin"), headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is not None:
        return origin != "null" and origin.split("://", 1)[-1].rstrip("/").lower() == headers.get("host", "").lower()
    return fetch_site in ("same-origin", "none")


@hookimpl
def asgi_wrapper(datasette):
    """Every POST (the vote queries are Datasette's writable canned queries) is refused with 403 unless it
    is same-origin, with or without cookies, on top of the CSRF token."""
    if not serves(datasette):
        return None

    def wrap(app):
        async def guarded(scope, receive, send):
            if scope["type"] == "http" and scope.get("method", "GET") not in ("GET", "HEAD", "OPTIONS") \
                    and not same_origin(scope):
                await Response.text("Refused: a POST from another site (or one that does not say where it "
                                    "comes from).", status=403).asgi_send(send)
                return
            await app(scope, receive, send)
        return guarded
    return wrap


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    """A story title becomes a link to the story; the title text stays escaped text."""
    if column != "title" or not isinstance(value, str) or not serves(datasette):
        return None
    keys = row.keys() if hasattr(row, "keys") else []
    link = (row["url"] if "url" in keys else None) or (row["discussion_url"] if "discussion_url" in keys else None)
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        return None
    return Markup('<a href="{}" rel="nofollow noopener">{}</a>').format(escape(link), escape(value))


# --- the pages --------------------------------------------------------------------------------

def config(datasette) -> dict:
    """Which database is the history and which the votes, as `newsreader serve` names them in the metadata
    (the pages exist only there: `serves`)."""
    found = datasette.plugin_config("newsreader")
    return {"history": found["history"], "feedback": found.get("feedback"), "votes": bool(found.get("votes"))}


async def rows(db, sql: str, params=None) -> list[dict]:
    return [dict(row) for row in await db.execute(sql, params or {})]


async def votes_for(datasette, settings: dict, story_ids: list[int]) -> dict[int, str]:
    if not settings["feedback"] or not story_ids:
        return {}
    feedback = datasette.get_database(settings["feedback"])
    found = await feedback.execute(
        f"SELECT story_id, vote FROM feedback WHERE story_id IN ({', '.join('?' * len(story_ids))})", story_ids)
    return {row["story_id"]: row["vote"] for row in found}


DAY_RUN = """
SELECT id, started_at FROM runs
WHERE status IN ('ok', 'partial') AND started_at >= :day AND started_at < date(:day, '+1 day')
ORDER BY id DESC LIMIT 1
"""
LATEST_RUN = "SELECT id, started_at FROM runs WHERE status IN ('ok', 'partial') ORDER BY id DESC LIMIT 1"
DIGEST_STORIES = """
SELECT d.story_id, d.source, d.title, d.url, d.summary, d.evidence, d.discussion, d.tags, d.score,
       d.discussion_url, d.also_discussed_at, d.points, d.comments, s.domain,
       first.started_at >= :day AS new_today
FROM digest_stories AS d
JOIN stories AS s ON s.id = d.story_id
JOIN runs AS first ON first.id = s.first_seen_run
WHERE d.run_id = :run
ORDER BY d.score DESC, d.points DESC
"""
NEIGHBOURS = """
SELECT (SELECT substr(max(started_at), 1, 10) FROM runs
        WHERE status IN ('ok', 'partial') AND started_at < :day) AS previous,
       (SELECT substr(min(started_at), 1, 10) FROM runs
        WHERE status IN ('ok', 'partial') AND started_at >= date(:day, '+1 day')) AS next
"""


SOURCES = "SELECT slug, label, base_url FROM sources"


def story_view(row: dict, votes: dict[int, str], sources: dict[str, dict]) -> dict:
    """A digest row as the template shows it: safe links, discussions by site, tags as a list."""
    label = sources.get(row["source"], {}).get("label", row["source"])
    discussions = [(label, http_link(row["discussion_url"]))]
    for url in (row.get("also_discussed_at") or "").split():
        other = next((s["label"] for s in sources.values() if url.startswith(s["base_url"] + "/")), "discussion")
        discussions.append((other, http_link(url)))
    return {**row, "link": http_link(row["url"]), "discussions": [(label, url) for label, url in discussions if url],
            "source_label": label, "tag_list": [t for t in (row.get("tags") or "").split(", ") if t],
            "vote": votes.get(row["story_id"])}


def by_source(stories: list[dict]) -> list[tuple[str, str, list[dict]]] | None:
    """(slug, label, stories) per source, the biggest first, when more than two sources are on the page."""
    groups: dict[str, list[dict]] = {}
    for story in stories:
        groups.setdefault(story["source"], []).append(story)
    if len(groups) <= 2:
        return None
    return [(slug, found[0]["source_label"], found) for slug, found in
            sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


async def digest_page(request, datasette):
    settings = config(datasette)
    db = datasette.get_database(settings["history"])
    day = request.url_vars.get("date")
    found = await rows(db, DAY_RUN if day else LATEST_RUN, {"day": day} if day else {})
    if not found:
        if day:
            raise NotFound(f"no digest for {day}")
        return Response.html(await datasette.render_template(
            "digest.html", {"day": None, "stories": [], "settings": settings}, request=request))
    run = found[0]
    day = run["started_at"][:10]
    sources = {s["slug"]: s for s in await rows(db, SOURCES)}
    stories = await rows(db, DIGEST_STORIES, {"run": run["id"], "day": day})
    votes = await votes_for(datasette, settings, [s["story_id"] for s in stories])
    every = [story_view(s, votes, sources) for s in stories]
    only = request.args.get("source")
    shown = [s for s in every if s["source"] == only] if only else every
    neighbours = (await rows(db, NEIGHBOURS, {"day": day}))[0]
    new = [s for s in shown if s["new_today"]]
    context = {"day": day, "run": run, "settings": settings, "previous": neighbours["previous"],
               "next": neighbours["next"], "new": new, "new_by_source": by_source(new),
               "still": [s for s in shown if not s["new_today"]], "stories": shown, "only": only,
               "sources": sorted({(s["source"], s["source_label"]) for s in every}, key=lambda kv: kv[1].lower()),
               "markdown": (await rows(db, "SELECT body FROM digests WHERE run_id = :run", {"run": run["id"]})
                            or [{"body": None}])[0]["body"]}
    return Response.html(await datasette.render_template("digest.html", context, request=request))


async def story_page(request, datasette):
    settings = config(datasette)
    db = datasette.get_database(settings["history"])
    story_id = int(request.url_vars["story_id"])
    found = await rows(db, "SELECT * FROM stories WHERE id = :id", {"id": story_id})
    if not found:
        raise NotFound(f"no story {story_id}")
    story = found[0]
    sightings = await rows(db, """
        SELECT r.started_at, g.run_id, g.rank, g.points, g.comments FROM sightings AS g
        JOIN runs AS r ON r.id = g.run_id WHERE g.story_id = :id ORDER BY g.run_id DESC LIMIT 500""", {"id": story_id})
    judgments = await rows(db, """
        SELECT j.*, r.started_at,
               (SELECT group_concat(tag, ', ') FROM story_tags AS t
                WHERE t.run_id = j.run_id AND t.story_id = j.story_id) AS tags
        FROM judgments AS j JOIN runs AS r ON r.id = j.run_id
        WHERE j.story_id = :id ORDER BY j.run_id DESC LIMIT 100""", {"id": story_id})
    others = await rows(db, """
        SELECT DISTINCT o.id, o.source, o.discussion_url
        FROM story_links AS l JOIN stories AS o ON o.id = l.linked_story_id
        WHERE l.story_id = :id""", {"id": story_id})
    comments = await rows(db, "SELECT * FROM comments WHERE story_id = :id ORDER BY position", {"id": story_id})
    article = await rows(db, "SELECT * FROM story_articles WHERE story_id = :id", {"id": story_id})
    labels = {s["slug"]: s["label"] for s in await rows(db, SOURCES)}
    discussions = [(labels.get(story["source"], story["source"]), http_link(story["discussion_url"]))] + [
        (labels.get(o["source"], o["source"]), http_link(o["discussion_url"])) for o in others]
    votes = await votes_for(datasette, settings, [story_id])
    context = {"story": story, "link": http_link(story["url"]), "sightings": sightings, "settings": settings,
               "judgments": [{**j, "tag_list": [t for t in (j["tags"] or "").split(", ") if t]} for j in judgments],
               "discussions": [(label, url) for label, url in discussions if url], "comments": comments,
               "article": article[0] if article else None, "vote": votes.get(story_id)}
    return Response.html(await datasette.render_template("story.html", context, request=request))


async def tag_page(request, datasette):
    settings = config(datasette)
    db = datasette.get_database(settings["history"])
    tag = request.url_vars["tag"]
    known = await rows(db, "SELECT slug, description FROM tags WHERE slug = :tag", {"tag": tag})
    if not known:
        raise NotFound(f"no tag {tag}")
    stories = await rows(db, """
        SELECT s.id AS story_id, s.source, s.title, coalesce(s.url, s.discussion_url) AS url, s.domain,
               s.discussion_url, j.summary, j.relevant, r.started_at
        FROM (SELECT story_id, max(run_id) AS run_id FROM story_tags WHERE tag = :tag GROUP BY story_id
              ORDER BY run_id DESC LIMIT 200) AS latest
        JOIN judgments AS j ON j.run_id = latest.run_id AND j.story_id = latest.story_id
        JOIN stories AS s ON s.id = latest.story_id JOIN runs AS r ON r.id = latest.run_id
        ORDER BY latest.run_id DESC, j.score DESC""", {"tag": tag})
    context = {"tag": known[0], "settings": settings,
               "stories": [{**s, "link": http_link(s["url"]), "discussion": http_link(s["discussion_url"])}
                           for s in stories]}
    return Response.html(await datasette.render_template("tag.html", context, request=request))


async def vote_page(request, datasette):
    """A mail's 👍/👎 link: a signed, expiring token for one story (deliver.vote_token). The link shows the
    vote and a button; the button (a POST, CSRF-checked as every form here) records it in feedback.db."""
    from . import deliver, schema

    settings = config(datasette)
    history = datasette.get_database(settings["history"]).path
    secret_file = store.secret_path(history)
    found = deliver.read_vote_token(secret_file.read_bytes() if secret_file.is_file() else None,
                                    request.url_vars["token"])
    if found is None:
        return Response.html(await datasette.render_template(
            "vote.html", {"error": "This vote link is not valid, or it has expired."}, request=request), status=403)
    story_id, vote, _ = found
    titles = await rows(datasette.get_database(settings["history"]), "SELECT title FROM stories WHERE id = :id",
                        {"id": story_id})
    if not titles:
        raise NotFound(f"no story {story_id}")
    recorded = request.method == "POST"
    if recorded:
        conn = store.open_feedback(history)
        try:
            with schema.transaction(conn):
                store.record_vote(conn, story_id, vote)
        finally:
            conn.close()
    return Response.html(await datasette.render_template("vote.html", {
        "story_id": story_id, "vote": vote, "title": titles[0]["title"], "recorded": recorded}, request=request))


DATE = r"(?P<date>\d{4}-\d{2}-\d{2})"


@hookimpl
def register_routes(datasette):
    if not serves(datasette):
        return []
    return [
        (r"^/digest$", digest_page),
        (rf"^/digest/{DATE}$", digest_page),
        (r"^/story/(?P<story_id>\d{1,18})$", story_page),
        (r"^/tag/(?P<tag>[a-z][a-z0-9-]{0,31})$", tag_page),
        (r"^/vote/(?P<token>[A-Za-z0-9_-]{8,400}\.[A-Za-z0-9_-]{43})$", vote_page),
    ]


@hookimpl
def extra_template_vars(datasette):
    """`site_label(slug)` for the templates: a source's label, as the history's sources table has it."""
    if not serves(datasette):
        return {}

    async def inner():
        db = datasette.get_database(config(datasette)["history"])
        labels = {row["slug"]: row["label"] for row in await rows(db, SOURCES)}
        return {"site_label": lambda slug: labels.get(slug, slug)}
    return inner


if __name__ == "__main__":
    main()
