"""The `newsreader` command line: a thin click layer over the pipeline modules."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__, parse, sources, store

db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    envvar="NEWSREADER_DB",
    default=str(store.DEFAULT_DB),
    show_default=True,
    help="History database (env: NEWSREADER_DB).",
)


def open_history(db: str):
    try:
        return store.open_db(db)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsreader")
def cli():
    """Daily Hacker News + Lobsters digest, judged by an LLM CodeAgent.

    Typical day: `newsreader refresh`, then `newsreader serve` and open the digest.
    """


@cli.command()
@db_option
def init(db):
    """Create the history database (idempotent) and print where it is."""
    database = open_history(db)
    tags = database["tags"].count
    click.echo(f"{db}: schema version {store.schema_version()}, {tags} tags")


@cli.command()
@db_option
@click.option("--limit", default=10, show_default=True, help="How many recent runs to show.")
def runs(db, limit):
    """Show recent refresh runs, newest first."""
    database = open_history(db)
    rows = list(
        database.query(
            """
            SELECT id, started_at, status, model, executor, stories, rejected,
                   input_tokens, output_tokens, round(duration_s, 1) AS seconds, error
            FROM runs ORDER BY id DESC LIMIT ?
            """,
            [limit],
        )
    )
    if not rows:
        click.echo("no runs yet: run `newsreader refresh`")
        return
    click.echo(format_table(rows))


def format_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers="keys", tablefmt="simple", missingval="")


source_choice = click.Choice(sorted(sources.SOURCES))


@cli.command()
@click.option("--source", "only", type=source_choice, multiple=True, help="Only this source (repeatable).")
@click.option(
    "--raw-dir", type=click.Path(file_okay=False), default="data/raw", show_default=True, help="Where pages are saved."
)
def fetch(only, raw_dir):
    """Fetch front pages and save them unchanged; print the saved paths."""
    failed = False
    for source in only or sorted(sources.SOURCES):
        try:
            page = sources.fetch(source, Path(raw_dir))
        except parse.SourceError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        click.echo(str(page.path))
    if failed:
        sys.exit(1)


@cli.command(name="parse")
@click.argument("source", type=source_choice)
@click.argument("file", type=click.File("rb"))
def parse_command(source, file):
    """Parse a saved front page FILE and print its stories as a JSON array."""
    try:
        stories = parse.parse(source, file.read())
    except parse.SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps([story.to_dict() for story in stories], indent=2, ensure_ascii=False))


@cli.command()
@db_option
@click.option("--snapshot", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Read DIR/hn.html and DIR/lobsters.html instead of fetching.")
@click.option("--source", "only", type=source_choice, multiple=True, help="Only this source (repeatable).")
@click.option("--model", envvar="NEWSREADER_MODEL", default="rules", show_default=True,
              help="'rules' (offline, deterministic) or any LiteLLM model id, e.g. anthropic/claude-haiku-4-5.")
@click.option("--api-base", envvar="NEWSREADER_API_BASE", help="API base URL for the model (e.g. a local server).")
@click.option("--executor", type=click.Choice(["local", "docker", "e2b", "modal", "blaxel"]), default="local",
              show_default=True, help="Where the agent's code runs.")
@click.option("--max-steps", type=click.IntRange(1, 50), default=6, show_default=True)
@click.option("--no-wait", is_flag=True, help="Exit at once if another refresh is running.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def refresh(db, snapshot, only, model, api_base, executor, max_steps, no_wait, quiet):
    """Fetch, judge and store today's front pages.

    Exit status: 0 when the run is ok or partial (reported), 1 when it failed.
    """
    from . import refresh as refresh_module
    from .sync import RefreshBusy

    echo = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    options = refresh_module.Options(
        db=db, snapshot=snapshot, sources=only or tuple(sources.SOURCES), model=model,
        model_options={"api_base": api_base} if api_base else {}, executor=executor, max_steps=max_steps,
        wait=not no_wait, echo=echo,
    )
    try:
        report = refresh_module.refresh(options)
    except RefreshBusy as exc:
        raise click.ClickException(f"{exc}; not waiting (--no-wait)") from exc
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = (f"run {report.run_id}: {report.status} — {report.stories} stories, {report.judged} judged, "
               f"{report.rejected} rejected")
    if report.status == "failed":
        click.echo(f"error: {summary}: {'; '.join(report.errors)}", err=True)
        sys.exit(1)
    if report.status == "partial":
        click.echo(f"warning: {summary}: {'; '.join(report.errors) or 'some rows were rejected'}", err=True)
    elif not quiet:
        click.echo(summary, err=True)


@cli.command(name="eval")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Labels CSV (source,file,rank,title,url,domain,native_tags,relevant,tags).")
@click.option("--html-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where the CSV's page files are [default: html/ next to the CSV].")
@click.option("--model", envvar="NEWSREADER_MODEL", default="rules", show_default=True,
              help="'rules', 'keyword-baseline' or any LiteLLM model id.")
@click.option("--api-base", envvar="NEWSREADER_API_BASE", help="API base URL for the model.")
@click.option("--executor", type=click.Choice(["local", "docker", "e2b", "modal", "blaxel"]), default="local",
              show_default=True)
@click.option("--max-steps", type=click.IntRange(1, 50), default=6, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(labels, html_dir, model, api_base, executor, max_steps, as_json):
    """Judge labelled real pages and score relevance, tags and summaries (never touches history)."""
    from . import evaluate
    from .sandbox import reference_vocabulary

    try:
        metrics = evaluate.evaluate(
            labels, html_dir=html_dir, model_id=model, vocabulary=reference_vocabulary(),
            executor=executor, max_steps=max_steps, model_options={"api_base": api_base} if api_base else {},
        )
    except evaluate.EvalError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(metrics, indent=2) if as_json else evaluate.format_report(metrics))
    if metrics["errors"]:
        sys.exit(1)


@cli.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
def serve(db, host, port):
    """Browse the history in Datasette (read-only for visitors)."""
    from . import serve as serving

    open_history(db)  # create / migrate first, so Datasette sees the current schema
    base = f"http://{host}:{port}/{serving.database_name(db)}"
    click.echo(f"Serving {db} at {base} - today's digest: {base}/digest", err=True)
    sys.stdout.flush()
    args = serving.datasette_args(db, host, port)
    os.execv(args[0], args)

if __name__ == "__main__":
    cli()
