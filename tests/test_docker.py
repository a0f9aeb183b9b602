"""`--executor docker`: real containers, built offline, locked down. `make test` starts dockerd and builds the
image; where Docker cannot run these tests fail with the reason (they are never skipped)."""

import os
import sqlite3
import time

import pytest

from pipeline import container, models, refresh, rules
from pipeline.settings import Judge

from .helpers import SNAPSHOT, ScriptedModel, judgments


@pytest.fixture(scope="module")
def image():
    try:
        return container.build_image()
    except container.ContainerError as exc:
        pytest.fail(f"the Docker sandbox cannot run here: {exc}")


@pytest.fixture
def box(image):
    executor = container.SandboxContainerExecutor([], image=image)
    yield executor
    executor.cleanup()


def left_by_this_process() -> list:
    """The sandbox containers this test process started and did not remove (another worker's are its own)."""
    ours = [container.LABEL, f"newsreader.pid={os.getpid()}"]
    return container.client().containers.list(all=True, filters={"label": ours})


def run(executor, code: str) -> str:
    return executor.run_code_raise_errors(code).logs


def test_docker_refresh_matches_the_jail(tmp_path, image, refreshed):
    docker = refresh.refresh(refresh.Options(db=str(tmp_path / "docker" / "news.db"), snapshot=SNAPSHOT,
                                             judge=Judge(executor="docker")))
    assert docker.status == "ok"
    assert judgments(tmp_path / "docker" / "news.db") == judgments(refreshed)
    conn = sqlite3.connect(tmp_path / "docker" / "news.db")
    assert conn.execute("SELECT executor FROM runs").fetchone() == ("docker",)
    assert left_by_this_process() == []  # removed


def test_no_network_inside(box):
    out = run(box, "import socket\n"
                   "for host in ('1.1.1.1', '8.8.8.8', 'deb.debian.org'):\n"
                   "    try:\n"
                   "        socket.create_connection((host, 80), timeout=3); print('CONNECTED', host)\n"
                   "    except OSError as e:\n"
                   "        print('refused', host, type(e).__name__)\n")
    assert "CONNECTED" not in out and out.count("refused") == 3


def test_host_filesystem_is_not_visible(box):
    out = run(box, "import os\nprint(os.path.exists('/work'), os.path.exists('/root/.pyenv'), "
                   "os.path.exists('/var/run/docker.sock'), os.getuid(), os.getcwd())")
    assert out.split() == ["False", "False", "False", "1000", "/sandbox"]


def test_only_the_sandbox_folder_is_writable(box):
    out = run(box, "for path in ('/etc/pwned', '/opt/kernel/pwned', '/pwned', '/sandbox/ok'):\n"
                   "    try:\n"
                   "        open(path, 'w').write('x'); print('wrote', path)\n"
                   "    except OSError as e:\n"
                   "        print('refused', path, e.errno)\n")
    assert "wrote /sandbox/ok" in out and out.count("refused") == 3


def test_a_fork_bomb_is_contained(box):
    out = run(box, "import os, time\nchildren = 0\n"
                   "try:\n"
                   "    for _ in range(5000):\n"
                   "        if os.fork() == 0:\n"
                   "            time.sleep(20); os._exit(0)\n"
                   "        children += 1\n"
                   "except OSError as e:\n"
                   "    print('fork refused after', children, e.errno)\n")
    assert "fork refused after" in out
    assert int(out.split("fork refused after")[1].split()[0]) < container.LIMITS["pids_limit"]


def test_a_memory_hog_fails_its_site_and_the_other_lands(tmp_path, monkeypatch, image):
    db = tmp_path / "news.db"
    queue = iter([ScriptedModel("hog = bytearray(2 * 1024 ** 3)\nprint(len(hog))"), rules.RulesModel()])
    monkeypatch.setattr(models, "make_model", lambda *a, **k: next(queue, rules.RulesModel()))
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT,
                                             judge=Judge(executor="docker", max_steps=2, step_timeout=10)))
    assert report.status == "partial" and report.sites == {"hn": "failed", "lobsters": "ok"}
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT DISTINCT source FROM stories").fetchall() == [("lobsters",)]
    error = conn.execute("SELECT error FROM run_sites WHERE source = 'hn'").fetchone()[0]
    assert error and "\n" not in error


def test_containers_of_a_dead_refresh_are_removed_at_the_next_start(image):
    docker_client = container.client()
    orphan = docker_client.containers.create(image, labels={container.LABEL: "1", "newsreader.pid": "999999"},
                                             network_mode="none")
    executor = container.SandboxContainerExecutor([], image=image)
    try:
        ids = {c.id for c in docker_client.containers.list(all=True, filters={"label": container.LABEL})}
        assert orphan.id not in ids and executor.container.id in ids
    finally:
        executor.cleanup()


def test_a_step_that_never_ends_is_killed_at_the_step_timeout(tmp_path, monkeypatch, image):
    """A wall-clock bound, not a per-read socket timeout: printing every second does not extend it."""
    db = tmp_path / "news.db"
    endless = "import time\nwhile True:\n    print('still here', flush=True)\n    time.sleep(1)"
    queue = iter([ScriptedModel(endless), rules.RulesModel()])
    monkeypatch.setattr(models, "make_model", lambda *a, **k: next(queue, rules.RulesModel()))
    t0 = time.monotonic()
    report = refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT,
                                             judge=Judge(executor="docker", max_steps=3, step_timeout=5)))
    elapsed = time.monotonic() - t0
    assert report.status == "partial" and report.sites == {"hn": "failed", "lobsters": "ok"}
    assert elapsed < 3 * 5 + 10, elapsed  # 3 x the bound, plus two containers' start-up
    conn = sqlite3.connect(db)
    error = conn.execute("SELECT error FROM run_sites WHERE source = 'hn'").fetchone()[0]
    assert error == "stopped: the step ran past its 5 s limit: the container was killed"
    assert left_by_this_process() == []
