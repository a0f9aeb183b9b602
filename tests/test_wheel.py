"""A normal install works anywhere: the wheel carries schema.sql and metadata.yml, and `newsreader`
runs from a fresh venv outside the checkout (an offline refresh, then a served page).

The fresh venv gets the wheel itself with `--no-deps`; its dependencies come from this test
venv's site-packages through a .pth file (no network in CI). That .pth names a plain folder,
so the checkout's editable install is not visible there: `pipeline` can only come from the wheel.
"""

import os
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

from .helpers import SNAPSHOT, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_works_from_a_fresh_venv_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("newsreader-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"pipeline/schema.sql", "pipeline/metadata.yml", "pipeline/jail.py"} <= set(names)
    assert (ROOT / "schema.sql").read_bytes() == zipfile.ZipFile(wheel).read("pipeline/schema.sql")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True)

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSREADER_", "PYTHONPATH"))}
    newsreader = str(venv / "bin" / "newsreader")
    where = subprocess.run([python, "-c", "import pipeline; print(pipeline.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, env=env, check=True).stdout
    assert where.startswith(site)  # the installed wheel, not the checkout
    done = subprocess.run([newsreader, "refresh", "--snapshot", str(SNAPSHOT)], cwd=elsewhere,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "run 1: ok" in done.stderr and (elsewhere / "data" / "news.db").is_file()
    assert "no jail on this machine" not in done.stderr  # the jail ran the installed package too

    port = free_port()
    server = subprocess.Popen([newsreader, "serve", "--port", str(port)], cwd=elsewhere, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/news/digest.json?_shape=array",
                                            timeout=2) as response:
                    page = response.read()
                break
            except OSError:
                subprocess.run(["sleep", "0.2"])
        assert page and b"Bypassing airport security" in page
    finally:
        server.terminate()
        server.wait(timeout=10)
