"""`make bench`: measure newsreader offline and write BENCHMARKS.md.

Each section prints its figures as it goes. Times are medians of repeats; where a
comparison exists (lxml parsers vs selectolax, 1 day vs 10 years of history) the ratio
within this one run is reported, since absolute times depend on the machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402

from pipeline import agent, models, parse, prompt, refresh, rules, sandbox, schema, sqltool, store, sync  # noqa: E402
from pipeline.settings import Judge

from . import local, speed_limit, synth  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "fixtures" / "snapshot"
PAGES = sorted((ROOT / "tests" / "fixtures" / "html").glob("*.html"))
CACHE = ROOT / "data" / "bench"  # synthetic histories, reused between runs (git-ignored)


@dataclass
class Row:
    section: str
    metric: str
    value: float
    unit: str
    goal: str
    met: bool | None
    ratio: str = ""
    note: str = ""


ROWS: list[Row] = []


def record(section, metric, value, unit, goal="", met=None, ratio="", note=""):
    ROWS.append(Row(section, metric, value, unit, goal, met, ratio, note))
    flag = "" if met is None else ("  ok" if met else "  MISSED")
    print(f"  {metric}: {value:g} {unit}{'  (goal ' + goal + ')' if goal else ''}{flag} {ratio}", flush=True)


def median_time(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def percentile(values, p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# --- 1. LLM economy -------------------------------------------------------------------------


ECONOMY_MODEL = "openai/gpt-4.1-mini"  # priced in LiteLLM's bundled cost map


def llm_economy(tmp: Path) -> None:
    print(f"1. LLM economy ({ECONOMY_MODEL} via LiteLLM -> loopback stub answering with the rules' code; "
          "tokens counted by its tokenizer, USD from LiteLLM's cost map)")
    import litellm

    sys.path.insert(0, str(ROOT))
    from tests.helpers import with_new_stories
    from tests.stub_llm import StubLLM, completion

    def reply(body):
        messages = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else " ".join(
            part.get("text", "") for part in m["content"])} for m in body["messages"]]
        prompt_tokens = litellm.token_counter(model="gpt-4.1-mini", messages=messages)
        text = "\n".join(m["content"] for m in messages)
        if prompt.CANDIDATES_MARKER not in text:  # the collector's editor's note
            answer = "Today's stories lean towards systems and security."
        else:
            answer = f"Thought: judge every candidate.\n<code>\n{rules.code_for(text)}</code>"
        return completion(answer, prompt_tokens, litellm.token_counter(model="gpt-4.1-mini", text=answer))

    from tests.helpers import snapshot_with_articles

    read = snapshot_with_articles(tmp / "llm" / "snapshot-read")
    changed = tmp / "llm" / "snapshot-10-new"
    shutil.copytree(read, changed)
    with_new_stories(changed, 10)
    days = [("day 1 (a new history)", read), ("day 2 (the same front pages)", read),
            ("day 2 (10 new stories on HN)", changed)]
    db = tmp / "llm" / "news.db"
    with StubLLM([reply]) as stub:
        for label, snapshot in days:
            before = len(stub.requests)
            report = refresh.refresh(refresh.Options(db=str(db), snapshot=snapshot, judge=Judge(
                model=ECONOMY_MODEL, model_options={"api_base": stub.api_base, "api_key": "x"})))
            conn = sqlite3.connect(db)
            tin, tout, cost, calls = conn.execute(
                "SELECT input_tokens, output_tokens, cost_usd, llm_calls FROM runs WHERE id = ?",
                [report.run_id]).fetchone()
            fresh = report.judged - report.reused
            economy_day(label, calls, len(stub.requests) - before, fresh, report, tin, tout)
        sizes = [litellm.token_counter(model="gpt-4.1-mini", messages=[
            {"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else " ".join(
                part.get("text", "") for part in m["content"])} for m in body["messages"]])
            for body in stub.requests if prompt.CANDIDATES_MARKER in json.dumps(body)]
    budget = Judge().reading.batch_tokens
    record("LLM economy", "largest prompt of one call (a batch of cards)", max(sizes), "tokens",
           f"≤ {budget} (reading.batch_tokens)", max(sizes) <= budget, note=f"{len(sizes)} calls judged cards")


def economy_day(label: str, calls: int, requests: int, fresh: int, report, tin: int, tout: int) -> None:
    """One day of the LLM economy: calls, tokens per story judged anew, and USD for two priced models."""
    record("LLM economy", f"{label}: model calls (both sites + editor's note)", calls, "calls",
           note=f"{requests} HTTP requests; {fresh} of {report.judged} stories judged anew, "
                f"{report.reused} carried over; every story with its card (articles and comments read)")
    record("LLM economy", f"{label}: prompt tokens per story judged anew", round(tin / fresh) if fresh else 0,
           "tokens", "≤ 600" if fresh else "", (tin / fresh <= 600) if fresh else None,
           note=f"{tin} prompt + {tout} completion in all")
    unchanged = label.startswith("day 2 (the same")
    for model in ("anthropic/claude-haiku-4-5", "openai/gpt-4.1-mini"):
        usd = models.cost_usd(model, tin, tout) or 0.0
        record("LLM economy", f"{label}: USD with {model.split('/')[1]}", round(usd, 5), "USD",
               "0 on an unchanged page" if unchanged else "", usd == 0 if unchanged else None,
               note="these tokens at LiteLLM's bundled prices")


# --- 1b. Reading articles ----------------------------------------------------------------------


def reading() -> None:
    print("1b. Reading articles (trafilatura on the 61 shared benchmark pages; fetching from loopback servers)")
    import gzip
    import random
    import re
    import threading
    from collections import Counter
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pipeline import articles

    folder = ROOT / "tests" / "fixtures" / "articles"
    truth = json.loads((folder / "ground-truth.json").read_text())

    def shingles(text):
        tokens = re.findall(r"\w+|[^\w\s]", (text or "").lower())
        return Counter(tuple(tokens[i:i + 4]) for i in range(max(1, len(tokens) - 3)))

    tp = fp = fn = 0
    times = []
    pages = []
    for path in sorted(folder.glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes())
        pages.append(html)
        t0 = time.perf_counter()
        text = articles.extract(html, url=truth[path.name.split(".")[0]]["url"])["text"]
        times.append(time.perf_counter() - t0)
        got, want = shingles(text), shingles(truth[path.name.split(".")[0]]["articleBody"])
        common = sum((got & want).values())
        tp, fp, fn = tp + common, fp + sum(got.values()) - common, fn + sum(want.values()) - common
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall)
    record("Reading", f"extraction F1 on {len(pages)} real article pages", round(f1, 3), "F1", "≥ 0.95", f1 >= 0.95,
           note=f"precision {precision:.3f}, recall {recall:.3f}; the benchmark's 4-token shingles")
    median = statistics.median(times) * 1000
    record("Reading", "extraction time a page (median)", round(median, 1), "ms", "≤ 15", median <= 15,
           note=f"p95 {percentile(times, 95) * 1000:.1f} ms; one thread in libxml2 at a time (text.LIBXML)")

    rng = random.Random(7)
    delays = {f"127.0.0.{i + 2}": rng.uniform(0, 1) for i in range(55)}  # 55 hosts, each answering late

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(delays[self.server.server_address[0]])
            body = pages[hash(self.server.server_address[0]) % len(pages)]
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    servers = [ThreadingHTTPServer((host, 0), Slow) for host in delays]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        urls = [f"http://{s.server_address[0]}:{s.server_address[1]}/article" for s in servers]
        t0 = time.perf_counter()
        found = articles.fetch_all(urls, trusted=frozenset(u.split("/")[2] for u in urls))
        wall = time.perf_counter() - t0
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    ok = sum(1 for a in found.values() if a.status == "ok")
    slowest = max(delays.values())
    record("Reading", "article stage: 55 articles, 55 hosts, 0-1 s delays", round(wall, 2), "s",
           "≤ 1.5 × slowest", wall <= 1.5 * slowest,
           ratio=f"{wall / slowest:.2f} × the slowest response ({slowest:.2f} s)",
           note=f"{ok} of 55 read; {articles.CONCURRENCY} requests in flight, {articles.PER_HOST} per host; "
                "each site reads in its own judging thread, so no site's judge waits on the other's articles")


# --- 2. Parse speed ---------------------------------------------------------------------------


def learning() -> None:
    print("1c. Learning from votes (the rules model's logistic regressions, fitted at every refresh)")
    from pipeline import evaluate, learn

    labels = evaluate.load_labels(ROOT / "tests" / "fixtures" / "labels.csv")
    truth = json.loads((ROOT / "tests" / "fixtures" / "articles" / "ground-truth.json").read_text())
    texts = [page["articleBody"][:rules.ARTICLE_CHARS] for _, page in sorted(truth.items())]
    votes = [learn.Vote(f"{label.title} ({i // len(labels)})", label.domain, label.native_tags, label.relevant,
                        label.tags or None, label.source, "story", texts[i % len(texts)])
             for i, label in enumerate(labels * 5)][:refresh.LEARN_VOTES]
    conn = sqlite3.connect(":memory:")
    schema.apply_schema(conn)  # the vocabulary a refresh reads from its history
    vocabulary = [slug for (slug,) in conn.execute("SELECT slug FROM tags ORDER BY rowid")]
    seconds = median_time(lambda: rules.teach(votes, vocabulary), repeat=3)
    record("Learning", f"fit on {len(votes)} votes, each with its article read (relevance and one model per tag)",
           round(seconds, 2), "s",
           "≤ 3", seconds <= 3, note="paid once per refresh, before any site is judged")
    learning_over_meaning(votes, vocabulary, labels)


def learning_over_meaning(votes, vocabulary, labels) -> None:
    """Embedding 1,000 stories with the local model (a cold memo, the model loaded), and fitting 500 votes."""
    from pipeline import embeddings

    if not embeddings.local_available():
        print("   (the local extra is not installed: no embedding rows)")
        return
    embedder = embeddings.make_embedder("local")
    embedder.vectors(["warm up: the model loads once per refresh"])
    texts = [embeddings.story_text(f"{label.title} ({i})", label.domain, label.native_tags)
             for i, label in enumerate((labels * 10)[:1000])]
    started = time.perf_counter()
    embedder.vectors(texts)
    seconds = time.perf_counter() - started
    record("Learning", "embed 1,000 stories (all-MiniLM-L6-v2, CPU, never embedded before)", round(seconds, 2), "s",
           "≤ 30", seconds <= 30, note="each text once: later runs read the history's cache")
    fit = median_time(lambda: rules.teach(votes, vocabulary, embedder=embedder), repeat=1)
    steps = embedder.tunings[-1][1] if embedder.tunings else 0
    record("Learning", f"fit on {len(votes)} votes over embeddings (the model tuned on them, {steps} steps; "
           "relevance and one model per tag)", round(fit, 2), "s", "≤ 90", fit <= 90,
           note="once per refresh with 20 or more votes; the word features are not fitted when the meaning decides")


def parse_speed() -> None:
    print("2. Parse speed (lxml + compiled XPath, selectolax beside it as the limit)")
    worst = 0.0
    for page in PAGES:
        html = page.read_text(encoding="utf-8")
        source = "hn" if page.name.startswith("hn") else "lobsters"
        ours = median_time(lambda source=source, html=html: parse.parse(source, html), 15) * 1000
        limit = median_time(lambda source=source, html=html: getattr(speed_limit, source)(html), 15) * 1000
        worst = max(worst, ours)
        record("Parse", f"{page.name}", round(ours, 2), "ms/page", "≤ 15", ours <= 15,
               ratio=f"{ours / limit:.0f}× selectolax ({limit:.2f} ms)")
    htmls = [(("hn" if p.name.startswith("hn") else "lobsters"), p.read_text(encoding="utf-8")) for p in PAGES]
    t0 = time.perf_counter()
    for i in range(730):
        source, html = htmls[i % len(htmls)]
        parse.parse(source, html)
    year = time.perf_counter() - t0
    record("Parse", "re-parse a year of daily snapshots (730 pages)", round(year, 2), "s", "≤ 10", year <= 10)


# --- 3. Sandbox overhead ----------------------------------------------------------------------


def sandbox_overhead(tmp: Path) -> None:
    print("3. Sandbox overhead (local executor)")
    stories = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())
    path = tmp / "box" / "hn.db"
    create = median_time(lambda: sandbox.create(path, "hn", 1, "2026-11-25T00:00:00Z", stories), 15)
    tool = sqltool.SqlTool(str(path))
    call = median_time(lambda: tool("SELECT count(*) FROM stories"), 50)

    def round_trip():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        (tmp / "box" / "copy.db").write_bytes(base64.b64decode(data))

    trip = median_time(round_trip, 15)
    record("Sandbox", "create sandbox DB (30 candidates)", round(create * 1000, 2), "ms")
    record("Sandbox", "one sql tool call", round(call * 1000, 2), "ms")
    record("Sandbox", f"DB bytes round trip (base64, {path.stat().st_size // 1024} KB)", round(trip * 1000, 2), "ms")
    total = create + call + trip
    record("Sandbox", "total per site", round(total * 1000, 1), "ms", "≤ 300", total <= 0.3)


def jail_overhead() -> None:
    print("3a. Jail executor: start-up and per-step overhead against in-process (local)")
    from smolagents.local_python_executor import LocalPythonExecutor

    from pipeline import jail

    stories = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())
    cold, overlapped, steps_jail = [], [], []
    with tempfile.TemporaryDirectory() as work:
        box = sandbox.create(Path(work) / "hn.db", "hn", 1, "2026-11-25T00:00:00Z", stories)
        for model_latency in [0.0] * 5 + [0.5] * 3:
            t0 = time.perf_counter()
            executor = jail.JailExecutor([], step_timeout=60)
            try:
                executor.send_tools({"sql": None, "final_answer": None})
                agent.ship_in(executor, box)
                time.sleep(model_latency)  # the model's first call, during which the jail finishes starting
                t1 = time.perf_counter()
                executor("print(sql('SELECT count(*) FROM stories'))")
                (cold.append(time.perf_counter() - t0) if not model_latency
                 else overlapped.append(time.perf_counter() - t1))
                if not model_latency:
                    steps_jail.append(median_time(lambda step=executor: step("x = 1"), 30))
            finally:
                executor.cleanup()
    local = LocalPythonExecutor([], timeout_seconds=30)
    local.send_tools({})
    step_local = median_time(lambda: local("x = 1"), 30)
    start, waited = statistics.median(cold), statistics.median(overlapped)
    per_step = (statistics.median(steps_jail) - step_local) * 1000
    record("Sandbox", "jail: start to first agent step (bwrap, worker imports, DB in, tools in, one step)",
           round(start, 3), "s", "≤ 0.3", start <= 0.3,
           note="the jailed worker imports smolagents for LocalPythonExecutor (defence in depth), most of "
                "it; a refresh posts tools and DB without waiting, so this runs during the model's first call")
    record("Sandbox", "jail: wait for the first step after a 0.5 s model call", round(waited * 1000, 1), "ms",
           ratio="start-up hidden behind the model call")
    record("Sandbox", "jail: per-step overhead vs local (pipe round trip)", round(per_step, 2), "ms", "≤ 20",
           per_step <= 20, ratio=f"local step {step_local * 1000:.2f} ms")


def container_start() -> None:
    print("3b. Docker executor: refresh start to first agent step, warm image")
    from smolagents.default_tools import FinalAnswerTool

    from pipeline import container

    try:
        tag = container.build_image()
    except container.ContainerError as exc:
        record("Sandbox", "docker: start to first agent step", float("nan"), "s", "≤ 3", False,
               note=f"Docker unavailable: {exc}")
        return
    stories = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())
    times = []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(3):
            t0 = time.perf_counter()
            box = sandbox.create(Path(work) / "hn.db", "hn", 1, "2026-11-25T00:00:00Z", stories)
            executor = container.SandboxContainerExecutor([], image=tag)
            try:
                agent.ship_in(executor, box)
                executor.send_tools({"sql": sqltool.SqlTool(), "final_answer": FinalAnswerTool()})
                times.append(time.perf_counter() - t0)
            finally:
                executor.cleanup()
    start = statistics.median(times)
    record("Sandbox", "docker: start to first agent step (container, kernel, DB in, tools in)", round(start, 2),
           "s", "≤ 3", start <= 3,
           note=f"image {tag}; mostly the kernel gateway's own start-up inside the container (rfc3987-syntax, "
                "which compiled a grammar at import for ~1.5 s, is left out of the image)")


# --- 4. Sync at scale ---------------------------------------------------------------------------


def history(days: int) -> Path:
    """A cached synthetic history of `days` days (rebuilt when the generator or schema changes)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256((Path(synth.__file__).read_text() + schema.schema_sql()).encode()).hexdigest()[:10]
    path = CACHE / f"history-{days}d-{stamp}.db"
    if not path.exists():
        for old in CACHE.glob(f"history-{days}d-*.db*"):
            old.unlink()
        print(f"  generating {days} days of synthetic history ...", flush=True)
        counts = synth.generate(path, days)
        print(f"  {counts}", flush=True)
    return path


