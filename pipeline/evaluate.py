"""`newsreader eval`: score a model's judgments against hand-labelled real stories.

Every page listed in the labels CSV is parsed and judged through the same path as a
refresh (sandbox DB -> CodeAgent -> host validation), in a scratch folder: the
history database is never touched. Predictions are matched to labels by
(file, rank), falling back to (file, title).

Labels CSV columns (see shared/fixtures/LABELS.md):
``source,file,rank,title,url,domain,native_tags,relevant,tags`` with ``;``-separated tags.
"""

from __future__ import annotations

import csv
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import agent, articles, config, models, parse, prompt, rules, sandbox, schema
from .learn import Learner, Vote
from .settings import CURVE_ORDERS, Judge

REQUIRED_COLUMNS = {"source", "file", "rank", "title", "relevant", "tags"}


class EvalError(Exception):
    """Bad labels or pages; the message says which and why."""


@dataclass
class Label:
    source: str
    file: str
    rank: int
    title: str
    relevant: int
    tags: list[str]
    domain: str | None = None
    native_tags: list[str] = field(default_factory=list)

    def vote(self) -> Vote:
        """The label as the reader's vote (relevance and tags), for learning."""
        return Vote(self.title, self.domain, self.native_tags, self.relevant, self.tags or None, self.source,
                    parse.title_kind(self.title))


@dataclass
class Prediction:
    relevant: int
    tags: list[str]
    summary: str
    title: str


