"""One refresh, end to end: fetch/snapshot -> parse -> sandbox per site -> agents in parallel
-> collector -> validated atomic sync -> run record -> digest file.

A site that fails at any stage (unreachable, changed layout, agent gave up,
tampered sandbox) is recorded and the other site still lands: the run is
`partial`. Sandboxes of landed sites are removed; the others are kept under
``<data>/sandboxes/<run_id>/`` for inspection. Raw pages and kept sandboxes are
pruned after the retention period; the history DB never is.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import (
    agent,
    articles,
    collect,
    deliver,
    history,
    models,
    parse,
    prompt,
    rules,
    sandbox,
    schema,
    sources,
    store,
    sync,
)
from .config import defaults as config_defaults
from .embeddings import LOCAL, Embedder, EmbeddingError, make_embedder, nearest, story_text
from .learn import Learner, Vote
from .progress import Reporter
from .settings import ARTICLE_CACHE_DAYS, MAX_CANDIDATES, PARALLEL_SOURCES, PER_HOST, REUSE_DAYS, Judge
from .sites import BUILTIN, Source
from .text import LIBXML, describe, one_line, without_paths


@dataclass
class Options:
    db: str | None = None
    data_dir: Path | None = None  # raw/, sandboxes/, digests/, logs/; default: the DB's folder
    snapshot: Path | None = None
    fallback_snapshot: Path | None = None  # when no front page can be fetched (offline): read this snapshot instead
    sources: tuple[str, ...] = BUILTIN  # the slugs this run reads, of `configured`
    configured: dict[str, Source] = field(default_factory=lambda: config_defaults().all_sources())
    parallel: int = PARALLEL_SOURCES  # sources fetched, and judged, at once
    per_host: int = PER_HOST  # listing requests to one host at once
    channels: list[deliver.Channel] = field(default_factory=list)  # where the day's digest goes after the run
    public_url: str | None = None  # where `newsreader serve` answers: a mail's vote links and page link
    judge: Judge = field(default_factory=Judge)  # model, executor, steps, deadlines, profile
    max_candidates: int = MAX_CANDIDATES
    reuse_days: int = REUSE_DAYS  # carry over a judgment on the same basis this recent; 0 judges everything again
    article_cache_days: int = ARTICLE_CACHE_DAYS  # an article read this recently (same key) is not fetched again
    article_transport: object | None = None  # tests: an httpx transport for articles and discussions
    article_trusted: frozenset[str] = frozenset()  # tests: loopback host:port pairs exempt from the address check
    vocabulary: dict[str, str] | None = None  # synced into the tags table; None keeps the history's
    retention_days: int = 14
    transport: object | None = None  # an httpx transport (tests: httpx.MockTransport)
    wait: bool = True
    python_executor_factory: Callable | None = None  # tests: a stand-in remote executor per site
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))

    @classmethod
    def from_config(cls, config, **overrides) -> Options:
        """Options from a loaded `config.Config` (command-line values are already in it)."""
        return cls(
            db=str(config.db), data_dir=config.data_dir, sources=tuple(config.sources),
            configured=config.sources, parallel=config["parallel"], per_host=config["per_host"],
            channels=[deliver.Channel.from_config(entry) for entry in config["deliver"]],
            public_url=config["public_url"],
            judge=config.judge(), max_candidates=config["max_candidates"],
            vocabulary=config.vocabulary, retention_days=config["retention_days"], reuse_days=config["reuse_days"],
            article_cache_days=config["article_cache_days"], **overrides,
        )


@contextmanager
def refresh_lock(db_path: Path, wait: bool = True, on_wait=None):
    """One refresh at a time per history DB, whatever path reaches it (symlink, hard link, relative).

    An flock on the database file itself: it belongs to the file, not to a name, and is
    released if the process dies. (flock and SQLite's own fcntl locks do not interact on Linux.)
    """
    lock_path = Path(db_path).resolve()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RefreshBusy(f"another refresh is running on {db_path}") from None
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RefreshBusy(Exception):
    """Another refresh holds the lock and --no-wait was given."""


def refresh(options: Options) -> sync.SyncReport:
    """Run one refresh under the history DB's lock; return the sync report."""
    db_path = store.db_path(options.db)
    history = store.open_db(db_path)
    data_dir = Path(options.data_dir) if options.data_dir else db_path.parent
    report = options.reporter
    # Before the lock and the run record: an LLM model with no jail is refused here, with the fix.
    judge = options.judge = options.judge.but(
        executor=agent.choose_executor(options.judge.executor, options.judge.model, report.message))
    if judge.budget_usd is not None and models.cost_usd(judge.model, 1000, 1000) is None:
        report.message(f"budget_usd {judge.budget_usd:g} cannot be enforced: LiteLLM has no price for model "
                       f"{judge.model!r}, so its calls are counted but not costed")
    with refresh_lock(db_path, wait=options.wait,
                           on_wait=lambda: report.message("waiting for another refresh to finish...")):
        for folder in (data_dir / "sandboxes", data_dir / "raw"):
            prune(folder, options.retention_days)
        conn = history.conn
        if options.vocabulary is not None:
            schema.sync_tags(conn, options.vocabulary)
        schema.sync_sources(conn, [options.configured[slug] for slug in options.sources])
        started = time.monotonic()
        run_id, started_at = sync.start_run(conn, judge.model, judge.executor)
        report.start(run_id, list(options.sources))
        try:
            result = run(options, conn, run_id, started_at, data_dir, started)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):  # e.g. the disk is still full: the next refresh marks it
                sync.fail_run(conn, run_id, without_paths(describe(exc), data_dir), time.monotonic() - started)
            raise
        else:
            deliver_after(options, conn, result, started_at[:10])
        finally:
            report.stop()
    if result.digest:
        path = write_digest(data_dir / "digests", started_at, result.digest)
        report.message(f"digest: {path}")
    return result


