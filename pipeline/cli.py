"""The `newsreader` command line: a thin click layer over the pipeline modules.

Every command reads the same configuration (see `pipeline/config.py`); flags
override it for one invocation.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from . import __version__, schema
from .config import RANGES, executor_names
from .settings import CURVE_ORDERS, EXECUTORS


class ExecutorName(click.ParamType):
    """An executor's name: a built-in one, or one a plugin registers (the registry is loaded only for a
    name that is not built in)."""

    name = "executor"

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(EXECUTORS) + "|a plugin's]"

    def convert(self, value, param, ctx):
        known = executor_names(value)
        if value not in known:
            self.fail(f"{value!r} is not one of {', '.join(known)}", param, ctx)
        return value


EXECUTOR_CHOICE = ExecutorName()

db_option = click.option("--db", type=click.Path(dir_okay=False),
                         help="History database [default: <data_dir>/news.db; env: NEWSREADER_DB].")


def settings(**overrides):
    """The effective configuration: defaults < file < environment < these flags."""
    from . import config

    path = click.get_current_context().find_root().params.get("config_path")
    try:
        return config.load(path, overrides)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


JUDGE_OPTIONS = [
    click.option("--model", help="'rules' (offline), 'keyword-baseline' or a LiteLLM model id "
                                 "[default: from config; env: NEWSREADER_MODEL]."),
    click.option("--api-base", help="API base URL for the model, e.g. a local server [env: NEWSREADER_API_BASE]."),
    click.option("--executor", type=EXECUTOR_CHOICE, help="Where the agent's code runs [default: jail]."),
    click.option("--max-steps", type=click.IntRange(1, RANGES["max_steps"]), help="Agent steps per site [default: 6]."),
    click.option("--step-timeout", type=click.IntRange(1, RANGES["step_timeout"]), metavar="SECONDS",
                 help="Wall-clock limit on one step of the agent's code; the jail is killed at it [default: 60]."),
    click.option("--embeddings", metavar="MODEL", help="What the learner embeds stories with: auto, local, none or "
                                                       "a LiteLLM embedding model id [default: auto]."),
]


def judge_options(command):
    """The judge's flags, shared by refresh and eval: the command gets them as `judge`, in config keys."""

    @functools.wraps(command)
    def with_judge(*args, model, api_base, executor, max_steps, step_timeout, embeddings, **kwargs):
        judge = {"model.id": model, "executor.name": executor, "max_steps": max_steps, "step_timeout": step_timeout,
                 "model.options": {"api_base": api_base} if api_base else None, "learning.embeddings": embeddings}
        return command(*args, judge=judge, **kwargs)

    for option in reversed(JUDGE_OPTIONS):
        with_judge = option(with_judge)
    return with_judge


def open_history(db: Path):
    from . import store
    try:
        return store.open_db(db)
    except schema.StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsreader")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="NEWSREADER_CONFIG",
              help="Config file [default: ./newsreader.toml if present; env: NEWSREADER_CONFIG].")
def cli(config_path):
    """Daily Hacker News + Lobsters digest, judged by an LLM CodeAgent.

    Typical day: `newsreader refresh`, then `newsreader serve` and open the digest.
    """


@cli.command(name="config")
def config_command():
    """Print the effective configuration and where each value came from."""
    for line in settings().lines():
        click.echo(line)


@cli.command()
@db_option
def init(db):
    """Create the history database (idempotent) and sync the configured tags into it."""
    cfg = settings(db=db)
    database = open_history(cfg.db)
    try:
        schema.sync_tags(database.conn, cfg.vocabulary)
    except schema.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{cfg.db}: schema version {schema.schema_version()}, {database['tags'].count} tags")