def judged_templates(tmp: Path) -> list[agent.SiteResult]:
    out = []
    for source in ("hn", "lobsters"):
        box = sandbox.create(tmp / "tpl" / f"{source}.db", source, 0, "2026-11-25T00:00:00Z",
                             parse.parse(source, (SNAPSHOT / f"{source}.html").read_text()))
        result = agent.judge_site(agent.Site(box), models.make_model("rules"), vocabulary=schema.reference_vocabulary())
        assert result.status == "ok", result.error
        out.append(result)
    return out


def sync_at_scale(tmp: Path, sizes: dict[str, int]) -> Path:
    print("4. Sync into a growing history")
    sys.path.insert(0, str(ROOT))
    from tests.sandboxes import clone_for_run

    templates = judged_templates(tmp)
    medians = {}
    for label, days in sizes.items():
        source_db = history(days)
        db = tmp / f"sync-{days}.db"
        shutil.copy(source_db, db)
        conn = store.connect(db)
        times = []
        for i in range(7):
            run_id, _ = sync.start_run(conn, "rules", "local")
            results = [clone_for_run(t, tmp / f"sync-{days}-{i}", run_id) for t in templates]
            t0 = time.perf_counter()
            report = sync.merge(conn, run_id, results, model="rules", executor="local")
            times.append(time.perf_counter() - t0)
            assert report.status == "ok", report.errors
        conn.close()
        medians[label] = statistics.median(times)
        size = source_db.stat().st_size / 1e6
        record("Sync", f"sync one run (55 stories) into {label} of history", round(medians[label] * 1000, 1), "ms",
               "≤ 100", medians[label] <= 0.1, ratio=f"{medians[label] / medians[next(iter(sizes))]:.2f}× 1 day",
               note=f"DB {size:.0f} MB")
        db.unlink()
    largest = list(sizes)[-1]
    growth = medians[largest] / medians[next(iter(sizes))]
    record("Sync", f"growth of sync time, {largest} vs 1 day", round(growth, 2), "×", "≈ 1 (flat)", growth < 2)
    return history(sizes[largest])


