"""Learning from the reader's votes: the learner anchored to the rules, and `eval --learn-from / --curve`."""

import json

import pytest
from click.testing import CliRunner

from pipeline import evaluate, learn, models, rules
from pipeline.cli import cli
from pipeline.prompt import Candidate

from .helpers import FIXTURES, FRESH

VOCABULARY = {"ai", "programming", "python", "rust", "go", "javascript", "web", "databases", "devops", "security",
              "systems", "hardware", "science", "business", "culture"}


def story(title, domain=None, site_tags=(), kind="story"):
    return Candidate(1, title, domain, list(site_tags), 10, 2, kind)


def test_with_no_votes_the_rules_judge_exactly_as_before():
    stories = [story("Gardening with SQLite", "garden.example"), story("Rust 2.0 released", "blog.rust-lang.org"),
               story("Show HN: my weekend project"), story("Why the kernel is slow", "lwn.net", ["linux"])]
    for c in stories:
        for site in ("hn", "lobsters"):
            assert rules.judge(c, VOCABULARY, site) == rules.judge(c, VOCABULARY, site,
                                                                  learned=rules.teach([], VOCABULARY))


def test_the_readers_votes_outweigh_the_rules_for_stories_like_the_ones_they_voted_on():
    """The rules like anything about Apple's chips; this reader has said no to apple.com eight times."""
    c = story("Apple M5 chip performance and memory bandwidth", "apple.com")
    assert rules.judge(c, VOCABULARY, "hn").relevant == 1
    votes = [learn.Vote(f"Apple {thing} performance", "apple.com", [], 0, ["hardware"], "hn")
             for thing in ("M1", "M2", "M3", "M4", "Vision Pro", "iPhone", "Watch", "iPad")]
    learned = rules.teach(votes, VOCABULARY)
    verdict = rules.judge(c, VOCABULARY, "hn", learned=learned)
    assert verdict.relevant == 0
    # The reason keeps the rules' own reading and says what overturned it.
    assert verdict.reason.startswith(rules.judge(c, VOCABULARY, "hn").reason + "; overturned by your votes on ")
    assert "apple.com" in verdict.reason and len(verdict.reason) <= 300
    # ...and only for those: a story sharing nothing with the votes is judged as before.
    other = story("Why the kernel is slow", "lwn.net")
    assert rules.judge(other, VOCABULARY, "hn", learned=learned) == rules.judge(other, VOCABULARY, "hn")


def test_one_vote_nudges_and_does_not_overturn_the_rules():
    c = story("Postgres query planner internals", "example.dev")
    learned = rules.teach([learn.Vote("Postgres release notes", "example.dev", [], 0, None, "hn")], VOCABULARY)
    assert rules.judge(c, VOCABULARY, "hn", learned=learned).relevant == 1


def test_a_tag_the_reader_keeps_giving_is_added_and_the_rules_tags_are_kept():
    votes = [learn.Vote(f"Notes from the {n} meetup", "gophers.example", [], 1, ["go", "culture"], "hn")
             for n in ("first", "second", "third", "fourth", "fifth", "sixth")]
    c = story("Notes from the seventh meetup on kernels", "gophers.example")
    before = rules.judge(c, VOCABULARY, "hn")
    after = rules.judge(c, VOCABULARY, "hn", learned=rules.teach(votes, VOCABULARY))
    assert "go" not in before.tags and "go" in after.tags
    assert after.tags[:len(before.tags)] == before.tags and len(after.tags) <= 3


def test_a_voted_storys_article_counts_as_it_does_for_the_stories_the_rules_judge():
    """The rules weigh an article's topic words for a story they judge; a vote on a read story gets the same."""
    text = "The borrow checker and cargo: Rust ownership explained with crates and lifetimes."
    read = rules.teach([learn.Vote("A quiet afternoon", None, [], 1, None, "hn", "story", text)], VOCABULARY)
    unread = rules.teach([learn.Vote("A quiet afternoon", None, [], 1, None, "hn")], VOCABULARY)
    assert read.examples[0].evidence == rules.with_article({}, rules.topic_hits(text, VOCABULARY), VOCABULARY)
    assert read.examples[0].evidence["rust"] > 0 and unread.examples[0].evidence == {}


