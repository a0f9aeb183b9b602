"""The model reads what it judges: each candidate's card (facts, article lead, first comments) is in its
prompt, a batch of cards within a token budget, and what it quotes must come from what it was shown.

The model here is a loopback OpenAI-compatible server that behaves like a careful real one: it can only
use text that appeared in its conversation (it parses the cards out of the request), writes every
judgment of its batch in one code block and quotes a sentence of each card's article as evidence.
"""

import json
import re
import sqlite3

from smolagents import Model
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import TokenUsage

from pipeline import agent, articles, discussions, models, parse, prompt, rules, sandbox
from pipeline.settings import Judge, Reading

from .helpers import SNAPSHOT, VOCABULARY, snapshot_with_articles
from .stub_llm import StubLLM, cli_refresh, completion

CARD_LINE = re.compile(r"^=== story (\d+) · [0-9a-f]{10} ===\n(.*)$", re.MULTILINE)


def cards_in(text: str) -> dict[int, dict]:
    """The cards a model finds in its conversation, read the naive way (a line that starts a card, the JSON
    line after it): no seal is checked, so only the format can keep a card's text inside it."""
    return {int(i): json.loads(line) for i, line in CARD_LINE.findall(text)}


def first_sentence(text: str) -> str | None:
    for sentence in re.findall(r"(?<![A-Za-z0-9])[A-Z][^.!?\n]{30,190}[.!?]", text or ""):
        if len(sentence.split()) >= 4:
            return sentence
    return None


def careful_code(conversation: str) -> str:
    """One code block judging every card of the batch, quoting only what the cards show."""
    rows = []
    for story_id, card in cards_in(conversation).items():
        quote = first_sentence(card.get("article", ""))
        comments = card.get("first_comments") or []
        said = first_sentence(comments[0]["text"]) if comments else None
        summary = (f"Read from its article: {quote}"[:400] if quote else
                   f"A {card['kind']} from {card['domain'] or 'the site'} the reader may want to weigh.")
        discussion = f"Commenters say: {said}"[:300] if said else None
        rows.append([story_id, 1, 60, summary, "read the card", quote, discussion, said])
    return (f"rows = {rows!r}\n"
            "for story_id, relevant, score, summary, reason, evidence, discussion, said in rows:\n"
            "    r = sql('INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence, "
            "discussion, discussion_evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [run_id, story_id, relevant, "
            "score, summary, reason, evidence, discussion, said])\n"
            "    if r.startswith('error'):\n"
            "        print(story_id, r)\n"
            "    sql('INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)', [run_id, story_id, "
            "'programming'])\n"
            "final_answer('done')\n")


def conversation_of(body: dict) -> str:
    return "\n".join(m["content"] if isinstance(m["content"], str) else
                     "\n".join(part.get("text", "") for part in m["content"]) for m in body["messages"])


def careful(body):
    text = conversation_of(body)
    if prompt.CANDIDATES_MARKER not in text:  # the editor's note
        return completion("Two front pages, read for you.", prompt_tokens=prompt.tokens(text))
    code = careful_code(text)
    return completion(f"Thought: judging every card.\n<code>\n{code}\n</code>", prompt_tokens=prompt.tokens(text),
                      completion_tokens=prompt.tokens(code))


def test_a_model_that_quotes_only_what_it_was_shown_grounds_its_judgments(tmp_path):
    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    db = tmp_path / "news.db"
    with StubLLM([careful]) as stub:
        done = cli_refresh(db, stub, snapshot=snapshot)
        calls = [body for body in stub.requests if prompt.CANDIDATES_MARKER in conversation_of(body)]
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(db)
    read = conn.execute("SELECT count(*), count(j.evidence) FROM judgments j JOIN story_articles a "
                        "ON a.story_id = j.story_id").fetchone()
    discussed = conn.execute("SELECT count(*), count(j.discussion_evidence) FROM judgments j WHERE j.story_id IN "
                             "(SELECT story_id FROM comments)").fetchone()
    judged, tokens = conn.execute("SELECT sum(judged), sum(input_tokens) FROM run_sites").fetchone()
    conn.close()
    assert read[0] >= 30 and read[1] >= 0.9 * read[0], read  # evidence the schema took, for >= 90% of them
    assert discussed[0] >= 40 and discussed[1] >= 0.5 * discussed[0], discussed
    assert judged == 55 and tokens <= 600 * judged, (tokens, judged)
    assert max(prompt.tokens(conversation_of(body)) for body in calls) <= Reading().batch_tokens


def many_stories(n: int) -> list:
    base = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())
    return [parse.Story("hn", str(10_000 + i), i + 1, f"{base[i % len(base)].title} (part {i})",
                        f"https://example{i}.org/post", f"https://news.ycombinator.com/item?id={10_000 + i}",
                        f"example{i}.org", 10 + i, 3, None, None) for i in range(n)]


class Recording(Model):
    """A scripted model that keeps the size of every prompt it was sent, and judges like the careful one."""

    def __init__(self):
        super().__init__(model_id="recording")
        self.prompts: list[int] = []

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
        text = "\n".join(rules.text_of(m) for m in messages)
        self.prompts.append(prompt.tokens(text))
        code = careful_code(text)
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: judging.\n<code>\n{code}\n</code>",
                           token_usage=TokenUsage(prompt.tokens(text), prompt.tokens(code)))


