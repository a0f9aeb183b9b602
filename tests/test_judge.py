"""The judge: CodeAgents writing INSERTs into constrained sandboxes, driven by scripted, stub and rules models."""

import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner

from pipeline import agent, models, prompt, rules, sandbox, schema
from pipeline.cli import cli

from .helpers import SNAPSHOT, VOCABULARY, ScriptedModel, make_box
from .stub_llm import StubLLM, completion


def judge(box, model, **kwargs):
    return agent.judge_site(agent.Site(box), model, vocabulary=VOCABULARY, **kwargs)


def rules_code(task):
    return rules.code_for(task)


def test_rules_refresh_judges_every_story_of_both_sites(tmp_path):
    db = tmp_path / "news.db"
    result = CliRunner().invoke(cli, ["refresh", "--db", str(db), "--snapshot", str(SNAPSHOT), "--model", "rules"])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    by_source = conn.execute("SELECT source, count(*) FROM stories GROUP BY source").fetchall()
    assert by_source == [("hn", 30), ("lobsters", 25)]
    assert conn.execute("SELECT count(*) FROM judgments").fetchone() == (55,)
    untagged = conn.execute(
        "SELECT count(*) FROM judgments j WHERE NOT EXISTS "
        "(SELECT 1 FROM story_tags t WHERE t.run_id = j.run_id AND t.story_id = j.story_id)"
    ).fetchone()
    assert untagged == (0,)
    pairs = conn.execute("SELECT s.title, j.summary FROM judgments j JOIN stories s ON s.id = j.story_id")
    for title, summary in pairs:
        assert summary.lower() != title.lower() and title.lower() not in summary.lower()
    run = conn.execute("SELECT status, model, executor, steps, llm_calls FROM runs").fetchone()
    assert run == ("ok", "rules", "jail", 2, 2)
    assert conn.execute("SELECT count(*) FROM digests").fetchone() == (1,)


def test_happy_path_takes_one_step(tmp_path):
    model = ScriptedModel(rules_code)
    result = judge(make_box(tmp_path), model)
    assert (result.status, result.steps, model.calls) == ("ok", 1, 1)
    assert (result.input_tokens, result.output_tokens) == (100, 20)


def test_constraint_violation_is_an_observation_and_the_fix_lands(tmp_path):
    box = make_box(tmp_path, "lobsters")
    title = box.candidates[1].title

    def first(task):
        # Judges everything except story 1, whose summary just repeats the title.
        code = rules.code_for(task)
        return code.replace("final_answer(", "print(sql('INSERT INTO judgments "
                                             "(run_id, story_id, relevant, score, summary, reason) "
                                             "VALUES (1, 1, 1, 70, ?, ?)', "
                            f"[{title!r}, 'x']))\nfinal_answer(", 1).replace("rows = [[1,", "rows = [[999,", 1)

    def second(task):
        return ("print(sql('INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason) "
                           "VALUES (1, 1, 1, 70, ?, ?)', "
                "['A browser developer argues for a smaller web that simple engines can render.', 'web']))\n"
                "print(sql(\"INSERT INTO story_tags VALUES (1, 1, 'web')\"))\nfinal_answer('fixed')")

    model = ScriptedModel(first, second)
    result = judge(box, model)
    assert result.status == "ok", result.error
    assert result.steps == 2
    assert "summary repeats the title" in result.log[0]
    assert "stories without a judgment: [1]" not in result.log[1]
    conn = sqlite3.connect(box.path)
    summary = conn.execute("SELECT summary FROM judgments WHERE story_id = 1").fetchone()[0]
    assert summary.startswith("A browser developer")


HOSTILE = [
    ('print(sql("DROP TABLE judgments"))', "not authorized"),
    ('print(sql("PRAGMA foreign_keys=OFF"))', "not authorized"),
    ("print(sql(\"ATTACH DATABASE '/tmp/evil.db' AS evil\"))", "not authorized"),
    ('print(sql("CREATE TRIGGER t AFTER INSERT ON judgments BEGIN SELECT 1; END"))', "not authorized"),
    ('print(sql("DELETE FROM stories"))', "not authorized"),
    ('print(sql("UPDATE stories SET title = \'pwned\'"))', "not authorized"),
    ('print(sql("SELECT 1; DROP TABLE stories"))', "one statement"),
    ("import sqlite3", "Import of sqlite3 is not allowed"),
    ("import os", "Import of os is not allowed"),
    ("open('/etc/passwd').read()", "Forbidden function evaluation: 'open'"),
    ("__import__('os').system('id')", "Forbidden function evaluation: '__import__'"),
]


@pytest.mark.parametrize("code,refusal", HOSTILE)
def test_hostile_code_is_refused_and_the_schema_is_unchanged(tmp_path, code, refusal):
    box = make_box(tmp_path)
    before = schema.schema_of(sqlite3.connect(box.path))
    model = ScriptedModel(code, rules_code)
    result = judge(box, model)
    assert refusal in result.log[0], result.log
    assert schema.schema_of(sqlite3.connect(box.path)) == before
    assert sandbox.validate(box.path) == []
    assert not (tmp_path / "evil.db").exists()
    assert result.status == "ok"  # the agent recovered on the next step


def test_a_model_that_never_finishes_fails_after_max_steps(tmp_path):
    box = make_box(tmp_path)
    model = ScriptedModel("print(sql('SELECT count(*) FROM stories'))")
    result = judge(box, model, max_steps=3)
    assert result.status == "failed"
    assert "did not call final_answer within 3 steps" in result.error
    assert model.calls == 3 == result.llm_calls  # no uncounted extra call for a summary after max_steps


