"""`newsreader eval`: metrics computed through the real judge path, checked on a tiny labels file by hand."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from pipeline import agent, evaluate, models, rules
from pipeline.cli import cli
from pipeline.sandbox import reference_vocabulary
from pipeline.settings import Judge

from .helpers import FIXTURES, FRESH, ScriptedModel

LABELS = """source,file,rank,title,url,domain,native_tags,relevant,tags
hn,hn_fben3-2024-08.html,1,Bypassing airport security via SQL injection,https://ian.sh/tsa,ian.sh,,1,security;web
hn,hn_fben3-2024-08.html,2,"Dawn of a new era in Search: Balancing innovation, competition, and public good",,\
kagi.com,,0,business;web
hn,hn_fben3-2024-08.html,3,OpenAI is good at unminifying code,,glama.ai,,1,ai;javascript
"""

# The scripted judge: story 1 right (relevant, security), story 2 wrongly relevant (business),
# story 3 wrongly irrelevant (ai); every other story on the page gets a filler judgment.
SCRIPT = """
special = {1: (1, 'security'), 2: (1, 'business'), 3: (0, 'ai')}
for story_id in range(1, 31):
    relevant, tag = special.get(story_id, (0, 'culture'))
    sql("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
        "VALUES (1, ?, ?, 50, 'A scripted judgment with enough words.', 'test')",
        [story_id, relevant])
    sql("INSERT INTO story_tags VALUES (1, ?, ?)", [story_id, tag])
final_answer('done')
"""


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(LABELS)
    return path


def test_metrics_on_a_hand_made_labels_file(labels, monkeypatch):
    monkeypatch.setattr(models, "make_model", lambda *a, **k: ScriptedModel(SCRIPT))
    m = evaluate.evaluate(labels, html_dir=FIXTURES / "html", vocabulary=reference_vocabulary(),
                          judge=Judge(model="scripted"))
    assert m["stories"] == 3 and m["pages"] == 1 and m["errors"] == []
    # relevance: TP=1 (story 1), FP=1 (story 2), FN=1 (story 3), TN=0
    assert m["relevance_accuracy"] == pytest.approx(1 / 3)
    assert (m["relevance_precision"], m["relevance_recall"], m["relevance_f1"]) == (0.5, 0.5, 0.5)
    # tags: predicted security/business/ai all right, gold web, web, javascript missed -> micro P 1, R 1/2
    assert m["tag_micro_precision"] == 1.0 and m["tag_micro_recall"] == 0.5
    assert m["tag_micro_f1"] == pytest.approx(2 / 3)
    # macro over {ai, business, javascript, security, web}: F1 1, 1, 0, 1, 0
    assert m["tag_macro_f1"] == pytest.approx(3 / 5)
    assert m["tags"]["web"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["summary_is_title_rate"] == 0.0
    assert m["llm_calls_per_story"] == pytest.approx(1 / 3) and m["input_tokens_per_story"] == pytest.approx(100 / 3)


def test_eval_json_on_the_dev_set_beats_the_keyword_baseline():
    labels = FIXTURES / "labels.csv"  # the dev set, copied from shared/fixtures; pages in html/ beside it
    runner = CliRunner()
    results = {}
    for model in ("rules", "keyword-baseline"):
        out = runner.invoke(cli, ["eval", "--labels", str(labels), "--model", model, "--json"])
        assert out.exit_code == 0, out.output
        results[model] = json.loads(out.output)
        assert {"relevance_accuracy", "relevance_f1", "tag_macro_f1", "tag_micro_f1", "summary_is_title_rate",
                "stories", "tags"} <= set(results[model])
        assert results[model]["stories"] == 110
    rules, baseline = results["rules"], results["keyword-baseline"]
    print(f"\nrules: acc {rules['relevance_accuracy']:.3f} tag macro-F1 {rules['tag_macro_f1']:.3f}; "
          f"baseline: acc {baseline['relevance_accuracy']:.3f} tag macro-F1 {baseline['tag_macro_f1']:.3f}")
    assert rules["relevance_accuracy"] > baseline["relevance_accuracy"]
    assert rules["tag_macro_f1"] > baseline["tag_macro_f1"]
    assert rules["summary_is_title_rate"] == 0.0


def test_bad_labels_are_a_clear_error(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("title,relevant\nx,1\n")
    out = CliRunner().invoke(cli, ["eval", "--labels", str(bad)])
    assert out.exit_code == 1 and "missing column(s) file, rank, source, tags" in out.output
    missing_page = tmp_path / "l2.csv"
    missing_page.write_text(LABELS)
    out = CliRunner().invoke(cli, ["eval", "--labels", str(missing_page), "--html-dir", str(tmp_path)])
    assert out.exit_code == 1 and "hn_fben3-2024-08.html listed in" in out.output and "Traceback" not in out.output


def test_eval_reads_the_recorded_articles_when_the_pages_folder_has_them(tmp_path):
    """A folder of labelled pages with an articles.warc.gz is judged as a live run would have been: reading first."""
    from .helpers import snapshot_with_articles

    pages = snapshot_with_articles(tmp_path / "html")
    predictions, result = evaluate.predict_page("hn", (pages / "hn.html").read_text(), Judge(executor="local"),
                                                reference_vocabulary(), tmp_path / "work",
                                                replay=pages / "articles.warc.gz")
    assert result.status == "ok" and len(predictions) == 30
    conn = sqlite3.connect(tmp_path / "work" / "hn.db")
    assert conn.execute("SELECT count(*) FROM story_articles").fetchone()[0] >= 15
    assert conn.execute("SELECT count(*) FROM judgments WHERE evidence IS NOT NULL").fetchone()[0] >= 15


class DownFor(ScriptedModel):
    """The rules' answers, except on `site`'s pages (None: every page), where every call fails, as in a
    provider's outage or with a bad key."""

    def __init__(self, site=None):
        super().__init__(rules.code_for)
        self.site = site

    def generate(self, messages, stop_sequences=None, **kwargs):
        if self.site is None or any(f"site: {self.site}\n" in rules.text_of(m) for m in messages):
            raise RuntimeError(f"the model is down for {self.site or 'every site'}")
        return super().generate(messages, stop_sequences, **kwargs)