def deliver_after(options: Options, conn, result: sync.SyncReport, day: str) -> None:
    """The day's digest to the channels due after a refresh: a channel that fails costs its delivery (the
    outbox says why, the next refresh or `newsreader deliver` tries again), never the run."""
    if not options.channels or result.status == "failed":
        return
    try:
        links = deliver.Links.of(options.public_url, store.db_path(options.db))
        for outcome in deliver.deliver(conn, options.channels, day, links=links):
            if outcome.status != "skipped":
                options.reporter.message(f"deliver {outcome.channel}: {outcome.status} ({outcome.detail})")
    except (sqlite3.Error, OSError) as exc:  # the outbox itself could not be written: said, the run stands
        options.reporter.message(f"warning: delivery not recorded: {one_line(str(exc))}")


@dataclass
class Run:
    """One run in progress: what every stage reads and adds to."""

    options: Options
    conn: sqlite3.Connection
    run_id: int
    started_at: str
    data_dir: Path
    started: float
    vocabulary: dict[str, str] = field(default_factory=dict)
    sites: list[agent.Site] = field(default_factory=list)
    failed: list[agent.SiteResult] = field(default_factory=list)  # sites that never reached the judge
    results: list[agent.SiteResult] = field(default_factory=list)
    fetch_s: dict[str, float] = field(default_factory=dict)
    budget: models.Budget | None = None  # what this refresh may still spend on model calls
    unreachable: set[str] = field(default_factory=set)  # sources whose page could not be fetched at all
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # ETag, Last-Modified
    votes: list[Vote] = field(default_factory=list)  # the reader's recent votes (feedback.db), newest first
    learned: Learner | None = None  # what the rules model learned from them
    embedder: Embedder | None = None  # what the learner embeds stories with (None: no embeddings)

    @property
    def box_dir(self) -> Path:
        return self.data_dir / "sandboxes" / str(self.run_id)

    def model(self):
        return models.make_model(self.options.judge.model, budget=self.budget, learned=self.learned,
                                **self.options.judge.model_options)