@cli.command()
@db_option
@click.option("--snapshot", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Read DIR/hn.html and DIR/lobsters.html instead of fetching.")
@click.option("--source", "only", multiple=True,
              help="Only this source (repeatable): hn, lobsters, or a configured one.")
@click.option("--fallback-snapshot", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="When no front page can be fetched (offline), read this snapshot instead, in the same run.")
@judge_options
@click.option("--rejudge", is_flag=True,
              help="Judge every story again, even one judged on the same basis within reuse_days.")
@click.option("--no-wait", is_flag=True, help="Exit at once if another refresh is running.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors (for cron).")
@click.option("-v", "--verbose", is_flag=True, help="Also show each agent step.")
def refresh(db, snapshot, only, fallback_snapshot, judge, rejudge, no_wait, quiet, verbose):
    """Fetch, judge and store today's front pages.

    Exit status: 0 when the run is ok or partial (reported), 1 when it failed.
    """
    from . import refresh as refresh_module
    from .jail import JailError
    from .progress import Reporter
    from .refresh import RefreshBusy

    cfg = settings(db=db, **judge)
    known_sources(cfg, only)
    enabled = tuple(s for s in cfg.sources if not only or s in only)
    if not enabled:
        raise click.ClickException(f"--source {' '.join(only)} is disabled in the configuration")
    try:
        reporter = Reporter(cfg.data_dir / "logs", quiet=quiet, verbose=verbose)
        options = refresh_module.Options.from_config(cfg, snapshot=snapshot, wait=not no_wait, reporter=reporter)
        options.sources = enabled
        options.fallback_snapshot = fallback_snapshot
        if rejudge:
            options.reuse_days = 0
        previous = signal.signal(signal.SIGINT, interrupted)
        try:
            report = refresh_module.refresh(options)
        finally:
            signal.signal(signal.SIGINT, previous)
    except RefreshBusy as exc:
        raise click.ClickException(f"{exc}; not waiting (--no-wait)") from exc
    except JailError as exc:
        raise click.ClickException(str(exc)) from exc
    except schema.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except sqlite3.Error as exc:  # e.g. disk full: the run's transaction was rolled back
        raise click.ClickException(f"history database {cfg.db}: {exc}; nothing from this run was stored") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write under {cfg.data_dir}: {exc}") from exc
    cost = "cost unknown" if report.cost_usd is None else f"${report.cost_usd:.4f}"
    summary = (f"run {report.run_id}: {report.status} — {report.stories} stories, {report.judged} judged "
               f"({report.reused} carried over), {report.rejected} rejected, {report.llm_calls} model calls, {cost}")
    if report.status == "failed":
        click.echo(f"error: {summary}: {'; '.join(report.errors)}", err=True)
        sys.exit(1)
    if report.status == "partial":
        click.echo(f"warning: {summary}: {'; '.join(report.errors) or 'some rows were rejected'}", err=True)
    elif not quiet:
        click.echo(summary, err=True)


RUNS_SQL = """
    SELECT id, started_at, status, model, executor, stories, rejected, llm_calls,
           input_tokens, output_tokens, cost_usd, round(duration_s, 1) AS seconds, error
    FROM runs ORDER BY id DESC LIMIT ?
"""


@cli.command()
@db_option
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100_000),
              help="How many recent runs to show.")
def runs(db, limit):
    """Show recent refresh runs, newest first."""
    rows = list(open_history(settings(db=db).db).query(RUNS_SQL, [limit]))
    if not rows:
        click.echo("no runs yet: run `newsreader refresh`")
        return
    click.echo(format_table(rows))


@cli.command()
@db_option
def status(db):
    """The last run in one line, and the days not delivered; exits 1 if the run failed (or none ran)."""
    history = open_history(settings(db=db).db)
    rows = list(history.query(RUNS_SQL, [1]))
    if not rows:
        click.echo("no runs yet: run `newsreader refresh`", err=True)
        sys.exit(1)
    run = rows[0]
    line = (f"run {run['id']} {run['status']} at {run['started_at']}: {run['stories'] or 0} stories, "
            f"{run['rejected']} rejected, {run['input_tokens'] or 0}+{run['output_tokens'] or 0} tokens, "
            f"{run['seconds'] or 0} s, model {run['model']}")
    if run["error"]:
        line += f" — {run['error']}"
    click.echo(line)
    from .deliver import undelivered

    for channel, day, state, attempts, error in undelivered(history.conn):
        click.echo(f"undelivered: {day} to {channel}: {state} after {attempts} attempt(s)"
                   + (f" — {error}" if error else ""))
    if run["status"] == "failed":
        sys.exit(1)


def format_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers="keys", tablefmt="simple", missingval="")


@cli.command()
@db_option
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Another day (YYYY-MM-DD) [default: latest].")
def digest(db, day):
    """Print a day's Markdown digest (the latest run of that day)."""
    cfg = settings(db=db)
    from . import history

    body = history.digest_body(open_history(cfg.db), day and f"{day:%Y-%m-%d}")
    if body is None:
        raise click.ClickException(f"no digest for {day:%Y-%m-%d}" if day
                                   else "no digest yet: run `newsreader refresh`")
    click.echo(body, nl=False)


