"""Errors a model can act on: every refusal of the `sql` tool says what to fix.

SQLite alone says `FOREIGN KEY constraint failed` for an unknown tag, a tag before its
judgment, a bad story id and a bad run id alike; the tool finds which parent row is
missing. CHECK constraints are named in schema.sql for the rule they enforce.
"""

import pytest

from pipeline import sandbox, sqltool
from tests.helpers import make_box

JUDGE = "INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) VALUES (?, ?, ?, ?, ?, ?)"
TAG = "INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)"
GOOD = "A long enough summary that says what the story is."


@pytest.fixture
def tool(tmp_path):
    box = make_box(tmp_path, run_id=1)
    tool = sqltool.SqlTool(str(box.path))
    assert tool(JUDGE, [1, 1, 1, 70, GOOD, "on topic"]).startswith("ok")
    return tool


@pytest.mark.parametrize("statement, params, expected", [
    (TAG, [1, 1, "Rust"], "tag 'Rust' is not in the vocabulary (did you mean 'rust'?): use one of ai, programming"),
    (TAG, [1, 1, "blockchain"], "tag 'blockchain' is not in the vocabulary: use one of ai, programming"),
    (TAG, [1, 2, "rust"], "insert the judgment for story 2 before its tags"),
    (JUDGE, [1, 42, 1, 70, GOOD, "x"], "story id 42 is not a candidate (1-"),
    (JUDGE, [9, 2, 1, 70, GOOD, "x"], "run_id 9 is not this run's id: use run_id = 1"),
    (TAG, [9, 1, "rust"], "run_id 9 is not this run's id: use run_id = 1"),
    (JUDGE, [1, 2, 1, 70, "Too short", "x"], "CHECK constraint failed: summary_10_to_400_chars"),
    (JUDGE, [1, 2, 1, 70, "x" * 401, "x"], "CHECK constraint failed: summary_10_to_400_chars"),
    (JUDGE, [1, 2, 1, 70, GOOD + " ", "x"], "CHECK constraint failed: summary_without_surrounding_spaces"),
    (JUDGE, [1, 2, 1, 70, "Two lines\nof summary here.", "x"],
     "CHECK constraint failed: summary_one_line_without_control_chars"),
    (JUDGE, [1, 2, 1, 170, GOOD, "x"], "CHECK constraint failed: score_is_0_to_100"),
    (JUDGE, [1, 2, 2, 70, GOOD, "x"], "CHECK constraint failed: relevant_is_0_or_1"),
    (JUDGE, [1, 1, 1, 70, GOOD, "x"], "that story already has a judgment: UPDATE it, or add ON CONFLICT DO NOTHING"),
    ("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
     "VALUES (1, 2, 1, 70, 'It's a summary of enough length', 'x')", None, "write values as ? placeholders"),
    ("PRAGMA foreign_keys = OFF", None, "INSERT, UPDATE or DELETE on judgments and story_tags only (no PRAGMA"),
    ("SELECT printf('%d', 1)", None, "not authorized to use function: printf (allowed functions: abs, avg"),
])
def test_a_refused_statement_says_what_to_fix(tool, statement, params, expected):
    reply = tool(statement, params)
    assert reply.startswith("error: ") and expected in reply, reply


def test_every_row_of_a_multi_row_insert_is_diagnosed_and_nothing_is_written(tool):
    reply = tool("INSERT INTO story_tags (run_id, story_id, tag) VALUES (1, 1, 'rust'), (1, 1, 'Go'), (1, 3, 'ai')")
    assert "tag 'Go' is not in the vocabulary" in reply and "insert the judgment for story 3 before its tags" in reply
    assert tool("SELECT count(*) AS n FROM story_tags") == "n\n0"  # the diagnosis ran in a rolled-back transaction


def test_named_placeholders_take_a_dict(tool):
    assert tool("INSERT INTO story_tags (run_id, story_id, tag) VALUES (:run, :story, :tag)",
                {"run": 1, "story": 1, "tag": "rust"}) == "ok: 1 row(s) changed"


def test_missing_stories_are_listed_as_ranges():
    assert sandbox.id_ranges({1, 2, 3, 5, 7, 8, 30}) == "[1-3, 5, 7-8, 30]"
    assert sandbox.id_ranges(range(1, 31)) == "[1-30]"