# --- 5. Queries ---------------------------------------------------------------------------------


def queries(db: Path, tmp: Path) -> None:
    print("5. Pages, canned queries and FTS through Datasette's in-process client (as `newsreader serve` runs it)")
    from pipeline import serve

    work = tmp / "news.db"
    shutil.copy(db, work)
    ds = serve.app(work)
    conn = sqlite3.connect(work)
    story = conn.execute("SELECT story_id FROM sightings ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    day = conn.execute("SELECT substr(started_at, 1, 10) FROM runs ORDER BY id DESC LIMIT 1 OFFSET "
                       "(SELECT min(100, count(*) / 2) FROM runs)").fetchone()[0]
    conn.close()
    paths = {
        "the day's page /digest (its queries + template)": "/digest",
        f"a past day's page /digest/{day}": f"/digest/{day}",
        "digest": "/news/digest.json?_shape=array",
        "digest (date)": f"/news/digest.json?_shape=array&date={day}",
        "digest_feed": "/news/digest_feed.json?_shape=array",
        "story_history": f"/news/story_history.json?_shape=array&story_id={story}",
        "trending_tags": "/news/trending_tags.json?_shape=array",
        "runs_health": "/news/runs_health.json?_shape=array",
        "search (FTS)": "/news/search.json?_shape=array&q=sqlite+kernel",
        "stories table search (FTS)": "/news/stories.json?_shape=array&_search=compiler",
    }

    async def measure():
        out = {}
        for name, path in paths.items():
            times = []
            for _ in range(25):
                t0 = time.perf_counter()
                response = await ds.client.get(path)
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200, (path, response.text[:300])
            out[name] = times
        return out

    for name, times in asyncio.run(measure()).items():
        p50, p95 = percentile(times, 50) * 1000, percentile(times, 95) * 1000
        goal, limit = ("≤ 20", 20) if "FTS" in name else ("≤ 50", 50)
        record("Queries", f"{name} p50 / p95", round(p95, 1), "ms (p95)", goal, p95 <= limit,
               ratio=f"p50 {p50:.1f} ms")
    paths = {"digest_feed.atom (query + Atom rendering)": "/news/digest_feed.atom"}
    entries = len(asyncio.run(ds.client.get("/news/digest_feed.json?_shape=array")).json())
    for name, times in asyncio.run(measure()).items():
        record("Queries", f"{name} p50 / p95", round(percentile(times, 95) * 1000, 1), "ms (p95)",
               ratio=f"p50 {percentile(times, 50) * 1000:.1f} ms",
               note=f"{entries} entries: a synthetic run judges ~550 stories, a real digest has ~40; "
                    "datasette-atom's date parsing (dateutil) per entry dominates")


