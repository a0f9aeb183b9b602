"""Hostile generated code, end to end: the hn agent's model writes only attacks, lobsters' is honest.

Each attack is refused or bounded, the hn site fails after its steps without touching
history, lobsters lands, the run is `partial`, and the run record and logs say what happened.
"""

import json
import re
import sqlite3

import pytest

from pipeline import agent, executors, models, refresh, rules, schema
from pipeline.progress import Reporter
from pipeline.settings import Judge

from ..helpers import SNAPSHOT, ScriptedModel
from .figures import after_module, record

ATTACKS = {
    "import os": ("import os\nos.system('touch /tmp/pwned')", "Import of os is not allowed"),
    "open()": ("print(open('/etc/passwd').read())", "Forbidden function evaluation: 'open'"),
    "__import__": ("__import__('subprocess').run(['id'])", "Forbidden function evaluation: '__import__'"),
    "getattr trick": ("g = getattr(sql, '__globals__')\nprint(g)", "Forbidden"),
    "dunder walk": ("print(().__class__.__base__.__subclasses__())", "Forbidden access to dunder attribute"),
    "ATTACH": ("print(sql(\"ATTACH DATABASE '/tmp/evil.db' AS evil\"))", "error: not authorized"),
    "PRAGMA writable_schema": ("print(sql('PRAGMA writable_schema=1'))", "error: not authorized"),
    "DROP TABLE": ("print(sql('DROP TABLE stories'))", "error: not authorized"),
    "CREATE TRIGGER": ("print(sql('CREATE TRIGGER t AFTER INSERT ON judgments BEGIN DELETE FROM tags; END'))",
                       "error: not authorized"),
    "multi-statement": ("print(sql(\"INSERT INTO story_tags VALUES (1,1,'ai'); DROP TABLE tags\"))",
                        "one statement at a time"),
    # Stopped by the executor's time limit or its loop-iteration cap, whichever comes first.
    "endless loop": ("x = 0\nwhile True:\n    x += 1", "exceeded the maximum execution time|iterations in While loop"),
    "10 MB print": ("print('x' * 10_000_000)", "Execution logs: xxxxxxxx"),
    "garbage final_answer": ("final_answer({'all': 'done', 'trust': 'me'})", "not done yet"),
}


@pytest.fixture
def history_before(refreshed_copy):
    db = refreshed_copy
    conn = sqlite3.connect(db)
    tables = schema.schema_of(conn)
    stories = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
    conn.close()
    return db, tables, stories


RESULTS = {"attacks": 0, "refused": 0}


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_is_refused_and_history_unchanged(tmp_path, monkeypatch, history_before, name):
    code, refusal = ATTACKS[name]
    db, tables, stories = history_before
    queue = iter([ScriptedModel(code), ScriptedModel(rules.code_for)])
    monkeypatch.setattr(models, "make_model", lambda *a, **k: next(queue, rules.RulesModel()))
    reporter = Reporter(tmp_path / "logs", quiet=True)
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, reporter=reporter, reuse_days=0,
                                             judge=Judge(max_steps=2, executor_options={"timeout_seconds": 8})))
    assert report.status == "partial" and report.sites == {"hn": "failed", "lobsters": "ok"}
    conn = sqlite3.connect(db)
    assert schema.schema_of(conn) == tables
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM stories").fetchone()[0] == stories  # hn re-seen, nothing added
    assert conn.execute("SELECT count(*) FROM sightings WHERE run_id = ? AND story_id IN "
                        "(SELECT id FROM stories WHERE source = 'hn')", [report.run_id]).fetchone() == (0,)
    status, error = conn.execute("SELECT status, error FROM run_sites WHERE run_id = ? AND source = 'hn'",
                                 [report.run_id]).fetchone()
    assert status == "failed" and "did not call final_answer within 2 steps" in error
    steps = [json.loads(line) for path in (tmp_path / "logs").glob("*.jsonl") for line in path.read_text().splitlines()]
    hn_steps = [s["detail"] for s in steps if s.get("site") == "hn" and s["status"] == "step"]
    assert any(re.search(refusal, detail) for detail in hn_steps), hn_steps
    assert all(len(detail) <= 2000 for detail in hn_steps)  # printing 10 MB is bounded
    RESULTS["attacks"] += 1
    RESULTS["refused"] += 1


def test_printing_10_mb_reaches_the_model_bounded(tmp_path):
    """The executor truncates printed output, so the next prompt stays small."""
    from ..helpers import VOCABULARY, make_box

    model = ScriptedModel("print('x' * 10_000_000)", rules.code_for)
    result = agent.judge_site(agent.Site(make_box(tmp_path)), model, vocabulary=VOCABULARY)
    assert result.status == "ok"
    bound = executors.LOCAL_EXECUTOR_DEFAULTS["max_print_outputs_length"]
    assert model.prompt_chars[1] - model.prompt_chars[0] < bound + 5000


@after_module(lambda: any(RESULTS.values()))
def hostile_figures():
    record("hostile generated code (scripted model), full refresh", len(ATTACKS), RESULTS["refused"], 0, 0,
           "each attack refused or bounded; hn failed after 2 steps, lobsters landed, run partial, schema unchanged")
