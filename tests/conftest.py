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