def run(options: Options, conn, run_id: int, started_at: str, data_dir: Path, started: float) -> sync.SyncReport:
    """The stages of one run, in order; each site that fails a stage is recorded and the others go on."""
    state = Run(options, conn, run_id, started_at, data_dir, started,
                vocabulary=dict(conn.execute("SELECT slug, description FROM tags ORDER BY rowid").fetchall()),
                budget=models.Budget(options.judge.budget_usd))
    for warning in models.option_warnings(options.judge.model, options.judge.model_options):
        options.reporter.message(f"warning: {warning}")
    # The reader's votes teach the judge: the rules model learns from them, an LLM reads them in its sandbox.
    try:
        state.votes = store.reader_votes(conn, store.feedback_path(store.db_path(options.db)), LEARN_VOTES,
                                         rules.ARTICLE_CHARS)
    except schema.StoreError as exc:  # the judge works without them; the reader is told why they were not used
        options.reporter.message(f"warning: {exc}: judging without your votes this run")
    if state.votes:
        options.reporter.message(f"judging with your {len(state.votes)} most recent votes (feedback.db)")
    learn_votes(state)
    read_pages(state)
    if options.fallback_snapshot is not None and options.snapshot is None and \
            state.unreachable == set(options.sources):
        options.reporter.message(f"*** no front page could be fetched (no network?): FALLING BACK to the snapshot "
                                 f"in {options.fallback_snapshot} ***")
        options.snapshot, state.failed, state.unreachable = options.fallback_snapshot, [], set()
        read_pages(state)
    judge_pages(state)
    return land(state, *collect_digest(state))


LEARN_VOTES = 500  # the most recent votes the rules model learns from at each refresh


def learn_votes(state: Run) -> None:
    """What the votes teach this run: over embeddings when there are any (cached in the history), else over
    words; an embedding model that fails costs the embeddings, not the run (said once)."""
    options = state.options
    try:
        state.embedder = make_embedder(options.judge.embeddings, options.judge.embedding_options)
        if state.embedder is not None:
            state.embedder.load(state.conn, [rules.vote_text(v) for v in state.votes])
        state.learned = rules.teach(state.votes, state.vocabulary, options.judge.profile, state.embedder,
                                    computing(options))
    except EmbeddingError as exc:
        options.reporter.message(f"warning: {exc}: learning from your votes without embeddings this run")
        state.embedder = None
        state.learned = rules.teach(state.votes, state.vocabulary, options.judge.profile, computing=computing(options))


def computing(options: Options) -> frozenset[str]:
    """The configured sources whose community keeps to computing (their kind's hint)."""
    return frozenset(slug for slug, source in options.configured.items() if source.kind.computing)


def votes_for(state: Run, stories: list) -> list[Vote]:
    """The votes an LLM judge sees beside a batch's stories when it chooses_votes: the nearest in meaning,
    at most sandbox.SANDBOX_VOTES (the most recent if the embedding model fails). The rules model learns
    from all of them."""
    bound = sandbox.SANDBOX_VOTES
    if not stories:
        return state.votes[:bound]
    try:
        near = nearest(state.embedder, [rules.vote_text(v) for v in state.votes],
                       [story_text(s.title, s.domain, s.tags) for s in stories], bound)
    except EmbeddingError as exc:
        state.options.reporter.message(f"warning: {exc}: the judge sees your most recent votes")
        return state.votes[:bound]
    return [state.votes[i] for i in near]


def chooses_votes(state: Run) -> bool:
    """Whether the votes an LLM judge sees are chosen for each batch's stories (there are more than it may
    see, and embeddings to choose by); else it sees the most recent."""
    return state.embedder is not None and len(state.votes) > sandbox.SANDBOX_VOTES \
        and state.options.judge.model not in models.BUILTIN_MODELS


def read_pages(state: Run) -> None:
    """Fetch (or read the snapshot of) each source's listing and parse it, `parallel` at once and politely;
    then preload each one's sandbox (in this thread: the history connection is this thread's)."""
    options = state.options
    client = sources.make_client(options.transport) if options.snapshot is None else None
    known = history.source_validators(state.conn)
    polite = sources.Politeness(options.per_host)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(options.parallel, len(options.sources))),
                                thread_name_prefix="fetch") as pool:
            pages = list(pool.map(lambda slug: read_page(state, slug, client, polite, known.get(slug)),
                                  options.sources))
    finally:
        if client is not None:
            client.close()
    for slug, page, parsed in pages:
        if parsed is None:
            continue
        if page.not_modified:  # the listing as it was: its stories again, from the history
            parsed = parse.Page(history.last_listing(state.conn, slug))
        add_site(state, slug, parsed)