def test_final_answer_before_judging_everything_is_refused(tmp_path):
    box = make_box(tmp_path)
    model = ScriptedModel("final_answer('all done, trust me')", rules_code)
    result = judge(box, model)
    assert result.status == "ok" and result.steps == 2
    assert model.calls == 2


def test_sites_run_concurrently(tmp_path):
    """Each site's model waits at its first call until the other site's model is in its own: one after the
    other, the first would wait in vain (the barrier breaks after 30 s and its site fails)."""
    sites = [agent.Site(make_box(tmp_path, "hn")), agent.Site(make_box(tmp_path, "lobsters"))]
    meet = threading.Barrier(2, timeout=30)
    results = agent.judge_sites(sites, lambda: ScriptedModel(rules_code, meet=meet), vocabulary=VOCABULARY)
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]


def test_a_failing_site_does_not_stop_the_other(tmp_path):
    sites = [agent.Site(make_box(tmp_path, "hn")), agent.Site(make_box(tmp_path, "lobsters"))]
    queue = iter([ScriptedModel("raise_error_here("), ScriptedModel(rules_code)])
    results = agent.judge_sites(sites, lambda: next(queue), vocabulary=VOCABULARY, max_steps=2)
    assert [r.status for r in results] == ["failed", "ok"]


# --- LiteLLM against a loopback OpenAI-compatible stub ------------------------------------------


def stub_model(stub):
    return models.make_model("openai/stub", api_base=stub.api_base, api_key="x", max_retries=2, retry_wait=0.1)


def code_reply(body):
    task = next(m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
                for m in body["messages"] if prompt.CANDIDATES_MARKER in str(m["content"]))
    return completion(f"Thought: judge all.\n<code>\n{rules.code_for(task)}</code>")


def test_litellm_model_completes_a_site_via_the_stub(tmp_path):
    with StubLLM([code_reply]) as stub:
        result = judge(make_box(tmp_path, "lobsters"), stub_model(stub))
    assert result.status == "ok", result.error
    assert (result.llm_calls, result.input_tokens, result.output_tokens) == (1, 1000, 200)
    assert stub.requests[0]["model"] == "stub"


def test_litellm_429_then_200_is_retried(tmp_path):
    with StubLLM([(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}), code_reply]) as stub:
        result = judge(make_box(tmp_path, "lobsters"), stub_model(stub))
    assert result.status == "ok", result.error
    assert len(stub.requests) == 2


def test_litellm_persistent_500_fails_the_site_cleanly(tmp_path):
    with StubLLM([(500, {"error": {"message": "boom"}}, {})]) as stub:
        t0 = time.monotonic()
        result = judge(make_box(tmp_path, "lobsters"), stub_model(stub))
    assert result.status == "failed"
    assert "Error" in result.error and "Traceback" not in result.error
    assert 2 <= len(stub.requests) <= 9  # bounded retries
    assert time.monotonic() - t0 < 30


def shown_at_step(script, tmp_path, step: int) -> str:
    """The whole conversation a scripted model was shown at `step` (1-based), on the HN snapshot's box."""
    seen = []

    class Shown(ScriptedModel):
        def generate(self, messages, *args, **kwargs):
            seen.append("\n".join(rules.text_of(m) for m in messages))
            return super().generate(messages, *args, **kwargs)

    agent.judge_site(agent.Site(make_box(tmp_path)), Shown(*script), vocabulary=VOCABULARY, max_steps=len(script),
                     executor="local")
    return seen[step - 1]


def test_after_each_step_the_model_is_told_where_its_batch_stands(tmp_path):
    """Real small models never learnt how far they had got: after each step the observation says so."""
    def half(task):  # the rules' judgments of the first 15 stories, and no final answer
        return rules.code_for(task).replace("final_answer(", "print(").replace(
            "\nfailed = write_judgments(rows", "\nrows = rows[:15]\nfailed = write_judgments(rows", 1)

    shown = shown_at_step([half, rules.code_for], tmp_path, 2)
    assert "Where this batch stands: 15 of 30 judged; still to judge: [16-30]." in shown


def test_an_import_refusal_points_to_the_sql_tool(tmp_path):
    """Small models `import sqlite3` at every step; the refusal now says what to call instead."""
    shown = shown_at_step(["import sqlite3\nconn = sqlite3.connect('judgments.db')", rules.code_for], tmp_path, 2)
    assert "Import of sqlite3 is not allowed" in shown
    assert "Do not import modules to reach the database: call sql(statement, params)" in shown


def test_the_rules_models_sandbox_code_is_a_function_tests_can_call():
    """What the rules model sends is rules.write_judgments' own source: one INSERT loop that ruff checks,
    which records what the database refused (a judgment, then each of its tags) with the reason."""
    said = []

    def sql(statement, params):
        said.append((statement.split()[2], params[1:2] + params[-1:]))
        return "error: refused" if params[-1] == "web" else "ok"

    rows = [[1, 1, 80, "A summary of it.", "why", None, None, None, ["rust", "web"]]]
    assert rules.write_judgments(rows, 7, sql) == [(1, "error: refused")]
    assert said == [("judgments", [1, None]), ("story_tags", [1, "rust"]), ("story_tags", [1, "web"])]