def load_labels(path: Path) -> list[Label]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = REQUIRED_COLUMNS - set(reader.fieldnames or [])
            if missing:
                raise EvalError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            labels = []
            for line, row in enumerate(reader, start=2):
                try:
                    labels.append(Label(row["source"], row["file"], int(row["rank"]), row["title"],
                                        int(row["relevant"]), [t for t in row["tags"].split(";") if t],
                                        row.get("domain") or None,
                                        [t for t in (row.get("native_tags") or "").split(";") if t]))
                except (TypeError, ValueError):
                    raise EvalError(f"{path}:{line}: rank and relevant must be integers") from None
    except OSError as exc:
        raise EvalError(f"cannot read labels {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise EvalError(f"labels {path} are not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise EvalError(f"labels {path} are not a readable CSV: {exc}") from None
    if not labels:
        raise EvalError(f"{path}: no labelled rows")
    return labels


def overlap(scored: list[Label], votes: list[Label]) -> int:
    """How many of the `scored` stories are among the `votes` (the same page and title): an eval that
    learns from the stories it scores measures how well the votes are recalled, not learning."""
    voted = {(label.file, norm(label.title)) for label in votes}
    return sum((label.file, norm(label.title)) in voted for label in scored)


def norm(text: str) -> str:
    """Case, spaces and punctuation removed: the same normalisation as the schema's title trigger."""
    return re.sub(r"[\s.,:'\"-]", "", text.lower())


def computing() -> frozenset[str]:
    """The labelled sites whose community keeps to computing (their kind's hint to the rules model)."""
    return frozenset(slug for slug, found in config.defaults().all_sources().items() if found.kind.computing)


def predict_page(source: str, html: str, judge: Judge, vocabulary: dict[str, str], workdir: Path,
                 replay: Path | None = None, learned: Learner | None = None
                 ) -> tuple[dict[int, Prediction], agent.SiteResult]:
    """Judge one page through sandbox -> agent -> validation; predictions keyed by rank. With `replay`
    (the pages' articles.warc.gz), the judge reads the recorded articles and discussions first."""
    found = config.defaults().all_sources()[source]
    stories = found.kind.parse(found, html.encode("utf-8", "replace") if isinstance(html, str) else html,
                               "text/html", found.url).stories
    site = agent.Site(sandbox.create(workdir / f"{source}.db", source, 1, "2026-01-01T00:00:00Z", stories,
                                     site=found),
                      about=prompt.TaskSite(source, found.name, found.kind.computing), listing=found.kind.listing)
    if replay is not None:
        site.add_reading(articles.read(found.kind, list(site.box.candidates.values()), replay=replay))
    model = models.make_model(judge.model, learned=learned, **judge.model_options)
    result = agent.judge_site(site, model, vocabulary=vocabulary, judge=judge)
    if result.status != "ok":
        return {}, result
    problems = result.problems or []
    if problems:
        result.status, result.error = "failed", "sandbox rejected: " + "; ".join(problems)
        return {}, result
    box = site.box
    conn = schema.connect_untrusted(box.path)
    try:
        tags = defaultdict(list)
        for story_id, tag in conn.execute(
            "SELECT st.story_id, st.tag FROM story_tags st JOIN tags t ON t.slug = st.tag ORDER BY t.rowid"
        ):
            tags[story_id].append(tag)
        predictions = {}
        for story_id, relevant, summary in conn.execute("SELECT story_id, relevant, summary FROM judgments"):
            story = box.candidates.get(story_id)
            if story is not None:
                predictions[story.rank] = Prediction(relevant, tags[story_id], summary, story.title)
    finally:
        conn.close()
    return predictions, result


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(pairs: list[tuple[Label, Prediction | None]], vocabulary: set[str]) -> dict:
    """Relevance and tag metrics over (label, prediction) pairs; a missing prediction counts as wrong."""
    tp = fp = fn = tn = 0
    per_tag = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    summary_is_title = 0
    for label, pred in pairs:
        predicted = pred.relevant if pred else 1 - label.relevant
        tp += predicted and label.relevant
        fp += predicted and not label.relevant
        fn += (not predicted) and label.relevant
        tn += (not predicted) and not label.relevant
        gold, guessed = set(label.tags), set(pred.tags if pred else [])
        for tag in gold | guessed:
            per_tag[tag][0] += tag in gold and tag in guessed
            per_tag[tag][1] += tag in guessed and tag not in gold
            per_tag[tag][2] += tag in gold and tag not in guessed
        if pred and norm(pred.summary) in norm(pred.title):
            summary_is_title += 1
    n = len(pairs)
    precision, recall, f1 = prf(tp, fp, fn)
    tags = {tag: dict(zip(("precision", "recall", "f1"), prf(*counts), strict=True), support=counts[0] + counts[2])
            for tag, counts in sorted(per_tag.items()) if tag in vocabulary}
    micro = prf(*(sum(c[i] for t, c in per_tag.items() if t in vocabulary) for i in range(3)))
    return {
        "stories": n,
        "relevance_accuracy": (tp + tn) / n if n else 0.0,
        "relevance_precision": precision,
        "relevance_recall": recall,
        "relevance_f1": f1,
        "tag_micro_precision": micro[0],
        "tag_micro_recall": micro[1],
        "tag_micro_f1": micro[2],
        "tag_macro_precision": mean(t["precision"] for t in tags.values()),
        "tag_macro_recall": mean(t["recall"] for t in tags.values()),
        "tag_macro_f1": mean(t["f1"] for t in tags.values()),
        "summary_is_title_rate": summary_is_title / n if n else 0.0,
        "unjudged": sum(1 for _, pred in pairs if pred is None),
        "tags": tags,
    }


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def evaluate(labels_path: Path, *, html_dir: Path | None = None, vocabulary: dict[str, str],
             judge: Judge | None = None, learned: Learner | None = None) -> dict:
    """Judge every labelled page with `judge.model` and score it against the labels. `learned`: the
    reader's votes the model learns from first."""
    judge = with_executor(judge or Judge())
    pairs, results, errors = judge_labels(load_labels(labels_path), labels_path, html_dir, vocabulary, judge, learned)
    metrics = score(pairs, set(vocabulary))
    n = metrics["stories"] or 1
    metrics.update(
        model=judge.model,
        pages=len({label.file for label, _ in pairs}),
        llm_calls_per_story=sum(r.llm_calls for r in results) / n,
        steps_per_story=sum(r.steps for r in results) / n,
        input_tokens_per_story=sum(r.input_tokens for r in results) / n,
        output_tokens_per_story=sum(r.output_tokens for r in results) / n,
        errors=errors,
    )
    return metrics


def with_executor(judge: Judge) -> Judge:
    """The judge with the executor it will really use (said once on stderr when it is not the one asked for)."""
    return judge.but(executor=agent.choose_executor(judge.executor, judge.model,
                                                    notice=lambda text: print(f"notice: {text}", file=sys.stderr)))


def judge_labels(labels: list[Label], labels_path: Path, html_dir: Path | None, vocabulary: dict[str, str],
                 judge: Judge, learned: Learner | None = None
                 ) -> tuple[list[tuple[Label, Prediction | None]], list[agent.SiteResult], list[str]]:
    """Judge the pages `labels` are on with `judge` (its executor chosen: `with_executor`): each label paired
    with the judge's prediction (None: unjudged)."""
    html_dir = Path(html_dir) if html_dir else Path(labels_path).parent / "html"
    replay = html_dir / "articles.warc.gz" if (html_dir / "articles.warc.gz").is_file() else None
    by_file: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_file[label.file].append(label)
    pairs, results, errors = [], [], []
    with tempfile.TemporaryDirectory(prefix="newsreader-eval-") as scratch:
        for i, (name, file_labels) in enumerate(sorted(by_file.items())):
            sources = {label.source for label in file_labels}
            if len(sources) != 1 or not sources <= set(parse.PARSERS):
                raise EvalError(f"{name}: labels must name one known source, got {sorted(sources)}")
            path = html_dir / name
            if not path.is_file():
                raise EvalError(f"page {path} listed in {labels_path} does not exist (see --html-dir)")
            try:
                predictions, result = predict_page(sources.pop(), path.read_text(encoding="utf-8", errors="replace"),
                                                   judge, vocabulary, Path(scratch) / str(i), replay, learned)
            except parse.SourceError as exc:
                raise EvalError(f"{path}: {exc}") from None
            results.append(result)
            if result.error:
                errors.append(f"{name}: {result.error}")
            by_title = {norm(p.title): p for p in predictions.values()}
            for label in file_labels:
                pred = predictions.get(label.rank)
                if pred is None or norm(pred.title) != norm(label.title):
                    pred = by_title.get(norm(label.title))
                pairs.append((label, pred))
    return pairs, results, errors


CURVE_SIZES = (0, 10, 25, 50, 100, None)  # votes learned from; None: every label of the other pages


def curve(labels_path: Path, *, html_dir: Path | None = None, vocabulary: dict[str, str],
          judge: Judge | None = None, sizes=CURVE_SIZES, extra: list[Label] = (), embedder=None,
          orders: int = CURVE_ORDERS) -> list[dict]:
    """Accuracy and tag macro-F1 against the number of votes, by cross-validation over pages: each page is
    judged after learning from n labels of the *other* pages, in `extra` (the `--learn-from` labels) or in
    `labels`, in a seeded order, so a page is never in both (a label given twice counts once); each point
    scores the pooled predictions of all pages, as one eval over every story would, averaged over `orders`."""
    judge = with_executor(judge or Judge())
    labels = load_labels(labels_path)
    pages = sorted({label.file for label in labels})
    if len(pages) < 2 and not extra:
        raise EvalError(f"{labels_path}: --curve needs labels on at least two pages (or --learn-from)")
    points = []
    for n in sizes:
        runs = [curve_point(labels, pages, n, seed, list(extra), labels_path, html_dir, vocabulary, judge, embedder)
                for seed in range(orders if n not in (0, None) else 1)]  # no votes, or all: one order is all
        errors = [error for _, error_list, _ in runs for error in error_list]
        if errors and not any(judged for _, _, judged in runs):  # the next points would only fail the same way
            raise EvalError(f"no page could be judged ({errors[0]})")
        points.append({"votes": "all" if n is None else n,
                       "relevance_accuracy": mean(m["relevance_accuracy"] for m, _, _ in runs),
                       "tag_macro_f1": mean(m["tag_macro_f1"] for m, _, _ in runs),
                       "stories": runs[0][0]["stories"], "orders": len(runs), "errors": errors})
    return points


def curve_point(labels: list[Label], pages: list[str], n: int | None, seed: int, extra: list[Label],
                labels_path: Path, html_dir, vocabulary, judge: Judge, embedder) -> tuple[dict, list[str], bool]:
    """One point of the curve in one order of the votes: every page judged after learning from n votes;
    its scores, the pages' errors, and whether any story was judged at all."""
    import random

    pairs, errors = [], []
    for page in pages:
        pool = list({(label.file, label.rank): label for label in extra + labels if label.file != page}.values())
        random.Random(seed).shuffle(pool)
        learned = rules.teach([label.vote() for label in (pool if n is None else pool[:n])], vocabulary,
                              judge.profile, embedder, computing())
        judged, _, failed = judge_labels([label for label in labels if label.file == page], labels_path,
                                         html_dir, vocabulary, judge, learned)
        pairs += judged
        errors += failed
    return score(pairs, set(vocabulary)), errors, any(pred is not None for _, pred in pairs)


def embedding_use(embedder) -> dict:
    """Which embedding model the learner used, and what it cost (calls, tokens, USD; None: no price)."""
    if embedder is None:
        return {"model": None}
    return {"model": embedder.model_id, "calls": embedder.calls, "tokens": embedder.tokens,
            "cost_usd": embedder.cost_usd, "texts": len(embedder.memo),
            "tuned": [dict(zip(("votes", "steps", "seconds"), t, strict=True)) for t in embedder.tunings]}


def format_use(used: dict) -> str:
    if used["model"] is None:
        return "none (the word-feature learner)"
    cost = "unknown cost" if used["cost_usd"] is None else f"${used['cost_usd']:.4f}"
    tuned = used.get("tuned") or []
    times = "once" if len(tuned) == 1 else f"{len(tuned)} times"
    tuning = (f", tuned on the votes {times} ({sum(t['steps'] for t in tuned)} steps, "
              f"{sum(t['seconds'] for t in tuned):.0f} s)") if tuned else ""
    return f"{used['model']}, {used['texts']} texts in {used['calls']} calls, {used['tokens']} tokens, {cost}{tuning}"


def format_curve(points: list[dict]) -> str:
    """The curve as a table; a page that could not be judged at a point is named under it (its stories count
    as wrong, as in `eval`)."""
    lines = [f"{'votes':>6} {'accuracy':>9} {'tag macro-F1':>13} {'orders':>7}"]
    lines += [f"{p['votes']!s:>6} {p['relevance_accuracy']:9.3f} {p['tag_macro_f1']:13.3f} {p['orders']:7d}"
              for p in points]
    lines += [f"error ({p['votes']} votes): {error}" for p in points for error in p["errors"]]
    return "\n".join(lines)


def format_report(metrics: dict) -> str:
    """A readable table of the headline figures and per-tag F1."""
    rows = [
        ("model", metrics["model"]), ("pages / stories", f"{metrics['pages']} / {metrics['stories']}"),
        ("relevance accuracy", f"{metrics['relevance_accuracy']:.3f}"),
        ("relevance precision / recall / F1", "{:.3f} / {:.3f} / {:.3f}".format(
            metrics["relevance_precision"], metrics["relevance_recall"], metrics["relevance_f1"])),
        ("tag micro P / R / F1", "{:.3f} / {:.3f} / {:.3f}".format(
            metrics["tag_micro_precision"], metrics["tag_micro_recall"], metrics["tag_micro_f1"])),
        ("tag macro P / R / F1", "{:.3f} / {:.3f} / {:.3f}".format(
            metrics["tag_macro_precision"], metrics["tag_macro_recall"], metrics["tag_macro_f1"])),
        ("summary is/in title", f"{metrics['summary_is_title_rate']:.3f}"),
        ("LLM calls / steps per story", f"{metrics['llm_calls_per_story']:.3f} / {metrics['steps_per_story']:.3f}"),
        ("tokens per story (in / out)",
         f"{metrics['input_tokens_per_story']:.0f} / {metrics['output_tokens_per_story']:.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += ["", f"{'tag'.ljust(12)} {'P':>6} {'R':>6} {'F1':>6} {'support':>8}"]
    for tag, t in metrics["tags"].items():
        lines.append(f"{tag.ljust(12)} {t['precision']:6.3f} {t['recall']:6.3f} {t['f1']:6.3f} {t['support']:8d}")
    for error in metrics["errors"]:
        lines.append(f"error: {error}")
    return "\n".join(lines)
