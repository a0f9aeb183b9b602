"""What four real small local models answered to our prompts (../shared/fixtures/real-replies), replayed
through the CLI as the model behind `--model openai/local`: each reply is a behaviour a real model had.

None of these refreshes can land (no reply in them judges the stories), so what is checked is what the
host makes of them: no traceback, every call counted with its tokens, the stored error naming the real
cause, and a memory that never repeats a line of code cut in the middle (the models copied cut code back).
"""

import json
import re
import sqlite3
from pathlib import Path

import pytest

from pipeline import prompt

from .stub_llm import StubLLM, cli_refresh_here, completion

REPLIES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-replies"
FILES = sorted(REPLIES.glob("*.jsonl"))
# The memory's own lines: what a step's code did, what was left out, the code block's tags.
NOTE = re.compile(r"^(\[this code (ran|failed) .*\]|(# )?\[\.\.\. \d+ more lines of this (code|thought|reply) not "
                  r"repeated\]|<code>|</code>)$")


def replies(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replayed(rows: list[dict]):
    """A stub reply function: the n-th judging call gets the n-th real reply, with its finish reason and
    token usage as the real server reported them (the last one repeats)."""
    served = []

    def answer(body):
        if prompt.CANDIDATES_MARKER not in json.dumps(body):
            return completion("An editor's note.")
        row = rows[min(len(served), len(rows) - 1)]
        served.append(body)
        usage = {**row["usage"], "total_tokens": row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"]}
        return 200, {"id": f"chatcmpl-{len(served)}", "object": "chat.completion", "created": 0, "model": "local",
                     "choices": [{"index": 0, "finish_reason": row["finish"],
                                  "message": {"role": "assistant", "content": row["content"]}}],
                     "usage": usage}, {}

    return answer


def judging_calls(stub) -> list[dict]:
    return [body for body in stub.requests if prompt.CANDIDATES_MARKER in json.dumps(body)]


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


@pytest.fixture(params=FILES, ids=[path.stem for path in FILES], scope="module")
def replay(request, tmp_path_factory):
    """One real model's refresh replayed: Lobsters' snapshot, as many steps as the model made calls."""
    rows = replies(request.param)
    tmp = tmp_path_factory.mktemp(request.param.stem)
    with StubLLM([replayed(rows)]) as stub:
        done = cli_refresh_here(tmp / "news.db", stub, "--source", "lobsters", "--max-steps", str(len(rows)),
                                model="openai/local")
    site = sqlite3.connect(tmp / "news.db").execute(
        "SELECT status, error, llm_calls, input_tokens, output_tokens FROM run_sites").fetchone()
    return rows, stub, done, site


# The true cause of each replayed refresh's failure, as its last reply shows it.
CAUSES = {
    "b1": "SyntaxError: unterminated string literal",  # its own code, copied from a cut memory, cut again
    "b2fh": "Import of sqlite3 is not allowed",
    "b3fh": "context window was full (7953 prompt + 239 reply tokens)",  # not "the output limit": 239 < 3000
    "both1": "opened a ``` code block and never closed it",
    "c1": "context window was full (1766 prompt + 282 reply tokens)",
    "gboth": "held no code (only comments or blank lines)",  # Gemma echoed the system prompt's example
    "l1": "SyntaxError: '[' was never closed",
    "l2full": "Import of sqlite3 is not allowed",
    "l3fh": "Import of sqlite3 is not allowed",
    "q4": "opened a ``` code block and never closed it",
    "s1": "(0 of 25 stories judged)",  # SmolLM2's code ran: it defined functions and never called sql()
}


def test_every_file_has_its_cause():
    assert sorted(CAUSES) == [path.stem for path in FILES]


def test_the_refresh_fails_with_one_clear_line_and_no_traceback(replay):
    rows, stub, done, (status, error, *_) = replay
    assert done.returncode == 1 and status == "failed"
    assert "Traceback" not in done.stderr + done.stdout
    assert "\n" not in error and "error: run 1: failed" in done.stderr


def test_every_call_is_counted_with_its_tokens(replay):
    rows, stub, done, (status, error, calls, input_tokens, output_tokens) = replay
    assert calls == len(judging_calls(stub)) == len(rows)
    assert input_tokens == sum(row["usage"]["prompt_tokens"] for row in rows)
    assert output_tokens == sum(row["usage"]["completion_tokens"] for row in rows)


def test_the_stored_error_names_the_real_cause(replay, request):
    rows, stub, done, (status, error, *_) = replay
    cause = CAUSES[request.node.callspec.id]
    assert cause in error, error
    if "Import of sqlite3" in cause:  # and the model was told where the database is
        assert "call sql(statement, params), which is already defined" in json.dumps(judging_calls(stub)[-1])


def test_no_prompt_repeats_a_cut_line_of_code(replay):
    """Every line a prompt shows of an earlier reply is a whole line the model wrote or one of the memory's
    own notes: failed code is repeated in whole lines or not at all, succeeded code by what it wrote,
    and no note claims that code which failed wrote anything."""
    rows, stub, done, site = replay
    written = {line.rstrip() for row in rows for line in (row["content"] or "").splitlines()}
    for body in judging_calls(stub):
        for message in body["messages"]:
            if message["role"] != "assistant":
                continue
            for line in text_of(message).splitlines():
                assert line.rstrip() in written or NOTE.match(line), line
                if line.startswith("[this code failed"):
                    assert "which are in the database" not in line  # none of these models wrote a judgment