# --- 6. End to end ------------------------------------------------------------------------------


def cli_start() -> None:
    print("7a. Command line start-up")
    import re as regex

    totals = []
    for _ in range(5):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pipeline.cli"],
                              capture_output=True, text=True, check=True)
        totals.append(sum(int(m.group(1)) for m in regex.finditer(r"^import time:\s+(\d+) \|", done.stderr,
                                                                   regex.MULTILINE)) / 1000)
    imports = statistics.median(totals)
    record("End to end", "newsreader --help: imports", round(imports, 1), "ms", "≤ 150", imports <= 150,
           ratio="smolagents, LiteLLM and Datasette are not imported")


def end_to_end(tmp: Path) -> None:
    print("6. End to end: `newsreader refresh --snapshot ... --model rules` (a new process each time)")
    exe = str(Path(sys.executable).with_name("newsreader"))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([exe, "refresh", "-q", "--snapshot", str(SNAPSHOT), "--model", "rules",
                        "--db", str(tmp / "e2e" / "news.db")], check=True, cwd=tmp)
        times.append(time.perf_counter() - t0)
    wall = statistics.median(times)
    imports = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import pipeline.refresh, "
                              "sys; print(time.perf_counter()-t, 'litellm' in sys.modules)"],
                             capture_output=True, text=True, check=True).stdout.split()
    record("End to end", "refresh wall time, both sites", round(wall, 2), "s", "≤ 5", wall <= 5,
           note=f"imports {float(imports[0]):.2f} s; litellm imported: {imports[1]}")