def read_page(state: Run, slug: str, client, polite: sources.Politeness,
              validators: tuple[str | None, str | None] | None) -> tuple[str, sources.Page | None, parse.Page | None]:
    """One source's listing, fetched and parsed (in a fetch thread); a failure is recorded and costs this
    source alone, whatever its kind's parser raised."""
    options, report = state.options, state.options.reporter
    source = options.configured[slug]
    t0 = time.monotonic()
    try:
        if client is None:
            page = sources.read_snapshot(slug, options.snapshot)
        else:
            etag, modified = validators if validators and source.kind.conditional else (None, None)
            request = sources.Request(source.kind.accept, source.kind.content_types, etag, modified)
            with polite.hold(source.url):
                page = sources.fetch(slug, state.data_dir / "raw", url=source.url, client=client, request=request)
        if page.not_modified:
            report.stage(slug, "fetch", "ok", "not modified since the last fetch (HTTP 304): nothing to parse")
            parsed = parse.Page([])
        else:
            report.stage(slug, "fetch", "ok", str(page.path or page.url))
            parsed = parse_listing(source, page)
    except parse.SourceError as exc:
        stage = "parse" if isinstance(exc, parse.LayoutError) else "fetch"
        return fail_source(state, slug, stage, exc.reason, t0)
    except Exception as exc:  # a kind's parser (a plugin's) that broke: its source is lost, not the run
        return fail_source(state, slug, "parse", f"the {source.kind.name} parser failed: {describe(exc)}", t0)
    state.fetch_s[slug] = time.monotonic() - t0
    if page.etag or page.last_modified:
        state.validators[slug] = (page.etag, page.last_modified)
    return slug, page, parsed


def parse_listing(source: Source, page: sources.Page) -> parse.Page:
    """The listing through its kind's parser; LayoutError when it holds fewer stories than a listing of
    that kind has (whatever the parser itself checks)."""
    with LIBXML:  # one thread in libxml2 at a time
        parsed = source.kind.parse(source, page.body, page.content_type, page.url)
    found = len(parsed.stories) + len(parsed.refused)
    if found < source.kind.min_stories:
        raise parse.LayoutError(source.slug, f"only {found} stories on the listing (a {source.kind.name} listing "
                                             f"has at least {source.kind.min_stories}): not what its parser knows")
    return parsed


def fail_source(state: Run, slug: str, stage: str, reason: str, t0: float) -> tuple[str, None, None]:
    state.options.reporter.stage(slug, stage, "failed", reason)
    state.failed.append(agent.SiteResult(source=slug, error=reason, fetch_s=time.monotonic() - t0))
    if stage == "fetch":
        state.unreachable.add(slug)
    return slug, None, None


def add_site(state: Run, slug: str, parsed: parse.Page) -> None:
    """The source's sandbox from its parsed listing, capped at max_candidates; what was refused, said."""
    cap = state.options.max_candidates
    stories, refused = parsed.stories[:cap], list(parsed.refused)
    if len(parsed.stories) > cap:
        refused.append(("page", f"{len(parsed.stories) - cap} stories after the first {cap} not judged "
                                "(max_candidates)"))
    site = make_site(state, slug, stories)
    rejected = site.box.rejected
    rejected[:0] = refused
    state.sites.append(site)
    state.options.reporter.stage(slug, "parse", "ok", f"{len(site.stories)} stories"
                                 + (f" (the first; {parsed.beyond_cap} more not read: max_items)"
                                    if parsed.beyond_cap else "")
                                 + (f", {len(site.reused)} judged before" if site.reused else "")
                                 + (f", {len(rejected)} refused: {rejected[0][1]}" if rejected else ""))


