"""A loopback OpenAI-compatible chat server for tests and benchmarks (no network, no key)."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from pipeline import prompt, rules

from .helpers import LoopbackServer

NEWSREADER = str(Path(sys.executable).with_name("newsreader"))
SNAPSHOT = Path(__file__).parent / "fixtures" / "snapshot"
API_KEY = "sk-canary-5f0c2a9e71d44b3b"  # set in the refresh's environment; must never leave it


RESET = "reset"  # a reply that resets the connection
SLOW = "slow"  # (SLOW, seconds, reply): answer late


def as_dialect(path: str, payload: dict) -> dict:
    """An OpenAI chat-completion payload as the API at `path` answers: Anthropic's /v1/messages and
    Ollama's /api/chat speak their own shapes (LiteLLM reads each natively)."""
    if "choices" not in payload:
        return payload
    choice, usage = payload["choices"][0], payload.get("usage", {})
    content = choice["message"].get("content")
    if path.endswith("/messages"):
        stop = {"length": "max_tokens"}.get(choice.get("finish_reason"), "end_turn")
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": "stub", "stop_reason": stop,
                "content": [{"type": "text", "text": content}] if content else [],
                "usage": {"input_tokens": usage.get("prompt_tokens", 0),
                          "output_tokens": usage.get("completion_tokens", 0)}}
    if path.endswith("/api/chat"):
        return {"model": "stub", "created_at": "2026-11-26T00:00:00Z", "done": True,
                "done_reason": choice.get("finish_reason", "stop"),
                "message": {"role": "assistant", "content": content or ""},
                "prompt_eval_count": usage.get("prompt_tokens", 0), "eval_count": usage.get("completion_tokens", 0)}
    return payload


class StubLLM:
    """A loopback model server: each POST pops the next scripted reply (OpenAI-shaped, answered in the
    dialect of the path asked: OpenAI chat completions, Anthropic messages or Ollama chat)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["path"] = self.path
                stub.requests.append(body)
                reply = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                if reply == RESET:  # drop the connection with a TCP reset, no response
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if isinstance(reply, tuple) and reply and reply[0] == SLOW:
                    time.sleep(reply[1])
                    reply = reply[2]
                status, payload, headers = reply(body) if callable(reply) else reply
                data = json.dumps(as_dialect(self.path, payload) if status == 200 else payload).encode()
                self.send_response(status)  # a client gone (a SLOW reply past its timeout): LoopbackServer
                self.send_header("Content-Type", "application/json")  # says nothing
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = LoopbackServer(Handler)
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


def honest_or(attack):
    """Stub replies routed by the task's site: hn's agent gets `attack(step)`, lobsters' the rules model's code."""
    steps = {"hn": 0}

    def reply(body):
        texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in body["messages"]]
        task = next((text for text in texts if prompt.CANDIDATES_MARKER in text), None)
        if task is None:  # the collector's editor's note
            return completion("Two front pages, read for you.")
        if "today's Hacker News front page" in task:
            steps["hn"] += 1
            code = attack(steps["hn"])
        else:
            code = rules.code_for(task)
        return completion(f"Thought: judging.\n<code>\n{code}\n</code>")

    return reply


def refresh_args(db, stub, *args, snapshot=SNAPSHOT, model="openai/stub", api_base=None) -> list[str]:
    return ["refresh", "--db", str(db), "--snapshot", str(snapshot), "--model", model,
            "--api-base", api_base or stub.api_base, *args]


def cli_refresh(db, stub, *args, env=None, timeout=120, **options):
    """`newsreader refresh` with the stub as its LiteLLM model, as a user would run it."""
    environment = {**os.environ, "OPENAI_API_KEY": API_KEY, **(env or {})}
    return subprocess.run([NEWSREADER, *refresh_args(db, stub, *args, **options)],
                          capture_output=True, text=True, env=environment, timeout=timeout)


def cli_refresh_here(db, stub, *args, env=None, **options) -> subprocess.CompletedProcess:
    """The same command run in this process (click's runner): what it prints and its exit code, without a
    new interpreter importing LiteLLM again (seconds each). A traceback would be in its stderr, as a user
    would see it."""
    import traceback

    from click.testing import CliRunner

    from pipeline.cli import cli

    argv = refresh_args(db, stub, *args, **options)
    result = CliRunner().invoke(cli, argv, env={"OPENAI_API_KEY": API_KEY, **(env or {})})
    crashed = "" if result.exception is None or isinstance(result.exception, SystemExit) else \
        "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, result.stderr + crashed)