def many_sources(tmp: Path) -> None:
    """One refresh of 2, 10 and 50 sources (HN, Lobsters and real feeds) from a loopback server, rules model,
    jail: its wall time and model calls, to show how a refresh grows with its sources."""
    print("6b. Many sources: HN, Lobsters and N feeds from a loopback server, one refresh each")
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from pipeline import config as config_module
    from pipeline import plugins
    from pipeline.sites import Source

    feeds = sorted(p for p in (ROOT.parent / "shared" / "corpus" / "feeds").glob("*") if p.suffix in (".xml", ".json")
                   and not any(bad in p.name for bad in ("truncated", "nbsp", "undeclared", "leading")))
    if not feeds:
        print("   (no ../shared/corpus/feeds here: no rows)")
        return
    served = tmp / "served"
    served.mkdir()
    for page in ("hn.html", "lobsters.html"):
        shutil.copy(SNAPSHOT / page, served / page)
    for i in range(48):
        shutil.copy(feeds[i % len(feeds)], served / f"feed{i}{feeds[i % len(feeds)].suffix}")
    handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    kind = plugins.site_kinds()["feed"]
    offline = httpx.MockTransport(lambda request: httpx.Response(404))  # the items' links: never the internet
    try:
        for count in (2, 10, 50):
            configured = config_module.defaults().all_sources()
            configured = {slug: Source(slug, found.kind, f"{base}/{slug}.html", found.name, found.label)
                          for slug, found in configured.items()}
            for i in range(count - 2):
                name = next(served.glob(f"feed{i}.*")).name
                configured[f"feed{i}"] = Source(f"feed{i}", kind, f"{base}/{name}", f"Feed {i}", f"F{i}", 30)
            options = refresh.Options(db=str(tmp / f"sources-{count}" / "news.db"), sources=tuple(configured),
                                      configured=configured, article_transport=offline)
            t0 = time.perf_counter()
            report = refresh.refresh(options)
            wall = time.perf_counter() - t0
            if report.errors:
                print("   ", "; ".join(report.errors)[:600])
            record("Sources", f"refresh of {count} sources (loopback, rules model, jail)", round(wall, 2), "s",
                   note=f"{report.llm_calls} model calls, {report.stories} stories, {report.status} "
                        f"({report.rejected} items refused: duplicate GUIDs); {options.parallel} sources at once")
    finally:
        httpd.shutdown()


