"""Datasette over a history built from the shipped snapshot with the rules model (in-process client, no port)."""

import asyncio

import pytest
import yaml
from datasette.app import Datasette

from pipeline import refresh, store

from .conftest import SNAPSHOT


@pytest.fixture(scope="module")
def datasette(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "news.db"
    assert refresh.refresh(refresh.Options(db=str(db), snapshot=SNAPSHOT)).status == "ok"
    metadata = yaml.safe_load((store.ROOT / "metadata.yml").read_text())
    return Datasette([str(db)], metadata=metadata)


def get_json(ds, path):
    response = asyncio.run(ds.client.get(path))
    assert response.status_code == 200, (path, response.text[:500])
    return response.json()


@pytest.mark.parametrize(
    "query,params,columns",
    [
        ("digest", "", {"title", "url", "summary", "tags", "score", "discussion_url", "also_discussed_at", "points",
                        "comments"}),
        ("digest", "date=" + "", {"title", "summary"}),
        ("story_history", "story_id=1", {"started_at", "rank", "points", "comments", "relevant", "score"}),
        ("trending_tags", "", {"tag", "last_7_days", "previous_7_days"}),
        ("search", "q=security", {"story_id", "title", "summary", "url"}),
        ("runs_health", "", {"id", "status", "model", "input_tokens", "output_tokens", "duration_s", "rejected",
                             "error"}),
    ],
)
def test_canned_queries_return_rows(datasette, query, params, columns):
    rows = get_json(datasette, f"/news/{query}.json?_shape=array&{params}")
    assert rows, query
    assert columns <= set(rows[0])


def test_digest_is_the_latest_runs_relevant_stories(datasette):
    rows = get_json(datasette, "/news/digest.json?_shape=array")
    assert all(r["summary"] and r["tags"] for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    day = rows[0]["started_at"][:10]
    assert get_json(datasette, f"/news/digest.json?_shape=array&date={day}") == rows
    assert get_json(datasette, "/news/digest.json?_shape=array&date=1999-01-01") == []


def test_full_text_search_finds_a_known_story(datasette):
    rows = get_json(datasette, "/news/search.json?_shape=array&q=airport+injection")
    assert rows[0]["title"] == "Bypassing airport security via SQL injection"
    rows = get_json(datasette, "/news/stories.json?_shape=array&_search=unminifying")
    assert [r["title"] for r in rows] == ["OpenAI is good at unminifying code"]


def test_search_with_fts_syntax_characters_does_not_error(datasette):
    get_json(datasette, '/news/search.json?_shape=array&q=%22unbalanced+(quote')
