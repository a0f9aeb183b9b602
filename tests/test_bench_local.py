"""`make bench-local`'s own measuring and writing, against a loopback stub that replays what SmolLM2
answered (../shared/fixtures/real-replies/s1.jsonl), not against the model: the figures it writes are
the ones the history recorded, and its section of BENCHMARKS.md survives `make bench` rewriting the rest."""

from benchmarks import local

from .stub_llm import StubLLM
from .test_real_replies import REPLIES, replayed, replies


def test_the_bench_reports_what_the_history_recorded(tmp_path):
    rows = replies(REPLIES / "s1.jsonl")
    with StubLLM([replayed(rows)]) as stub:
        measured = local.measure(stub.api_base, tmp_path)
    assert (measured.status, measured.steps, measured.calls, measured.judged, measured.stories) == \
        ("failed", 6, 6, 0, 5)
    assert measured.input_tokens == sum(row["usage"]["prompt_tokens"] for row in rows[:6])
    assert measured.output_tokens == sum(row["usage"]["completion_tokens"] for row in rows[:6])
    assert measured.error.startswith("the agent did not call final_answer within 6 steps (0 of 5 stories judged)")
    assert 0 < measured.seconds_per_step < measured.seconds
    text = local.section(measured, "SmolLM2", "a stub")
    assert "| model calls | 6 |" in text and "| stories judged | 0 of 5 |" in text
    assert f"| last error as stored | {measured.error} |" in text


def test_the_section_replaces_its_old_self_and_make_bench_keeps_it(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n| a | b |\n")
    first = local.section(local.Measured("failed", 6, 7, 100, 10, 0, 5, 12.0, 20.0, "x | y"), "M", "S")
    local.write_section(path, first)
    second = first.replace("| agent steps | 6 |", "| agent steps | 4 |")
    local.write_section(path, second)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\n| a | b |\n") and text.count(local.BEGIN) == 1
    assert "| agent steps | 4 |" in text and "x \\| y" in text  # a | in the error does not break the table
    assert local.carried_section(path) == second
