"""Evidence: a judgment's quote from its article is four whole words at least (schema.sql's evidence triggers),
through the sql tool the model writes with."""

import pytest

from pipeline import articles, sqltool

from .figures import after_module, record

ARTICLE = ("We do not recommend running the migration on a live primary. "
           "Take a snapshot first, then replay the log on a replica.")
QUOTES = {  # evidence -> what the schema says (None: taken)
    "e": "error: evidence must be at least four whole words",
    "not recommend": "error: evidence must be at least four whole words",
    "ot recommend running the": "error: evidence must be at least four whole words",  # starts mid-word
    "We do not recommen": "error: evidence must be at least four whole words",  # ends mid-word
    "We do not recommend running the migration": None,
    "Take a snapshot first, then replay the log on a replica.": None,
    # Whole words, four of them, in the text: taken, though it drops the "not" that came before. The rule
    # checks that evidence is a real quote; what a cut does to its meaning is beyond it (ARCHITECTURE.md).
    "recommend running the migration on a live primary.": None,
}


def with_evidence(tmp_path, text: str, quote: str) -> str:
    """What the sql tool says to a judgment of story 1, whose article is `text`, quoting `quote`."""
    from pipeline import sandbox

    from ..helpers import make_box

    box = make_box(tmp_path)
    story = box.candidates[1]
    article = articles.Article(url=story.url or story.discussion_url, status="ok", text=text,
                               fetched_at="2026-11-25T08:00:00Z")
    sandbox.add_reading(box, articles.Reading(articles={story.source_id: article}, discussions={}, fetched=[]))
    assert box.rejected == []
    return sqltool.SqlTool(str(box.path))(
        "INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence) "
        "VALUES (1, 1, 1, 70, 'A migration guide for databases in production.', 'databases', ?)", [quote])


@pytest.mark.parametrize("quote", QUOTES)
def test_evidence_is_four_whole_words_quoted_from_the_article(tmp_path, quote):
    """12 judgments landed with evidence "e": a quote is now four words at least, whole at both ends."""
    said = with_evidence(tmp_path, ARTICLE, quote)
    if QUOTES[quote] is None:
        assert not said.startswith("error"), said
    else:
        assert said.startswith(QUOTES[quote]), said
    FOUND[quote] = said


FOUND: dict[str, str] = {}


@after_module(lambda: FOUND)
def evidence_figures():
    refused = sum(1 for quote in FOUND if QUOTES[quote] is not None)
    record("evidence: 'e', two words, a quote starting or ending mid-word, whole-word quotes (sql tool)",
           len(FOUND), refused, 0, 0, f"{refused} refused with the schema's reason; {len(FOUND) - refused} whole-word "
           "quotes taken, one of them cut so that it drops a 'not' (the rule cannot see meaning)")


def test_evidence_in_a_script_written_without_spaces_is_fifteen_characters(tmp_path):
    text = "先日、不正に改造したiPhoneを販売したとして、商標法違反の疑いで20代の男性が逮捕されました。"
    assert not with_evidence(tmp_path / "a", text, text[:20]).startswith("error")
    assert with_evidence(tmp_path / "b", text, text[:5]).startswith("error: evidence must be")
