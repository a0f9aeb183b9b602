import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pipeline import store  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = FIXTURES / "snapshot"


@pytest.fixture
def history(tmp_path):
    """A fresh history database created from schema.sql."""
    return store.open_db(tmp_path / "news.db")


@pytest.fixture(scope="session")
def refreshed(tmp_path_factory):
    """One history refreshed from the shipped snapshot (rules model, jail), built once per test session.

    For tests that only read it; a test that adds to a history takes `refreshed_copy`.
    """
    from pipeline import refresh

    db = tmp_path_factory.mktemp("refreshed") / "news.db"
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT)).status == "ok"
    return db


@pytest.fixture
def refreshed_copy(refreshed, tmp_path):
    """A private copy of the refreshed history at tmp_path/data/news.db (as if that refresh ran there)."""
    import sqlite3

    dest = tmp_path / "data" / "news.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    source, target = sqlite3.connect(refreshed), sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dest


@pytest.fixture
def snapshot_dir(tmp_path):
    """A copy of the shipped real snapshot (hn.html + lobsters.html)."""
    dest = tmp_path / "snapshot"
    shutil.copytree(FIXTURES / "snapshot", dest)
    return dest


# --- judge helpers ------------------------------------------------------------------------


import time  # noqa: E402

from smolagents import ChatMessage, MessageRole, Model  # noqa: E402
from smolagents.monitoring import TokenUsage  # noqa: E402

from pipeline import parse, rules, sandbox  # noqa: E402

VOCABULARY = {
    "ai": "AI", "programming": "languages", "python": "Python", "rust": "Rust", "go": "Go", "javascript": "JS",
    "web": "web", "databases": "databases", "devops": "devops", "security": "security", "systems": "systems",
    "hardware": "hardware", "science": "science", "business": "business", "culture": "culture",
}


class ScriptedModel(Model):
    """A model that answers step N with script[N](task) -> code (or a plain string reply)."""

    def __init__(self, *script, delay: float = 0.0):
        super().__init__(model_id="scripted")
        self.script = list(script)
        self.calls = 0
        self.delay = delay
        self.prompt_chars: list[int] = []  # size of what the model was shown, per call

    def generate(self, messages, stop_sequences=None, **kwargs):
        task = next(rules.text_of(m) for m in messages if rules.CANDIDATES_MARKER in rules.text_of(m))
        self.prompt_chars.append(sum(len(rules.text_of(m)) for m in messages))
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        code = step(task) if callable(step) else step
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: scripted.\n<code>\n{code}\n</code>",
                           token_usage=TokenUsage(100, 20))


def make_box(tmp_path, source="hn", run_id=1):
    html = (SNAPSHOT / f"{source}.html").read_text()
    return sandbox.create(tmp_path / f"{source}-{run_id}.db", source, run_id, "2026-11-25T08:00:00Z",
                          parse.parse(source, html))


from .stub_llm import StubLLM, completion  # noqa: E402,F401 - shared with the benchmarks