def test_only_vocabulary_tags_are_learned():
    votes = [learn.Vote("Notes from a meetup", None, [], 1, ["go", "meetups", "x-files"], "hn")]
    assert set(rules.teach(votes, VOCABULARY).tag_weights) == {"go"}


def test_learning_is_deterministic():
    votes = [label.vote() for label in evaluate.load_labels(FIXTURES / "labels.csv")]
    first, second = rules.teach(votes, VOCABULARY), rules.teach(list(votes), VOCABULARY)
    assert first.relevance_weights == second.relevance_weights and first.tag_weights == second.tag_weights


def test_the_fit_has_converged():
    """ITERATIONS is enough: ten more steps move no weight by more than 1% of the largest."""
    votes = [label.vote() for label in evaluate.load_labels(FIXTURES / "labels.csv")]
    weights = rules.teach(votes, VOCABULARY).relevance_weights
    try:
        learn.ITERATIONS += 10
        more = rules.teach(votes, VOCABULARY).relevance_weights
    finally:
        learn.ITERATIONS -= 10
    largest = max(abs(w) for w in weights.values())
    assert max(abs(weights[name] - more[name]) for name in weights) < 0.01 * largest


def test_title_words_drop_stop_words_and_possessives_and_keep_names_whole():
    assert learn.words("What's new in C++ and node.js 1.0? Chrome’s AI") == {"c++", "node.js", "1.0", "chrome", "ai"}


@pytest.mark.long
def test_eval_learn_from_scores_before_and_after(tmp_path):
    """Learning from the very stories it scores, eval says so: its "after" is recall of the votes."""
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--learn-from",
                                   str(FIXTURES / "labels.csv"), "--executor", "local", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["votes"] == 110 and {"before", "after"} <= set(data)
    assert data["before"]["relevance_accuracy"] > 0.8
    assert out.stderr.startswith("notice: 110 of the stories scored are among the votes learned from")


def test_eval_curve_prints_accuracy_and_tag_f1_against_votes():
    """The curve's shape (what the embedding learner gains on it: test_embeddings, on the fresh pages)."""
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--curve", "--orders", "2",
                                   "--executor", "local", "--embeddings", "none", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    points = data["points"]
    assert [p["votes"] for p in points] == [0, 10, 25, 50, 100, "all"]
    assert [p["orders"] for p in points] == [1, 2, 2, 2, 2, 1]  # a point between is the mean of the orders
    assert all(p["stories"] == 110 for p in points)  # every page judged once per point, never with its own labels
    assert data["embeddings"] == {"model": None}


def test_votes_reach_the_sandbox_read_only_and_the_prompt_points_to_them(refreshed_copy, monkeypatch):
    import sqlite3

    from pipeline import refresh

    from .helpers import SNAPSHOT, ScriptedModel

    db = refreshed_copy
    out = CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(FIXTURES / "labels.csv")])
    assert out.exit_code == 0 and "imported 55 votes" in out.output, out.output
    seen = []

    def look(task):
        seen.append(task)
        return "print(sql('SELECT count(*) AS n FROM reader_votes'))\n" + rules.code_for(task)

    monkeypatch.setattr(models, "make_model", lambda *a, **k: ScriptedModel(look))
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0, sources=("hn",)))
    assert report.status == "ok"
    assert "READER'S VOTES: reader_votes (title, domain, tags, vote up/down) holds 30 of this reader's" in seen[0]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM reader_votes").fetchone() == (0,)  # never in the history
    assert conn.execute("SELECT count(*) FROM judgments WHERE run_id = ?", [report.run_id]).fetchone() == (30,)


def test_the_rules_model_learns_from_the_votes_at_each_refresh(refreshed_copy):
    import sqlite3

    from pipeline import store

    from .helpers import SNAPSHOT

    db = refreshed_copy
    story = sqlite3.connect(db).execute("SELECT id FROM stories WHERE title = 'Farewell Pandas, and thanks for all "
                                        "the fish'").fetchone()[0]
    CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(FIXTURES / "labels.csv")])
    votes = store.reader_votes(sqlite3.connect(db), store.feedback_path(db), 500, rules.ARTICLE_CHARS)
    assert len(votes) == 55 and any(v.story_id == story for v in votes)
    out = CliRunner().invoke(cli, ["refresh", "--db", str(db), "--snapshot", str(SNAPSHOT), "--rejudge"])
    assert out.exit_code == 0 and "judging with your 55 most recent votes (feedback.db)" in out.output, out.output
    assert "55 judged (0 carried over)" in out.output


