import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pipeline import store  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def history(tmp_path):
    """A fresh history database created from schema.sql."""
    return store.open_db(tmp_path / "news.db")


@pytest.fixture
def snapshot_dir(tmp_path):
    """A copy of the shipped real snapshot (hn.html + lobsters.html)."""
    dest = tmp_path / "snapshot"
    shutil.copytree(FIXTURES / "snapshot", dest)
    return dest


# --- judge helpers ------------------------------------------------------------------------

import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from smolagents import ChatMessage, MessageRole, Model  # noqa: E402
from smolagents.monitoring import TokenUsage  # noqa: E402

from pipeline import parse, rules, sandbox  # noqa: E402

VOCABULARY = {
    "ai": "AI", "programming": "languages", "python": "Python", "rust": "Rust", "go": "Go", "javascript": "JS",
    "web": "web", "databases": "databases", "devops": "devops", "security": "security", "systems": "systems",
    "hardware": "hardware", "science": "science", "business": "business", "culture": "culture",
}
SNAPSHOT = FIXTURES / "snapshot"


class ScriptedModel(Model):
    """A model that answers step N with script[N](task) -> code (or a plain string reply)."""

    def __init__(self, *script, delay: float = 0.0):
        super().__init__(model_id="scripted")
        self.script = list(script)
        self.calls = 0
        self.delay = delay

    def generate(self, messages, stop_sequences=None, **kwargs):
        task = next(rules.text_of(m) for m in messages if rules.CANDIDATES_MARKER in rules.text_of(m))
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


class StubLLM:
    """A loopback OpenAI-compatible server: each POST pops the next scripted reply."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                reply = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                status, payload, headers = reply(body) if callable(reply) else reply
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def completion(content, prompt_tokens=1000, completion_tokens=200):
    return (200, {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }, {})
