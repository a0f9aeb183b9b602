"""A synthetic history of daily runs, built through schema.sql with realistic sizes.

    python -m benchmarks.synth --years 10 --db /tmp/news-10y.db

Per day: one run over both sites, ~55 new stories (titles 20-120 characters, the
length spread of real front pages), each story seen on ~10 consecutive runs as it
climbs and falls (so ~550 sightings and judgments a day), 1-3 tags per judgment,
a few cross-posts and a digest. Ten years is ~3,650 runs, ~200k stories and ~2M
sightings. Every row goes through the real constraints and triggers.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import config, schema, store

WORDS = [
    "rust", "python", "sqlite", "kernel", "compiler", "database", "browser", "security", "linux", "network",
    "memory", "cache", "agent", "model", "release", "design", "history", "startup", "funding", "hardware", "chip",
    "science", "space", "query", "index", "async", "thread", "garbage", "collector", "protocol", "encryption",
    "container", "cloud", "deploy", "terminal", "editor", "language", "type", "system", "performance", "latency",
    "storage", "stream", "parser", "graph", "vector", "search", "open", "source", "tool", "library", "framework",
    "build", "test",
]
TAGS = [
    "ai", "programming", "python", "rust", "go", "javascript", "web", "databases", "devops", "security", "systems",
    "hardware", "science", "business", "culture",
]
NEW_PER_DAY = 55
DAYS_ON_PAGE = 10


def token(i: int) -> str:
    """The i-th word of a made-up language: rank 1 is the most common."""
    letters, out = "etaoinshrdlucmfwypvbgkjqxz", ""
    i = i * 7919 + 11
    while i:
        i, r = divmod(i, 26)
        out += letters[r]
    return out[:9]


def title(rng: random.Random) -> str:
    """20-120 characters; mostly words from a Zipf-distributed vocabulary of ~30k, some common tech words.

    (Real titles are that varied: a search for "sqlite" matches a small share of them,
    not one in six as a 60-word vocabulary would.)
    """
    words = []
    target = rng.randint(20, 120)
    while len(" ".join(words)) < target:
        if rng.random() < 0.1:
            words.append(rng.choice(WORDS))
        else:
            words.append(token(int(rng.paretovariate(0.9)) % 30000))
    return " ".join(words).capitalize()[:120].strip()


def generate(db_path: Path, days: int, seed: int = 7) -> dict:
    """Create (or replace) db_path with `days` of synthetic history; return counts and seconds."""
    db_path = Path(db_path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    started = time.monotonic()
    history = store.open_db(db_path)
    schema.sync_sources(history.conn, config.defaults().all_sources().values())  # as a first refresh writes them
    history.conn.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(seed)
    day0 = datetime(2026, 11, 25, 6, tzinfo=UTC) - timedelta(days=days)
    on_page: list[tuple[int, str]] = []  # (story id, source) still on the front page
    story_id = 0
    conn.execute("BEGIN")
    for day in range(days):
        when = (day0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        run_id = conn.execute(
            "INSERT INTO runs (started_at, finished_at, status, model, executor, steps, llm_calls, input_tokens, "
            "output_tokens, duration_s, stories, rejected) "
            "VALUES (?, ?, 'ok', 'rules', 'local', 2, 2, 0, 0, 1.0, ?, 0)",
            [when, when, NEW_PER_DAY],
        ).lastrowid
        new = []
        for _ in range(NEW_PER_DAY):
            story_id += 1
            source = "hn" if rng.random() < 0.55 else "lobsters"
            sid = str(40_000_000 + story_id) if source == "hn" else f"s{story_id:06x}"
            url = f"https://example{rng.randint(1, 5000)}.com/post/{story_id}"
            discussion = (f"https://news.ycombinator.com/item?id={sid}" if source == "hn"
                          else f"https://lobste.rs/s/{sid}")
            new.append((story_id, source, sid, title(rng), url, discussion, run_id))
        conn.executemany(
            "INSERT INTO stories (id, source, source_id, title, url, discussion_url, domain, summary, first_seen_run) "
            "VALUES (?, ?, ?, ?, ?, ?, 'example.com', 'A synthetic summary of a synthetic story.', ?)",
            [(i, src, sid, t, u, d, r) for i, src, sid, t, u, d, r in new],
        )
        on_page = (on_page + [(s[0], s[1]) for s in new])[-NEW_PER_DAY * DAYS_ON_PAGE:]
        sightings, judgments, tags = [], [], []
        for rank, (sid, _source) in enumerate(reversed(on_page), start=1):
            relevant = int(rng.random() < 0.5)
            sightings.append((run_id, sid, rank, rng.randint(1, 900), rng.randint(0, 400)))
            judgments.append((run_id, sid, relevant, rng.randint(50, 100) if relevant else rng.randint(0, 45),
                              "Synthetic judgment: what the story is and why it matters to the reader.",
                              "synthetic"))
            for tag in rng.sample(TAGS, rng.randint(1, 3)):
                tags.append((run_id, sid, tag))
        conn.executemany("INSERT INTO sightings VALUES (?, ?, ?, ?, ?)", sightings)
        conn.executemany("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                         "VALUES (?, ?, ?, ?, ?, ?)", judgments)
        conn.executemany("INSERT INTO story_tags VALUES (?, ?, ?)", tags)
        pair = [s for s in new[:4]]
        conn.execute("INSERT INTO story_links VALUES (?, ?, ?), (?, ?, ?)",
                     [run_id, pair[0][0], pair[1][0], run_id, pair[1][0], pair[0][0]])
        conn.execute("INSERT INTO digests VALUES (?, ?)", [run_id, "# synthetic digest\n"])
        if day % 200 == 199:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("runs", "stories", "sightings", "judgments", "story_tags")}
    conn.close()
    counts["seconds"] = round(time.monotonic() - started, 1)
    counts["bytes"] = db_path.stat().st_size
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--days", type=int, help="instead of --years")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    days = args.days or round(args.years * 365)
    print(generate(args.db, days, args.seed))


if __name__ == "__main__":
    main()
