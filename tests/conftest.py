"""Fixtures shared by the test modules (plain helpers live in helpers.py)."""

import ipaddress
import os
import shutil
import socket

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pipeline import store  # noqa: E402

from .helpers import FIXTURES, SNAPSHOT, with_sites  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` first (after pytest-randomly's shuffle, which runs before this hook): on three
    workers, a four-minute test started last would finish minutes after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: the shuffle stays


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never touch the internet: in a test, a host name other than localhost resolves nowhere, at once,
    as on a machine with no network (a refresh given only a front-page transport would otherwise look up
    every article's host, and fetch it where there is a network)."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host is None:  # a server's "every interface": no name is looked up
            return resolve(host, *args, **kwargs)
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name not in ("localhost", "localhost.localdomain"):
                raise socket.gaierror(socket.EAI_NONAME, f"not known (tests are offline: {name})") from None
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def history(tmp_path):
    """A fresh history database created from schema.sql, with Hacker News and Lobsters in its sources (as the
    first refresh writes them)."""
    return with_sites(store.open_db(tmp_path / "news.db"))


@pytest.fixture(scope="session")
def refreshed(tmp_path_factory):
    """One history refreshed from the shipped snapshot (rules model, jail), built once per test session.

    For tests that only read it; a test that adds to a history takes `refreshed_copy`.
    """
    from pipeline import refresh

    db = tmp_path_factory.mktemp("refreshed") / "news.db"
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT)).status == "ok"
    return db


@pytest.fixture
def refreshed_copy(refreshed, tmp_path):
    """A private copy of the refreshed history at tmp_path/data/news.db (as if that refresh ran there)."""
    import sqlite3

    dest = tmp_path / "data" / "news.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    source, target = sqlite3.connect(refreshed), sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dest


@pytest.fixture
def snapshot_dir(tmp_path):
    """A copy of the shipped real snapshot (hn.html + lobsters.html)."""
    dest = tmp_path / "snapshot"
    shutil.copytree(FIXTURES / "snapshot", dest)
    return dest
