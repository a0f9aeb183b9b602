"""Reading articles: extraction quality on real pages, and the `newsreader article` command.

The metric is the Zyte/Scrapinghub article-extraction benchmark's (../shared/fixtures/articles/SOURCES.md):
F1 over 4-token shingles (tokens: runs of word characters and single other symbols, lower-cased),
totalled over the pages.
"""

import gzip
import json
import re
from collections import Counter

from click.testing import CliRunner

from pipeline import articles
from pipeline.cli import cli
from tests.helpers import FIXTURES

SHARED_ARTICLES = FIXTURES / "articles"  # a copy of ../shared/fixtures/articles (MIT, see its SOURCES.md)


def shingles(text: str) -> Counter:
    tokens = re.findall(r"\w+|[^\w\s]", (text or "").lower())
    return Counter(tuple(tokens[i:i + 4]) for i in range(max(1, len(tokens) - 3)))


def benchmark_pages():
    truth = json.loads((SHARED_ARTICLES / "ground-truth.json").read_text())
    for path in sorted(SHARED_ARTICLES.glob("*.html.gz")):
        key = path.name.split(".")[0]
        yield key, gzip.decompress(path.read_bytes()), truth[key]


def test_extraction_f1_on_the_shared_benchmark_pages_is_at_least_0_95():
    tp = fp = fn = 0
    pages = 0
    for _key, html, truth in benchmark_pages():
        got, want = shingles(articles.extract(html, url=truth["url"])["text"]), shingles(truth["articleBody"])
        common = sum((got & want).values())
        tp, fp, fn = tp + common, fp + sum(got.values()) - common, fn + sum(want.values()) - common
        pages += 1
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall)
    assert pages == 61
    assert f1 >= 0.95, (f1, precision, recall)


def test_extraction_reads_the_metadata_too():
    key, html, truth = next(benchmark_pages())
    fields = articles.extract(html, url=truth["url"])
    assert fields["title"] and fields["text"] and "\n\n" not in fields["text"]
    assert set(fields) == {"title", "description", "author", "published", "language", "text"}


def test_article_command_prints_the_extraction_as_json(tmp_path):
    key, html, truth = next(benchmark_pages())
    page = tmp_path / "page.html"
    page.write_bytes(html)
    out = CliRunner().invoke(cli, ["article", str(page), "--url", truth["url"]])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["url"] == truth["url"] and data["characters"] == len(data["text"]) > 500


def test_article_command_refuses_a_page_over_the_cap_in_one_line(tmp_path):
    page = tmp_path / "huge.html"
    page.write_bytes(b"<p>" + b"x" * (articles.MAX_BYTES + 10))
    out = CliRunner().invoke(cli, ["article", str(page)])
    assert out.exit_code == 1 and "larger than 2 MB" in out.output and len(out.output.strip().splitlines()) == 1
