"""Learning from the reader's votes (issue #19, in progress): the learner, and `eval --learn-from / --curve`."""

import json

from click.testing import CliRunner

from pipeline import learn, rules
from pipeline.cli import cli
from pipeline.prompt import Candidate

from .helpers import FIXTURES

VOTES = [learn.Vote("Rust async runtimes compared", "example.dev", [], 1, ["rust"]),
         learn.Vote("A new Rust borrow checker", "blog.rust-lang.org", [], 1, ["rust"]),
         learn.Vote("Gardening in small spaces", "garden.example", [], 0, ["culture"]),
         learn.Vote("Gardening tools reviewed", "garden.example", [], 0, ["culture"])]


def test_votes_teach_which_words_and_domains_the_reader_wants():
    learned = learn.Learner(VOTES)
    assert learned.relevance("Rust 2.0 released", None, []) > 0 > learned.relevance("Gardening for beginners",
                                                                                  "garden.example", [])
    assert learned.tags("Rust in production", None, [])["rust"] > 0
    assert learned.relevance("Nothing seen before", None, []) == 0.0  # no evidence either way
    assert 0 < learned.weight < 1 and learn.Learner([]).weight == 0


def test_with_no_votes_the_rules_judge_exactly_as_before():
    story = Candidate(1, "Gardening with SQLite", "garden.example", [], 10, 2, "story")
    vocabulary = {"databases", "culture", "rust", "programming"}
    assert rules.judge(story, vocabulary, "hn") == rules.judge(story, vocabulary, "hn", learned=learn.Learner([]))


def test_eval_learn_from_scores_before_and_after(tmp_path):
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--learn-from",
                                   str(FIXTURES / "labels.csv"), "--executor", "local", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["votes"] == 110 and {"before", "after"} <= set(data)
    assert data["before"]["relevance_accuracy"] > 0.8


def test_eval_curve_prints_accuracy_and_tag_f1_against_votes():
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--curve", "--executor",
                                   "local", "--json"])
    assert out.exit_code == 0, out.output
    points = json.loads(out.output)
    assert [p["votes"] for p in points] == [0, 10, 25, 50, 100, "all"]
    assert all(p["stories"] == 110 for p in points)  # every page judged once per point, never with its own labels


def test_votes_reach_the_sandbox_read_only_and_the_prompt_points_to_them(refreshed_copy, monkeypatch):
    import sqlite3

    from pipeline import agent, refresh

    from .helpers import SNAPSHOT, ScriptedModel

    db = refreshed_copy
    out = CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(FIXTURES / "labels.csv")])
    assert out.exit_code == 0 and "imported 55 votes" in out.output, out.output
    seen = []

    def look(task):
        seen.append(task)
        return "print(sql('SELECT count(*) AS n FROM reader_votes'))\n" + rules.code_for(task)

    monkeypatch.setattr(agent, "make_model", lambda *a, **k: ScriptedModel(look))
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0, sources=("hn",)))
    assert report.status == "ok"
    assert "READER'S VOTES: reader_votes (title, domain, tags, vote up/down) holds 30 of this reader's" in seen[0]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM reader_votes").fetchone() == (0,)  # never in the history
    assert conn.execute("SELECT count(*) FROM judgments WHERE run_id = ?", [report.run_id]).fetchone() == (30,)


def test_the_rules_model_learns_from_the_votes_at_each_refresh(refreshed_copy):
    import sqlite3

    from pipeline import refresh, store

    from .helpers import SNAPSHOT

    db = refreshed_copy
    story = sqlite3.connect(db).execute("SELECT id FROM stories WHERE title = 'Farewell Pandas, and thanks for all "
                                        "the fish'").fetchone()[0]
    CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(FIXTURES / "labels.csv")])
    votes = store.reader_votes(sqlite3.connect(db), store.feedback_path(db), 500)
    assert len(votes) == 55 and any(v["story_id"] == story for v in votes)
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0))
    assert report.status == "ok" and report.judged == 55