def test_a_curve_with_pages_the_model_could_not_judge_names_them_and_fails(monkeypatch):
    """Their stories count as wrong, as in eval; the table is printed, each failure named, the exit non-zero."""
    monkeypatch.setattr(models, "make_model", lambda *a, **k: DownFor("lobsters"))
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--curve", "--orders", "2",
                                   "--executor", "local", "--embeddings", "none"])  # failures, not what is learned
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0].split() == ["votes", "accuracy", "tag", "macro-F1", "orders"]
    assert lines[-1].startswith("embeddings:")
    errors = lines[7:-1]
    assert len(errors) == 2 * 2 + 4 * 2 * 2  # two pages at 0 and at all votes, and in each of two orders between
    assert all("the model is down for lobsters" in line for line in errors)
    assert errors[0].startswith("error (0 votes): lobsters_claw-front-2023-03.html: ")


def test_a_curve_no_page_of_which_could_be_judged_is_one_line(monkeypatch):
    """It stops at the first point: the others would only fail the same way (and spend the same calls)."""
    model = DownFor()
    monkeypatch.setattr(models, "make_model", lambda *a, **k: model)
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FIXTURES / "labels.csv"), "--curve", "--executor",
                                   "local"])
    assert out.exit_code == 1 and len(out.output.splitlines()) == 1
    assert out.output.startswith("Error: no page could be judged (hn_fben3-2024-08.html: ")
    assert "the model is down for every site" in out.output


def test_a_model_litellm_does_not_know_fails_each_page_without_litellms_banner(labels, monkeypatch):
    """LiteLLM prints a "Provider List" banner on stdout when a call fails, unless told not to."""
    import litellm

    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    out = CliRunner().invoke(cli, ["eval", "--labels", str(labels), "--html-dir", str(FIXTURES / "html"),
                                   "--model", "nosuch/model", "--executor", "local"])
    assert out.exit_code == 1 and "error: hn_fben3-2024-08.html: " in out.output
    assert "LLM Provider NOT provided" in out.output and "Provider List" not in out.output


def test_a_curve_says_once_that_there_is_no_jail(monkeypatch):
    """The executor is chosen once for the whole curve, not for each of its 24 page judgments."""
    monkeypatch.setattr(agent.jail, "unavailable", lambda: "no bubblewrap here")
    out = CliRunner().invoke(cli, ["eval", "--labels", str(FRESH), "--curve", "--orders", "1",  # 4 pages x 6 points
                                   "--embeddings", "none"])  # the executor, not what is learned
    assert out.exit_code == 0, out.output
    assert out.output.count("notice: no jail on this machine (no bubblewrap here)") == 1