def test_votes_on_read_stories_carry_the_start_of_their_article(tmp_path):
    import sqlite3

    from pipeline import refresh, store

    from .helpers import snapshot_with_articles

    db = tmp_path / "data" / "news.db"
    db.parent.mkdir()
    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=snapshot)).status == "ok"
    CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(FIXTURES / "labels.csv")])
    votes = store.reader_votes(sqlite3.connect(db), store.feedback_path(db), 500, rules.ARTICLE_CHARS)
    read = [v for v in votes if v.text]
    assert 0 < len(read) < len(votes)  # some links failed (a 404 every third), and their votes carry no text
    assert all(len(v.text) <= rules.ARTICLE_CHARS for v in votes)
    assert rules.teach(read, VOCABULARY).n == len(read)


def test_trained_on_two_development_pages_the_rules_reach_the_targets_on_the_other_two(tmp_path):
    """The issue's targets (>= 0.80 relevance accuracy, >= 0.65 tag macro-F1) on held-out development pages,
    both ways round, with the word-feature learner. Weak evidence of generalising: the rules' word lists were
    written on all four pages (over embeddings, which move away from the rules, b -> a measures 0.709)."""
    import csv

    with open(FIXTURES / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    halves = {"a": {"hn_karakanb-2018-05-04.html", "lobsters_claw-front-2023-03.html"},
              "b": {"hn_fben3-2024-08.html", "lobsters_claw-hottest-2026-05-09.html"}}
    for name, pages in halves.items():
        with open(tmp_path / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row in rows if row["file"] in pages)
    for train, test in (("a", "b"), ("b", "a")):
        out = CliRunner().invoke(cli, ["eval", "--labels", str(tmp_path / f"{test}.csv"), "--html-dir",
                                       str(FIXTURES / "html"), "--learn-from", str(tmp_path / f"{train}.csv"),
                                       "--executor", "local", "--embeddings", "none", "--json"])
        assert out.exit_code == 0, out.output
        after = json.loads(out.output)["after"]
        assert after["stories"] == 55 and after["unjudged"] == 0
        assert after["relevance_accuracy"] >= 0.80 and after["tag_macro_f1"] >= 0.65, (train, test, after)


def test_a_damaged_votes_file_is_named_and_the_refresh_goes_on_without_it(refreshed_copy):
    from .helpers import SNAPSHOT

    db = refreshed_copy
    (db.parent / "feedback.db").write_bytes(b"not a database, whatever it once was" * 100)
    out = CliRunner().invoke(cli, ["refresh", "--db", str(db), "--snapshot", str(SNAPSHOT)])
    assert out.exit_code == 0, out.output
    assert ("warning: cannot read the votes database " + str(db.parent / "feedback.db") +
            ": file is not a database: judging without your votes this run") in out.output


def test_votes_from_before_tag_corrections_still_teach(refreshed_copy):
    """A feedback.db from before feedback_tags existed (the digest page's first votes) is read as it is."""
    import sqlite3

    from pipeline import store

    db = refreshed_copy
    story = sqlite3.connect(db).execute("SELECT min(id) FROM stories").fetchone()[0]
    old = sqlite3.connect(db.parent / "feedback.db")
    old.executescript("CREATE TABLE feedback (story_id INTEGER PRIMARY KEY, vote TEXT NOT NULL, voted_at TEXT);"
                      f"INSERT INTO feedback VALUES ({story}, 'down', '2026-11-25T08:00:00Z');")
    old.close()
    votes = store.reader_votes(sqlite3.connect(db), store.feedback_path(db), 500, rules.ARTICLE_CHARS)
    assert [(v.story_id, v.vote, v.tags) for v in votes] == [(story, "down", None)]


WEBINAR = ("Register now for our sponsored webinar. Seats are limited, and the early-bird pricing tier ends on "
           "Friday. Our partners will share a keynote, a panel and a raffle for attendees.")
PROFILING = ("We profiled the allocator under load and rewrote the hot loop. The flame graph showed lock "
             "contention in the free list, so we moved to per-thread arenas and measured again.")


def votes_on_articles():
    """Sixteen votes on stories whose titles and sites say the same: the reader said no to the eight whose
    articles turned out to be webinar adverts, yes to the eight that were engineering write-ups."""
    return [learn.Vote(f"Postgres tuning, part {n}", f"blog{n}.example", [], n % 2, None, "hn", "story",
                       f"{PROFILING if n % 2 else WEBINAR} Part {n}.") for n in range(1, 17)]


def test_the_words_of_voted_articles_carry_to_a_new_article_whatever_its_title():
    learned = rules.teach(votes_on_articles(), VOCABULARY)
    assert {"webinar", "sponsored", "allocator", "profiled"} <= learned.terms
    c = story("A tour of the query planner", "new.example")
    advert = rules.judge(c, VOCABULARY, "hn", article_words=learn.words(WEBINAR), learned=learned)
    write_up = rules.judge(c, VOCABULARY, "hn", article_words=learn.words(PROFILING), learned=learned)
    assert rules.judge(c, VOCABULARY, "hn").relevant == 1 and write_up.relevant == 1
    assert advert.relevant == 0 and "in the article" in advert.reason
    # Unread, the story shares nothing with the votes, and is judged as the rules judge it.
    assert rules.judge(c, VOCABULARY, "hn", learned=learned) == rules.judge(c, VOCABULARY, "hn")


def test_the_article_words_the_learner_weighs_are_shared_and_bounded():
    """A word of one voted article says nothing of the next, nor does a word every article uses."""
    articles = [frozenset({"common", "pair", f"only{n}"}) for n in range(8)]
    articles[0] |= {"twice"}
    articles[1] |= {"twice"}
    assert learn.shared_words(articles) == {"twice"}
    many = [frozenset({f"w{n // 2}-{i}" for i in range(400)}) for n in range(10)]  # five pairs share 400 each
    assert len(learn.shared_words(many)) == learn.TERMS
    # Nor do numbers, or junk too long to be a word (which an article could use to swell the reading step).
    assert learn.shared_words([frozenset({"2016", "1.5", "x" * 31, "y" * 30})] * 2) == {"y" * 30}


def test_a_cards_words_count_only_when_the_learner_knows_them():
    """The article words on a card are read as untrusted text: a word the votes did not teach is no feature."""
    from pipeline import articles, parse, prompt

    story = parse.Story("hn", "4", 1, "A tour", "https://a.example/", "https://news.ycombinator.com/item?id=4",
                        "a.example", 1, 1, None, None)
    article = articles.Article(url="https://a.example/", status="ok", text="Join our webinar on pricing. Zzz-injected.")
    task = prompt.build_task("hn", 1, "systems", {"ai": "AI"}, [prompt.card(4, story, article)])
    seen = []
    rules.code_for(task, lambda c, v, s, i, h, words: seen.append(words) or rules.judge(c, v, s, i, h, words),
                   frozenset({"webinar", "pricing"}))
    assert seen == [frozenset({"webinar", "pricing"})]


def test_the_rules_model_finds_those_words_on_the_cards_and_weighs_them(tmp_path):
    """Through the agent: each story's card shows the start of its article, the rules model finds the
    learner's words in it, and the judgment weighs them. Two stories alike but for what their links say."""
    from pipeline import agent, articles, parse, sandbox

    stories = [parse.Story("hn", str(n), n, "A tour of the query planner", f"https://new{n}.example/planner",
                           f"https://news.ycombinator.com/item?id={n}", f"new{n}.example", 10, 2, None, None)
               for n in (1, 2)]
    box = sandbox.create(tmp_path / "hn.db", "hn", 1, "2026-11-26T08:00:00Z", stories)
    reading = articles.Reading(
        {story.source_id: articles.Article(story.url, "ok", fetched_at="2026-11-26T08:00:01Z", text=text)
         for story, text in zip(stories, (WEBINAR, PROFILING), strict=True)}, {}, [])
    site = agent.Site(box)
    site.add_reading(reading)
    model = rules.RulesModel(learned=rules.teach(votes_on_articles(), VOCABULARY))
    result = agent.judge_site(site, model, vocabulary={tag: tag for tag in VOCABULARY})
    assert result.status == "ok", result.error
    import sqlite3

    assert not box.rejected, box.rejected
    judged = dict(sqlite3.connect(box.path).execute("SELECT story_id, relevant || ' ' || reason FROM judgments"))
    advert, write_up = (judged[local] for local, s in sorted(box.candidates.items(), key=lambda kv: kv[1].rank))
    assert advert.startswith("0 ") and "in the article" in advert
    assert write_up.startswith("1 ") and "overturned" not in write_up


def test_eval_learn_from_a_bad_labels_file_fails_before_judging_anything(tmp_path, monkeypatch):
    """With an LLM, judging the pages first would pay for a whole eval before the one-line error."""

    bad = tmp_path / "votes.csv"
    bad.write_text("title,vote\nSomething,up\n")
    monkeypatch.setattr(models, "make_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("judged")))
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--learn-from", str(bad)])
    assert out.exit_code == 1 and out.output.startswith(f"Error: {bad}: missing column(s) file, rank, relevant")


def test_vote_tags_correct_a_storys_tags_and_teach_with_the_vote(refreshed_copy):
    """`vote ID up --tags a,b` stores the reader's tags (a tag given twice once); a later vote without
    --tags keeps them, new --tags replace them, clear removes both; the learner gets them with the vote."""
    import sqlite3

    from pipeline import store

    db = refreshed_copy

    def vote(*args):
        out = CliRunner().invoke(cli, ["vote", "--db", str(db), *args])
        assert out.exit_code == 0, out.output
        return out.output

    def said():
        return [(v.vote, v.tags) for v in store.reader_votes(sqlite3.connect(db), store.feedback_path(db),
                                                                   10, rules.ARTICLE_CHARS)]

    assert vote("1", "up", "--tags", "rust, systems,rust").endswith("[rust, systems]\n")
    assert said() == [("up", ["rust", "systems"])]
    vote("1", "down")
    assert said() == [("down", ["rust", "systems"])]
    vote("1", "up", "--tags", "go")
    assert said() == [("up", ["go"])]
    vote("1", "clear")
    assert said() == []
    out = CliRunner().invoke(cli, ["vote", "--db", str(db), "1", "up", "--tags", "rust,made-up"])
    assert out.exit_code == 1 and out.output == "Error: not in the vocabulary: made-up\n"


def test_eval_learns_from_several_files_as_from_their_rows_in_one(tmp_path):
    """`--learn-from` repeats: the team learns from the development and the fresh labels at once."""
    lines = (FIXTURES / "labels.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    (tmp_path / "a.csv").write_text(header + "".join(rows[:40]), encoding="utf-8")
    (tmp_path / "b.csv").write_text(header + "".join(rows[40:]), encoding="utf-8")
    common = ["eval", "--labels", str(FRESH), "--executor", "local",
              "--embeddings", "none", "--json"]
    apart = CliRunner().invoke(cli, [*common, "--learn-from", str(tmp_path / "a.csv"),
                                     "--learn-from", str(tmp_path / "b.csv")])
    whole = CliRunner().invoke(cli, [*common, "--learn-from", str(FIXTURES / "labels.csv")])
    assert apart.exit_code == whole.exit_code == 0, apart.output + whole.output
    assert json.loads(apart.stdout)["votes"] == 110
    assert json.loads(apart.stdout) == json.loads(whole.stdout)
    assert not apart.stderr  # no scored story is among the votes


def test_the_curve_never_learns_from_the_page_it_scores_even_when_told_to():
    """--learn-from holding the scored pages' own labels adds nothing: each page is judged after learning from
    the other pages only, a label given twice counting once."""
    from pipeline.settings import Judge

    labels = FIXTURES / "labels.csv"
    judge = Judge(executor="local", embeddings="none")

    def curve(extra):
        return evaluate.curve(labels, vocabulary={tag: tag for tag in VOCABULARY}, judge=judge, sizes=(None,),
                              extra=extra)

    assert curve(evaluate.load_labels(labels)) == curve([])