@cli.group(name="sandbox")
def sandbox_group():
    """The container image for `--executor docker`."""


@sandbox_group.command(name="build")
@click.option("--force", is_flag=True, help="Rebuild even if the image for this recipe exists.")
def sandbox_build(force):
    """Build the sandbox image offline (debootstrap + local wheels) and print its tag; reused when present."""
    from . import container

    try:
        click.echo(container.build_image(force=force, log=lambda m: click.echo(m, err=True)))
    except container.ContainerError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option("--print", "kind", type=click.Choice(["cron", "systemd", "github-actions"]), required=True,
              help="Which recipe to print.")
@click.option("--hour", type=click.IntRange(0, 23), default=6, show_default=True, help="Hour of the daily run.")
def schedule(kind, hour):
    """Print a ready recipe for a daily refresh (cron, systemd timer, GitHub Actions)."""
    from .schedule import recipe

    click.echo(recipe(kind, Path.cwd(), hour=hour), nl=False)


@cli.command()
@click.option("--source", "only", multiple=True,
              help="Only this source (repeatable): hn, lobsters, or a configured one.")
@click.option("--raw-dir", type=click.Path(file_okay=False), help="Where pages are saved [default: <data_dir>/raw].")
def fetch(only, raw_dir):
    """Fetch front pages and save them unchanged; print the saved paths."""
    from . import parse, sources
    cfg = settings()
    known_sources(cfg, only)
    failed = False
    for slug, source in cfg.sources.items():
        if only and slug not in only:
            continue
        try:
            page = sources.fetch(slug, Path(raw_dir or cfg.data_dir / "raw"), url=source.url,
                                 request=sources.Request(source.kind.accept, source.kind.content_types))
        except parse.SourceError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        click.echo(str(page.path))
    if failed:
        sys.exit(1)


@cli.group(name="sources")
def sources_group():
    """The sources a refresh reads: list them, add a feed, import or export OPML."""


@sources_group.command(name="list")
@db_option
def sources_list(db):
    """Each configured source: its kind, whether it is on, its URL, and its stories in the history."""
    from tabulate import tabulate

    from . import store

    cfg = settings(db=db)
    counts = {}
    if cfg.db.is_file():
        conn = store.connect(cfg.db)
        counts = dict(conn.execute("SELECT source, count(*) FROM stories GROUP BY source"))
        conn.close()
    rows = [(slug, source.kind.name, "yes" if slug in cfg.sources else "no", source.label, counts.get(slug, 0),
             source.url) for slug, source in cfg.all_sources().items()]
    click.echo(tabulate(rows, headers=["source", "kind", "enabled", "label", "stories", "url"]))


def config_file() -> Path:
    """The config file the sources commands write: the one in use, else newsreader.toml here."""
    from . import config

    path, _ = config.config_path(click.get_current_context().find_root().params.get("config_path"))
    return path or Path(config.CONFIG_FILE)


def add_feeds(feeds: list[tuple[str, str]], name: str | None = None) -> list[tuple[str, str, str]]:
    """Write these (feed URL, title) into the config as sources, each under a new name (`name` for a single
    feed, else one from its title or host); those already configured are left out. The names given, with
    their URLs and titles."""
    from . import config

    cfg = settings()
    have = {source.url for source in cfg.all_sources().values()}
    taken, added = set(cfg.all_sources()), []
    if name in taken:
        raise click.ClickException(f"there is a source named {name} already")
    for url, title in feeds:
        if url in have:
            continue
        slug = name or config.slug_for(title or (urlsplit(url).hostname or "feed"), taken)
        taken.add(slug)
        have.add(url)
        added.append((slug, url, title))
    if added:
        try:
            config.add_sources(config_file(), added)
        except config.ConfigError as exc:
            raise click.ClickException(f"the sources were not added: {exc}") from exc
    return added