def make_site(state: Run, source: str, stories: list) -> agent.Site:
    """The site's sandbox, holding only the stories to judge: one judged within reuse_days on the same
    basis (prompt, model, reader, vocabulary, its own words) is carried over, not asked again."""
    judge = state.options.judge
    bases = {s.source_id: prompt.basis(judge.served_model, judge.profile, state.vocabulary, s) for s in stories}
    earlier = history.reusable(state.conn, source, bases, days_ago(state.options.reuse_days)) \
        if state.options.reuse_days else {}
    fresh = [s for s in stories if s.source_id not in earlier]
    site = state.options.configured[source]
    box = sandbox.create(state.box_dir / f"{source}.db", source, state.run_id, state.started_at, fresh,
                         state.vocabulary, site)
    if not chooses_votes(state):  # else each batch gets the votes nearest its own stories (Site.votes_near)
        sandbox.add_votes(box, state.votes[:sandbox.SANDBOX_VOTES])
    return agent.Site(box, reused=[(s, earlier[s.source_id]) for s in stories if s.source_id in earlier],
                      basis=bases, cached=history.recent_articles(state.conn, [s for s in fresh if s.url],
                                                                  days_ago(state.options.article_cache_days)),
                      votes_near=functools.partial(votes_for, state) if chooses_votes(state) else None,
                      about=prompt.TaskSite(source, site.name, site.kind.computing), listing=site.kind.listing)


def embedding_usage(embedder: Embedder, usage: models.Usage) -> models.Usage:
    """The host's own model calls this run: the editor's note and the embedding model's (a LiteLLM one; the
    local model, on this machine, is no call to anyone)."""
    cost = None if usage.cost_usd is None or embedder.cost_usd is None else usage.cost_usd + embedder.cost_usd
    calls = 0 if embedder.model == LOCAL else embedder.calls
    return models.Usage(usage.llm_calls + calls, usage.input_tokens + embedder.tokens, usage.output_tokens, cost)


def days_ago(days: int) -> str:
    """The UTC time `days` ago, in the form runs.started_at and articles.fetched_at compare with."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - days * 86400))


def replay_file(options: Options) -> Path | None:
    """A snapshot's recorded articles and discussions, if it has them."""
    path = options.snapshot / "articles.warc.gz" if options.snapshot is not None else None
    return path if path is not None and path.is_file() else None


def read_site(state: Run, site: agent.Site, replay: Path | None) -> None:
    """Read what the site's candidates link to and what their discussions say, into its sandbox (`replay`:
    the snapshot's recorded responses). Runs in the site's own judging thread: one site's slow articles
    never hold up the other's judge."""
    options, box = state.options, site.box
    if not box.candidates or (options.snapshot is not None and replay is None):
        return
    t0 = time.monotonic()
    kind = options.configured[box.source].kind
    reading = articles.read(kind, list(box.candidates.values()), cached=site.cached, replay=replay,
                            transport=options.article_transport, trusted=options.article_trusted)
    site.add_reading(reading)
    read = sum(1 for a in reading.articles.values() if a.status == "ok")
    options.reporter.stage(box.source, "read", "ok",
                           f"{read} of {len(box.candidates)} articles, {len(reading.discussions)} discussions "
                           f"({len(site.cached)} articles cached), {time.monotonic() - t0:.1f} s")


def judge_pages(state: Run) -> None:
    """One agent per site, in parallel (or one at a time with the tests' stand-in executor)."""
    options, report = state.options, state.options.reporter
    replay = replay_file(options)
    if options.snapshot is not None and replay is None and any(s.box.candidates for s in state.sites):
        report.message(f"articles were not available (no articles.warc.gz in {options.snapshot}): "
                       "judging from the front page alone")
    if state.sites:
        kwargs = dict(vocabulary=state.vocabulary, judge=options.judge, step_reporter=report.step,
                      before=lambda site: read_site(state, site, replay))
        if options.python_executor_factory is not None:
            before = kwargs.pop("before")
            state.results = []
            for site in state.sites:
                before(site)
                state.results.append(agent.judge_site(site, state.model(),
                                                      python_executor=options.python_executor_factory(), **kwargs))
        else:
            state.results = agent.judge_sites(state.sites, state.model, parallel=options.parallel, **kwargs)
    for result in state.results:
        result.fetch_s = state.fetch_s.get(result.source, 0.0)
        report.stage(result.source, "judge", result.status,
                     result.error or f"{result.steps} step(s), {result.llm_calls} model call(s), "
                     f"{result.input_tokens + result.output_tokens} tokens, {result.judge_s:.1f} s"
                     + (f"; {result.note}" if result.note else ""))
        if result.status == "ok":
            problems = result.problems or []
            report.stage(result.source, "validate", "failed" if problems else "ok", "; ".join(problems))