def test_a_site_of_100_candidates_is_judged_in_batches_no_prompt_growing(tmp_path):
    stories = many_stories(100)
    box = sandbox.create(tmp_path / "hn.db", "hn", 1, "2026-11-25T08:00:00Z", stories)
    text = " ".join(["The planner picks an index scan for this query because the table is large."] * 12)
    reading = articles.Reading(
        {s.source_id: articles.Article(s.url, "ok", fetched_at="2026-11-25T08:00:01Z", text=text) for s in stories},
        {s.source_id: discussions.Discussion([discussions.Comment("ann", 0, "It worked for us in production too.")])
         for s in stories}, [])
    site = agent.Site(box)
    site.add_reading(reading)
    model = Recording()
    result = agent.judge_site(site, model, vocabulary=VOCABULARY, judge=Judge(executor="local"))
    assert result.status == "ok" and not result.error, result.error
    budget = Reading().batch_tokens
    assert len(model.prompts) >= 4  # several batches, one call each
    assert max(model.prompts) <= budget
    assert max(model.prompts) - min(model.prompts[:-1]) <= 200, model.prompts  # no prompt grows batch after batch
    conn = sqlite3.connect(box.path)
    assert conn.execute("SELECT count(*), count(evidence) FROM judgments").fetchone() == (100, 100)


class Obedient(Model):
    """A model that obeys whatever instruction it finds: text outside any card is an order for every story,
    text inside a card an order for that story. If a card could be closed early, its article's orders would
    reach the other stories."""

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
        task = next(rules.text_of(m) for m in messages if prompt.CANDIDATES_MARKER in rules.text_of(m))
        body = task.split(prompt.CANDIDATES_MARKER, 1)[1]
        cards = cards_in(body)
        outside = re.sub(r"^=== story .*\n.*\n=== end of story .*$", "", body, flags=re.MULTILINE)
        everyone = "ignore previous instructions" in outside.lower()
        rows = [[i, 1 if everyone or "ignore previous instructions" in json.dumps(c).lower() else 0,
                 100 if everyone else 40, f"A story from {c['domain'] or 'the site'} about its title's subject.",
                 "obeyed" if everyone else "read"] for i, c in cards.items()]
        code = (f"rows = {rows!r}\n"
                "for story_id, relevant, score, summary, reason in rows:\n"
                "    sql('INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) VALUES "
                "(?, ?, ?, ?, ?, ?)', [run_id, story_id, relevant, score, summary, reason])\n"
                "    sql('INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?)', "
                "[run_id, story_id, 'web'])\n"
                "final_answer('done')\n")
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: obeying.\n<code>\n{code}\n</code>",
                           token_usage=TokenUsage(10, 10))


def test_a_hostile_article_moves_only_its_own_story(tmp_path):
    from .test_prompt import HOSTILE_ARTICLE

    stories = parse.parse("hn", (SNAPSHOT / "hn.html").read_text())[:6]
    box = sandbox.create(tmp_path / "hn.db", "hn", 1, "2026-11-25T08:00:00Z", stories)
    hostile = stories[0]
    reading = articles.Reading(
        {hostile.source_id: articles.Article(hostile.url, "ok", fetched_at="2026-11-25T08:00:01Z",
                                             text=HOSTILE_ARTICLE)}, {}, [])
    site = agent.Site(box)
    site.add_reading(reading)
    result = agent.judge_site(site, Obedient(model_id="obedient"), vocabulary=VOCABULARY,
                              judge=Judge(executor="local"))
    assert result.status == "ok", result.error
    rows = sqlite3.connect(box.path).execute("SELECT story_id, relevant, score, reason FROM judgments "
                                             "ORDER BY story_id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]  # no fake candidate, none lost
    assert rows[0][1] == 1 and all(r[1:] == (0, 40, "read") for r in rows[1:]), rows


class FailsOneBatch(Recording):
    """Judges every batch but the one holding story `broken`, whose code never runs."""

    def __init__(self, broken: int):
        super().__init__()
        self.broken = broken

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
        text = "\n".join(rules.text_of(m) for m in messages)
        if self.broken in cards_in(text):
            broken = "Thought: oops.\n<code>\nthis is not python(\n</code>"
            return ChatMessage(role=MessageRole.ASSISTANT, content=broken, token_usage=TokenUsage(10, 10))
        return super().generate(messages, stop_sequences, response_format, tools_to_call_from, **kwargs)


def test_a_failed_batch_costs_its_own_stories_and_the_run_is_partial(tmp_path, monkeypatch):
    from pipeline import refresh

    snapshot = snapshot_with_articles(tmp_path / "snapshot")
    monkeypatch.setattr(models, "make_model", lambda *a, **k: FailsOneBatch(broken=15))
    report = refresh.refresh(refresh.Options(db=str(tmp_path / "news.db"), snapshot=snapshot, sources=("hn",),
                                             judge=Judge(max_steps=2)))
    assert report.status == "partial"
    conn = sqlite3.connect(tmp_path / "news.db")
    status, judged, error = conn.execute("SELECT status, judged, error FROM run_sites").fetchone()
    assert status == "ok" and 0 < judged < 30
    assert re.match(r"batch \d+ of \d+ \(stories \d+-\d+\): the agent did not call final_answer", error), error
    unjudged = [i for (i,) in conn.execute("SELECT s.id FROM stories s WHERE NOT EXISTS "
                                           "(SELECT 1 FROM judgments j WHERE j.story_id = s.id)")]
    assert len(unjudged) == 30 - judged  # the failed batch's stories, and only those