@sources_group.command(name="add")
@click.argument("url")
@click.option("--name", help="The source's name in the config [default: from the feed's title].")
def sources_add(url, name):
    """Add the feed at URL (or the feed a page at URL names in its <link rel=alternate>)."""
    from . import config, sources
    from .sites import feed

    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"{url!r} is not an http(s) URL")
    try:
        with sources.make_client() as client:
            page = sources.fetch_listing("add", url, client, sources.Request("*/*", ()))
            if not feed.is_feed(page.body, page.content_type):
                found = feed.discover(page.body, url)
                if not found:
                    raise click.ClickException(f"{url} is not a feed, and names none in a <link rel=\"alternate\">")
                url = found[0][0]
                page = sources.fetch_listing("add", url, client, sources.Request("*/*", ()))
    except sources.SourceError as exc:
        raise click.ClickException(exc.reason) from exc
    title = feed.feed_title(page.body, page.content_type)
    if name and not config.SLUG.fullmatch(name):
        raise click.ClickException(f"--name {name!r}: lower-case letters, digits, '-' and '_', starting with a letter")
    added = add_feeds([(url, title)], name)
    if not added:
        raise click.ClickException(f"{url} is already a source")
    click.echo(f"added [sources.{added[0][0]}] feed = {url}" + (f" ({title})" if title else "")
               + f" to {config_file()}")


@sources_group.command(name="import")
@click.argument("opml_file", type=click.File("rb"))
def sources_import(opml_file):
    """Add every feed of an OPML file (another reader's export) as a source."""
    from .sites import feed

    try:
        found = feed.opml_feeds(opml_file.read(5 * 1024 * 1024))
    except ValueError as exc:
        raise click.ClickException(f"{opml_file.name}: {exc}") from exc
    added = add_feeds(found)
    click.echo(f"added {len(added)} of the {len(found)} feeds in {opml_file.name} to {config_file()}"
               + (f" ({len(found) - len(added)} were sources already)" if len(found) > len(added) else ""))


@sources_group.command(name="export")
def sources_export():
    """Print the configured feeds as OPML, for another reader to import."""
    from .sites import feed

    feeds = [(slug, source.name, source.url) for slug, source in settings().all_sources().items()
             if source.kind.name == "feed"]
    click.echo(feed.opml(feeds), nl=False)


@cli.command(name="deliver")
@db_option
@click.option("--channel", "only", multiple=True, help="Only this [[deliver]] channel (repeatable).")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="That day's digest [default: the latest run's].")
@click.option("--resend", is_flag=True, help="Send again a day already sent (a new message).")
def deliver_command(db, only, day, resend):
    """Send the day's digest to each channel that has not had it (by hand: now, whatever the backoff)."""
    from . import deliver

    cfg = settings(db=db)
    channels = [deliver.Channel.from_config(entry) for entry in cfg["deliver"]]
    unknown = [name for name in only if name not in {c.name for c in channels}]
    if not channels or unknown:
        raise click.ClickException(f"no [[deliver]] channel named {unknown[0]}" if unknown else
                                   "no [[deliver]] channel is configured (README: Delivery)")
    conn = open_history(cfg.db).conn
    day = day.strftime("%Y-%m-%d") if day else (conn.execute(
        "SELECT substr(max(started_at), 1, 10) FROM runs WHERE status IN ('ok', 'partial')").fetchone()[0])
    if day is None:
        raise click.ClickException("no run has landed yet: run `newsreader refresh` first")
    links = deliver.Links.of(cfg["public_url"], cfg.db)
    outcomes = deliver.deliver(conn, [c for c in channels if not only or c.name in only], day, by_hand=True,
                               resend=resend, links=links)
    for outcome in outcomes:
        click.echo(f"{outcome.channel} {outcome.day}: {outcome.status}" + (f" ({outcome.detail})"
                                                                         if outcome.detail else ""))
    if any(o.status in ("pending", "failed") for o in outcomes):
        sys.exit(1)


@cli.command()
@db_option
@click.option("--limit", type=click.IntRange(1, 10000), default=30, show_default=True)
def outbox(db, limit):
    """Each channel's deliveries, newest first: sent, pending (with the error and the next try) or failed."""
    rows = list(open_history(settings(db=db).db).query(
        "SELECT day, channel, status, stories, attempts, sends, sent_at, next_attempt_at, last_error FROM outbox "
        "ORDER BY day DESC, channel LIMIT ?", [limit]))
    click.echo(format_table(rows) if rows else "nothing delivered yet")


def interrupted(signum, frame):
    """Ctrl-C during a refresh: every jail dies here, in the handler, whatever the main thread was doing
    (a KeyboardInterrupt raised inside a SQLite progress handler is swallowed by sqlite3, and the refresh
    would go on); then the KeyboardInterrupt, for the refresh to stop where it is."""
    from . import jail

    jail.kill_all()
    raise KeyboardInterrupt


def known_sources(cfg, named) -> None:
    """Every --source named is one the configuration has (enabled or not), else one line naming them."""
    unknown = [s for s in named if s not in cfg.all_sources()]
    if unknown:
        raise click.ClickException(f"unknown source {', '.join(unknown)} (configured: "
                                   f"{', '.join(cfg.all_sources())})")