def collect_digest(state: Run) -> tuple[str | None, list, models.Usage]:
    """The editor's note (on what was newly judged) and the cross-posts, from the sites whose sandboxes
    are sound; the note's model call is accounted like a site's."""
    sound = [r.site for r in state.results if r.status == "ok" and not r.problems]
    usage = models.Usage()
    note = None
    if any(site.box.candidates for site in sound):
        model = state.model()
        try:
            note, tokens = collect.editor_note(model, [site.box for site in sound])
        except Exception as exc:  # the digest falls back to the host's deterministic note
            state.options.reporter.message(f"collector: editor's note failed ({one_line(str(exc))}); "
                                           "using the plain digest")
        else:
            if tokens is not None:
                usage.llm_calls, usage.input_tokens, usage.output_tokens = 1, tokens.input_tokens, tokens.output_tokens
                usage.cost_usd = models.model_cost(model, tokens.input_tokens, tokens.output_tokens)
    return note, collect.cross_posts(story for site in sound for story in site.stories), usage


def land(state: Run, note: str | None, links: list, collector: models.Usage) -> sync.SyncReport:
    """Merge every site into history in one transaction; remove the sandboxes that landed."""
    report, judge_settings = state.options.reporter, state.options.judge
    outcomes = state.failed + state.results
    for outcome in outcomes:  # run records are published: no server paths in them
        outcome.error = outcome.error and without_paths(outcome.error, state.data_dir)
    fetched = [a for site in state.sites if site.reading for a in site.reading.fetched]
    if fetched and state.options.snapshot is None:  # the raw responses, replayable with --snapshot
        articles.write_warc(state.data_dir / "raw" / state.started_at[:10] / "articles.warc.gz", fetched)
    if state.embedder is not None:  # the embedding calls count in the run's totals, like the editor's note
        collector = embedding_usage(state.embedder, collector)
    result = sync.merge(state.conn, state.run_id, outcomes, model=judge_settings.model,
                        executor=judge_settings.executor, note=note, links=links, started=state.started,
                        collector=collector)
    for outcome in state.results:
        landed = result.sites.get(outcome.source) == "ok"
        if outcome.status == "ok":
            report.stage(outcome.source, "sync", "ok" if landed else "failed",
                         f"run {state.run_id}" if landed else "kept in " + str(outcome.site.box.path))
        if landed:
            outcome.site.box.path.unlink(missing_ok=True)
    save_validators(state, {slug for slug, status in result.sites.items() if status == "ok"})
    if state.embedder is not None:
        with schema.transaction(state.conn):  # a cache: what this run embedded is not embedded again
            state.embedder.save(state.conn)
    if state.box_dir.is_dir() and not any(state.box_dir.iterdir()):
        state.box_dir.rmdir()
    return result


def save_validators(state: Run, landed: set[str]) -> None:
    """The ETag / Last-Modified of each listing that landed, sent back next time so an unchanged one answers
    304. Only of those that landed: a listing whose stories were lost must be fetched whole again."""
    with schema.transaction(state.conn):
        for slug, (etag, modified) in state.validators.items():
            if slug in landed:
                state.conn.execute("UPDATE sources SET etag = ?, last_modified = ? WHERE slug = ?",
                                   [(etag or "")[:500] or None, (modified or "")[:100] or None, slug])


def write_digest(folder: Path, started_at: str, body: str) -> Path:
    """data/digests/YYYY-MM-DD.md: the day's digest (a later run the same day replaces it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started_at[:10]}.md"
    path.write_text(body, encoding="utf-8")
    return path


def prune(folder: Path, days: int) -> None:
    """Remove entries older than `days` (raw page folders, kept sandboxes of failed runs)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - days * 86400
    for entry in folder.iterdir():
        if entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
