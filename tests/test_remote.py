"""Remote executors: the sandbox DB is shipped into the kernel and read back, so sync is the same."""

import sqlite3

from pipeline import agent, executors, refresh, rules

from .helpers import SNAPSHOT, VOCABULARY, ScriptedModel, judgments, make_box
from .kernel_double import SubprocessKernel


def test_sandbox_round_trip_through_a_remote_kernel(tmp_path):
    box = make_box(tmp_path, "lobsters")
    kernel = SubprocessKernel(tmp_path / "kernel")
    result = agent.judge_site(agent.Site(box), ScriptedModel(rules.code_for), vocabulary=VOCABULARY,
                              python_executor=kernel)
    assert result.status == "ok", result.error
    assert (tmp_path / "kernel" / executors.REMOTE_DB).is_file()  # the agent wrote into the kernel's copy
    host = sqlite3.connect(box.path)  # ... and the host's copy holds what it wrote
    assert host.execute("SELECT count(*) FROM judgments").fetchone() == (25,)


def test_refresh_with_a_remote_kernel_matches_the_jail(tmp_path, refreshed):
    remote_db = tmp_path / "remote" / "news.db"
    kernels = iter(range(10))
    remote = refresh.refresh(refresh.Options(
        db=str(remote_db), snapshot=SNAPSHOT,
        python_executor_factory=lambda: SubprocessKernel(tmp_path / f"kernel{next(kernels)}")))
    assert remote.status == "ok"
    assert judgments(remote_db) == judgments(refreshed)
    assert len(judgments(refreshed)) == 55