@cli.command(name="parse")
@click.argument("source")
@click.argument("file", type=click.File("rb"))
def parse_command(source, file):
    """Parse a saved listing FILE of SOURCE (hn, lobsters, a configured feed) and print its stories as a
    JSON array (refused rows on stderr)."""
    from . import parse
    cfg = settings()
    known_sources(cfg, (source,))
    found = cfg.all_sources()[source]
    try:
        body = file.read()
        page = found.kind.parse(found, body, "application/json" if body.lstrip()[:1] == b"{" else "", found.url)
    except parse.SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    for item, reason in page.refused:
        click.echo(f"warning: {item} {reason}", err=True)
    click.echo(json.dumps([story.to_dict() for story in page.stories], indent=2, ensure_ascii=False))


@cli.command()
@click.argument("file", type=click.File("rb"))
@click.option("--url", help="The page's address (helps with relative links and metadata).")
def article(file, url):
    """Print what newsreader reads of one saved article page, as JSON (for debugging the extraction)."""
    from . import articles

    data = file.read(articles.MAX_BYTES + 1)
    if len(data) > articles.MAX_BYTES:
        raise click.ClickException(f"{file.name} is larger than {articles.MAX_BYTES // 1_000_000} MB, the cap "
                                   "for an article page")
    fields = articles.extract(data, url=url)
    click.echo(json.dumps({"url": url, **fields, "characters": len(fields["text"] or "")}, ensure_ascii=False,
                          indent=2))


@cli.command(name="eval")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Labels CSV (source,file,rank,title,url,domain,native_tags,relevant,tags).")
@click.option("--html-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where the CSV's page files are [default: html/ next to the CSV].")
@click.option("--learn-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="Labels CSV treated as the reader's votes: score before and after learning from them "
                   "(repeat it to learn from several files).")
@click.option("--curve", is_flag=True,
              help="Accuracy and tag macro-F1 against the number of votes learned from (cross-validated by page).")
@click.option("--orders", type=click.IntRange(1, 20), default=CURVE_ORDERS, show_default=True,
              help="With --curve: the seeded orders of the votes each point between none and all averages.")
@judge_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(labels, html_dir, learn_from, curve, orders, judge, as_json):
    """Judge labelled real pages and score relevance, tags and summaries (never touches history)."""
    from . import embeddings, evaluate, rules
    from .jail import JailError

    cfg = settings(**judge)
    run = functools.partial(evaluate.evaluate, labels, html_dir=html_dir, vocabulary=cfg.vocabulary,
                            judge=cfg.judge())
    try:
        extra = [label for path in learn_from for label in evaluate.load_labels(path)]
        votes = [label.vote() for label in extra]
        embedder = embeddings.make_embedder(cfg.judge().embeddings, cfg.judge().embedding_options)
        if curve:
            points = evaluate.curve(labels, html_dir=html_dir, vocabulary=cfg.vocabulary, judge=cfg.judge(),
                                    extra=extra, embedder=embedder,
                                    orders=orders)
            used = evaluate.embedding_use(embedder)
            click.echo(json.dumps({"points": points, "embeddings": used}, indent=2) if as_json
                       else f"{evaluate.format_curve(points)}\nembeddings: {evaluate.format_use(used)}")
            if any(point["errors"] for point in points):
                sys.exit(1)
            return
        if learn_from:
            if seen := evaluate.overlap(evaluate.load_labels(labels), extra):
                click.echo(f"notice: {seen} of the stories scored are among the votes learned from: the figures "
                           "after learning say how well the votes are recalled, not what learning carries "
                           "(--curve never learns from the page it scores)", err=True)
            before = run()
            metrics = run(learned=rules.teach(votes, cfg.vocabulary, cfg.judge().profile, embedder,
                                              frozenset(s for s, found in cfg.sources.items() if found.kind.computing)))
            metrics["embeddings"] = used = evaluate.embedding_use(embedder)
            if as_json:
                click.echo(json.dumps({"before": before, "after": metrics, "votes": len(votes)}, indent=2))
            else:
                click.echo(f"before learning\n{evaluate.format_report(before)}\n\n"
                           f"after learning from {len(votes)} votes ({', '.join(map(str, learn_from))}), embeddings: "
                           f"{evaluate.format_use(used)}\n{evaluate.format_report(metrics)}")
        else:
            metrics = run()
            click.echo(json.dumps(metrics, indent=2) if as_json else evaluate.format_report(metrics))
    except (evaluate.EvalError, JailError, embeddings.EmbeddingError) as exc:
        raise click.ClickException(str(exc)) from exc
    if metrics["errors"]:
        sys.exit(1)


