"""schema.sql rejects malformed rows by itself: whatever wrote the INSERT gets the same verdict."""

import sqlite3

import pytest


def add_run(db, started="2026-11-25T08:00:00"):
    return db.execute("INSERT INTO runs (started_at) VALUES (?)", [started]).lastrowid


def add_story(db, run_id, **overrides):
    row = dict(
        source="hn",
        source_id="41392128",
        title="Bypassing airport security via SQL injection",
        url="https://ian.sh/tsa",
        discussion_url="https://news.ycombinator.com/item?id=41392128",
        domain="ian.sh",
        first_seen_run=run_id,
    )
    row.update(overrides)
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return db.execute(f"INSERT INTO stories ({cols}) VALUES ({marks})", list(row.values())).lastrowid


def add_judgment(db, run_id, story_id, **overrides):
    row = dict(
        run_id=run_id,
        story_id=story_id,
        relevant=1,
        score=80,
        summary="A researcher shows how an unsanitised login form let anyone add themselves to crew lists.",
        reason="security engineering",
    )
    row.update(overrides)
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    db.execute(f"INSERT INTO judgments ({cols}) VALUES ({marks})", list(row.values()))


@pytest.fixture
def run_and_story(history):
    run_id = add_run(history)
    return history, run_id, add_story(history, run_id)


def test_well_formed_rows_are_accepted(run_and_story):
    db, run_id, story_id = run_and_story
    add_judgment(db, run_id, story_id)
    db.execute("INSERT INTO story_tags VALUES (?, ?, 'security')", [run_id, story_id])
    db.execute("INSERT INTO sightings VALUES (?, ?, 1, 412, 96)", [run_id, story_id])
    row = db.execute("SELECT relevant, score FROM judgments").fetchone()
    assert row == (1, 80)
    assert db.execute("SELECT tag FROM story_tags").fetchall() == [("security",)]


@pytest.mark.parametrize("title", ["", "   ", " padded", "tab\there", "line\nbreak", "nul\x00byte", "x" * 301])
def test_malformed_titles_are_rejected(history, title):
    run_id = add_run(history)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        add_story(history, run_id, title=title)


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>", "ftp://example.com/x", "//example.com", "https://",
     "http://a b"],
)
def test_non_http_urls_are_rejected(history, url):
    run_id = add_run(history)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        add_story(history, run_id, url=url)


def test_self_posts_have_no_url(history):
    run_id = add_run(history)
    add_story(history, run_id, url=None, kind="ask", domain=None)
    assert history.execute("SELECT url, kind FROM stories").fetchone() == (None, "ask")


def test_duplicate_story_is_rejected(run_and_story):
    db, run_id, _ = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: stories.source, stories.source_id"):
        add_story(db, run_id)


def test_unknown_tag_is_rejected(run_and_story):
    db, run_id, story_id = run_and_story
    add_judgment(db, run_id, story_id)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        db.execute("INSERT INTO story_tags VALUES (?, ?, 'blockchain')", [run_id, story_id])


def test_at_most_three_tags(run_and_story):
    db, run_id, story_id = run_and_story
    add_judgment(db, run_id, story_id)
    for tag in ("security", "web", "databases"):
        db.execute("INSERT INTO story_tags VALUES (?, ?, ?)", [run_id, story_id, tag])
    with pytest.raises(sqlite3.IntegrityError, match="at most 3 tags"):
        db.execute("INSERT INTO story_tags VALUES (?, ?, 'systems')", [run_id, story_id])


def test_tag_needs_a_judgment(run_and_story):
    db, run_id, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        db.execute("INSERT INTO story_tags VALUES (?, ?, 'security')", [run_id, story_id])


@pytest.mark.parametrize(
    "summary",
    [
        "Bypassing airport security via SQL injection",
        "bypassing airport security via sql injection",
        "BYPASSING  AIRPORT SECURITY   VIA SQL INJECTION.",
        "Bypassing airport-security via SQL injection",
        "airport security via SQL injection",  # a fragment of the title says nothing more
    ],
)
def test_summary_repeating_the_title_is_rejected(run_and_story, summary):
    db, run_id, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="summary repeats the title"):
        add_judgment(db, run_id, story_id, summary=summary)


def test_summary_repeating_the_title_is_rejected_on_update_too(run_and_story):
    db, run_id, story_id = run_and_story
    add_judgment(db, run_id, story_id)
    with pytest.raises(sqlite3.IntegrityError, match="summary repeats the title"):
        db.execute("UPDATE judgments SET summary = 'Bypassing airport security via SQL injection'")


@pytest.mark.parametrize("score", [-1, 101, 1000])
def test_score_out_of_range_is_rejected(run_and_story, score):
    db, run_id, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        add_judgment(db, run_id, story_id, score=score)


@pytest.mark.parametrize("relevant", [2, -1, "yes"])
def test_relevant_is_a_boolean(run_and_story, relevant):
    db, run_id, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError):
        add_judgment(db, run_id, story_id, relevant=relevant)


def test_strict_tables_refuse_wrong_types(run_and_story):
    db, run_id, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="cannot store TEXT value in INTEGER column judgments.score"):
        add_judgment(db, run_id, story_id, score="high")


def test_sighting_for_a_missing_run_is_rejected(run_and_story):
    db, _, story_id = run_and_story
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        db.execute("INSERT INTO sightings VALUES (999, ?, 1, 10, 2)", [story_id])


def test_run_status_is_a_closed_set(history):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        history.execute("INSERT INTO runs (started_at, status) VALUES ('2026-11-25T08:00:00', 'done')")


def test_finished_run_needs_a_finish_time(history):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        history.execute("INSERT INTO runs (started_at, status) VALUES ('2026-11-25T08:00:00', 'ok')")


@pytest.mark.parametrize("slug", ["AI", "", "two words", "x" * 33, "-lead"])
def test_tag_slugs_have_a_fixed_shape(history, slug):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        history.execute("INSERT INTO tags VALUES (?, 'a description')", [slug])


INVISIBLE = ["\u202e", "\u2066", "\u200b", "\u200e", "\ufeff", "\x85", "\x9f", "\u2028", "\u061c"]


@pytest.mark.parametrize("char", INVISIBLE)
def test_agent_text_must_be_plain(run_and_story, char):
    """A summary or reason that would display differently from what it says is refused, insert or update."""
    db, run_id, story_id = run_and_story
    for column in ("summary", "reason"):
        with pytest.raises(sqlite3.IntegrityError, match="must be plain text"):
            add_judgment(db, run_id, story_id, **{column: f"An unsanitised login {char}form let anyone in."})
    add_judgment(db, run_id, story_id, summary="Émigré’s “naïve” 🎉 — plain Unicode text is fine here.")
    with pytest.raises(sqlite3.IntegrityError, match="must be plain text"):
        db.execute("UPDATE judgments SET reason = ?", [f"x{char}"])


@pytest.mark.parametrize("char", INVISIBLE)
def test_story_titles_and_authors_must_be_plain(history, char):
    run_id = add_run(history)
    with pytest.raises(sqlite3.IntegrityError, match="must be plain text"):
        add_story(history, run_id, title=f"Bypassing airport{char} security")
    with pytest.raises(sqlite3.IntegrityError, match="must be plain text"):
        add_story(history, run_id, author=f"ian{char}carroll")
