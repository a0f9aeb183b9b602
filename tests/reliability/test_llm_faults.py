"""LLM faults through LiteLLM against the loopback stub: the hn site's model misbehaves, lobsters' is fine.

Retries are bounded, the faulty site ends `failed` with a one-line reason, lobsters lands,
the run is `partial`, and the refresh finishes in bounded time.
"""

import sqlite3
import time

import pytest

from pipeline import models, refresh, rules
from pipeline.settings import Judge

from ..helpers import SNAPSHOT, LoopbackServer
from ..stub_llm import RESET, SLOW, StubLLM, completion
from .figures import after_module, record

FAULTS = {
    "429 with Retry-After": [(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})],
    "500": [(500, {"error": {"message": "internal error"}}, {})],
    "connection reset": [RESET],
    "timeout": [(SLOW, 2.5, completion("too late"))],
    "empty completion": [completion("")],
    "non-code answer": [completion("These all look like great stories to me!")],
    "truncated code block": [completion("Thought: judging.\n<code>\nfor story_id in range(1, 31):\n    sql(\"INSERT")],
}
SEEN = {"faults": 0, "requests": 0, "seconds": 0.0}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulty_model_fails_its_site_and_the_other_lands(tmp_path, monkeypatch, fault):
    real_make_model = models.make_model
    db = tmp_path / "news.db"
    with StubLLM(FAULTS[fault]) as stub:
        queue = iter([
            real_make_model("openai/stub", api_base=stub.api_base, api_key="sk-test", timeout=1, max_retries=1,
                            retry_wait=0.2),
            rules.RulesModel(),
        ])
        monkeypatch.setattr(models, "make_model", lambda *a, **k: next(queue, rules.RulesModel()))
        t0 = time.monotonic()
        report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT, judge=Judge(max_steps=2)))
        elapsed = time.monotonic() - t0
        requests = len(stub.requests)
    assert report.status == "partial" and report.sites == {"hn": "failed", "lobsters": "ok"}, report
    conn = sqlite3.connect(db)
    error = conn.execute("SELECT error FROM run_sites WHERE source = 'hn'").fetchone()[0]
    assert error and "\n" not in error and "Traceback" not in error
    assert conn.execute("SELECT DISTINCT source FROM stories").fetchall() == [("lobsters",)]
    assert conn.execute("SELECT status FROM runs").fetchone() == ("partial",)
    assert requests <= 12, requests  # bounded retries
    assert elapsed < 45, elapsed
    SEEN["faults"] += 1
    SEEN["requests"] += requests
    SEEN["seconds"] = max(SEEN["seconds"], elapsed)


@after_module(lambda: any(SEEN.values()))
def llm_fault_figures():
    record("LLM faults via the loopback stub (LiteLLM)", len(FAULTS), SEEN["faults"], 0, 0,
           f"{SEEN['requests']} model requests in all; slowest refresh {SEEN['seconds']:.1f} s; other site landed")


def test_a_model_endpoint_dripping_bytes_cannot_hold_a_site_past_its_deadline(tmp_path):
    """LiteLLM's timeout bounds each read, not the call: an endpoint sending one byte a second held one call
    for 88 s against site_timeout = 20. Every model call now ends by the site's deadline."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler

    from ..stub_llm import cli_refresh

    body = json.dumps(completion("Thought: judging.\n<code>\nfinal_answer('done')\n</code>")[1]).encode()

    class Drip(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body[:120]:  # 120 s at one byte a second, well past the deadline (the client gone,
                self.wfile.write(bytes([byte]))  # LoopbackServer says nothing of the broken pipe)
                self.wfile.flush()
                time.sleep(1)
            self.wfile.write(body[120:])

        def log_message(self, *args):
            pass

    httpd = LoopbackServer(Drip)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    config = tmp_path / "newsreader.toml"
    config.write_text("site_timeout = 8\n")
    stub = type("Stub", (), {"api_base": f"http://127.0.0.1:{httpd.server_address[1]}/v1"})
    try:
        t0 = time.monotonic()
        done = cli_refresh(tmp_path / "news.db", stub, env={"NEWSREADER_CONFIG": str(config)})
        elapsed = time.monotonic() - t0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    conn = sqlite3.connect(tmp_path / "news.db")
    errors = dict(conn.execute("SELECT source, error FROM run_sites"))
    conn.close()
    assert set(errors) == {"hn", "lobsters"}
    assert all("time limit" in error for error in errors.values()), errors
    assert elapsed < 8 + 20, elapsed  # the deadline, plus start-up (LiteLLM's import) and the sync
    record("LLM: an endpoint dripping its answer one byte a second, site_timeout 8", 1, 1, 0, 0,
           f"both sites stopped at their deadline; the refresh ended in {elapsed:.1f} s")