@cli.command()
@db_option
@click.argument("story_id", type=click.IntRange(1), required=False)
@click.argument("choice", metavar="up|down|clear", type=click.Choice(["up", "down", "clear"]), required=False)
@click.option("--tags", help="Your own tags for the story, comma-separated (corrections the judge learns from).")
@click.option("--import", "import_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Load a labels CSV (labels.csv format) as votes: relevant 1/0 as up/down, tags as your tags.")
def vote(db, story_id, choice, tags, import_path):
    """Vote on a story, as the digest page's buttons do (stored in feedback.db beside the history)."""
    from . import history, store

    cfg = settings(db=db)
    news = open_history(cfg.db)
    if import_path is not None:
        if story_id is not None:
            raise click.ClickException("give either STORY_ID up|down|clear or --import CSV, not both")
        stored, missing = import_votes(news, cfg.db, import_path)
        click.echo(f"imported {stored} votes from {import_path}"
                   + (f"; {missing} labelled stories are not in {cfg.db} and were skipped" if missing else ""))
        return
    if story_id is None or choice is None:
        raise click.ClickException("give STORY_ID and up, down or clear (or --import CSV)")
    title = history.story_title(news, story_id)
    if title is None:
        raise click.ClickException(f"no story {story_id} in {cfg.db}")
    given = list(dict.fromkeys(t.strip() for t in (tags or "").split(",") if t.strip()))
    unknown = history.unknown_tags(news, given)
    if unknown:
        raise click.ClickException(f"not in the vocabulary: {', '.join(unknown)}")
    try:
        conn = store.open_feedback(cfg.db)
    except schema.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    with schema.transaction(conn):
        store.record_vote(conn, story_id, choice, given or None)
    conn.close()
    click.echo(f"{'cleared the vote on' if choice == 'clear' else choice + ':'} {title}"
               + (f" [{', '.join(given)}]" if given else ""))


def import_votes(news, db: Path, path: Path) -> tuple[int, int]:
    """A labels CSV as votes on the stories of this history it names (matched by site and title)."""
    from . import evaluate, history, store

    try:
        labels = evaluate.load_labels(path)
    except evaluate.EvalError as exc:
        raise click.ClickException(str(exc)) from exc
    conn = store.open_feedback(db)
    stored = missing = 0
    with schema.transaction(conn):
        for label in labels:
            story_id = history.latest_story(news, label.source, label.title)
            if story_id is None:
                missing += 1
                continue
            store.record_vote(conn, story_id, "up" if label.relevant else "down", label.tags)
            stored += 1
    conn.close()
    return stored, missing


@cli.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535),
              help="Port; when the default is busy the next free one is taken.")
@click.option("--allow-votes", is_flag=True,
              help="Accept 👍/👎 votes when serving on another interface (on localhost they always are).")
def serve(db, host, port, allow_votes):
    """Browse the history in Datasette (read-only for visitors; votes go to feedback.db beside it)."""
    from . import serve as serving

    cfg = settings(db=db)
    db = str(cfg.db)
    open_history(db)  # create / migrate first, so Datasette sees the current schema
    chosen = click.get_current_context().get_parameter_source("port").name != "DEFAULT"
    port = free_port(host, port, tries=1 if chosen else 20)
    votes = host in serving.LOCAL_HOSTS or allow_votes
    try:
        args = serving.datasette_args(db, host, port, votes=votes, metadata_dir=cfg.data_dir)
    except schema.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    click.echo(f"Serving {db} at {base}/ - today's digest: {base}/digest"
               + ("" if votes else " (voting off: not on localhost; --allow-votes turns it on)"), err=True)
    sys.stdout.flush()
    os.execv(args[0], args)


def free_port(host: str, port: int, tries: int) -> int:
    """`port`, or the next free one within `tries`; one clear error when none is."""
    import socket

    for candidate in range(port, min(port + tries, 65536)):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return candidate
    raise click.ClickException(f"port {port} on {host} is in use" + ("" if tries == 1 else
                               f", and so are the next {tries - 1}") + ": choose another with --port")


if __name__ == "__main__":
    cli()