# --- 7. Serving -----------------------------------------------------------------------------------


def serving(db: Path, tmp: Path) -> None:
    print("7. Serving: digest JSON from a real `newsreader serve` on loopback")
    work = tmp / "serve" / "news.db"
    work.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(db, work)
    port = local.free_port()
    exe = str(Path(sys.executable).with_name("newsreader"))
    proc = subprocess.Popen([exe, "serve", "--db", str(work), "--port", str(port)], cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/news/digest.json?_shape=array"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        count, workers, limit_s = 400, 4, 30.0
        done, errors = [0], [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + limit_s

        def worker():
            with httpx.Client(timeout=10) as client:
                while time.monotonic() < stop_at:
                    with lock:
                        if done[0] >= count:
                            return
                        done[0] += 1
                    if client.get(url).status_code != 200:
                        errors[0] += 1

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    record("Serving", f"digest JSON, {workers} concurrent clients", round(done[0] / elapsed, 1), "req/s",
           note=f"{done[0]} requests in {elapsed:.1f} s (cap {count} or {limit_s:.0f} s), {errors[0]} errors")


# --- report ----------------------------------------------------------------------------------------


def write_report(path: Path, seconds: float) -> None:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (benchmarks/run.py), offline. Medians of repeats; ratios are within this run.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}. Whole run: {seconds:.0f} s.",
        "",
        "| section | metric | value | goal | met | ratio / notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        notes = "; ".join(x for x in (r.ratio, r.note) if x)
        lines.append(f"| {r.section} | {r.metric} | {r.value:g} {r.unit} | {r.goal} | {met} | {notes} |")
    missed = [r for r in ROWS if r.met is False]
    lines += ["", "## Goals missed", ""]
    lines += [f"- {r.section}: {r.metric} = {r.value:g} {r.unit} (goal {r.goal}). Why: {r.note or 'see the row'}."
              for r in missed] or ["None."]
    carried = local.carried_section(path)  # `make bench-local` writes that section; this run keeps it
    path.write_text("\n".join(lines) + "\n" + (f"\n{carried}" if carried else ""))


def main() -> None:
    started = time.perf_counter()
    quick = "--quick" in sys.argv  # a smoke run: 30 days instead of 10 years
    sizes = {"1 day": 1, "1 year": 365, "10 years": 3650} if not quick else {"1 day": 1, "30 days": 30}
    with tempfile.TemporaryDirectory(prefix="newsreader-bench-") as scratch:
        tmp = Path(scratch)
        llm_economy(tmp)
        reading()
        learning()
        parse_speed()
        sandbox_overhead(tmp)
        jail_overhead()
        container_start()
        largest = sync_at_scale(tmp, sizes)
        queries(largest, tmp)
        cli_start()
        end_to_end(tmp)
        many_sources(tmp)
        serving(largest, tmp)
    out = ROOT / ("BENCHMARKS.md" if not quick else "data/bench/BENCHMARKS-quick.md")
    write_report(out, time.perf_counter() - started)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
