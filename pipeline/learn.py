"""Learning from the reader: a logistic regression over their votes, anchored to the rules.

The reader's 👍/👎 (and tag corrections) are labels of their taste. At each refresh this fits one
logistic regression for relevance and one per tag over what a story shows: its title words, its
domain (and that domain's suffix), the site, the kind of post, the site's own tags, and what the
rules found in it (their evidence per topic and their relevance margin). Relevance also weighs the
words of the story's article, once it was read: the words the reader's voted articles share
(`Learner.terms`), so that the reader's 👎 on articles about one thing carry to a new article about
it whatever its title says.

Every weight has a prior, and the fit is the most likely weights given the votes *and* that prior
(a Gaussian prior, i.e. L2 regularisation towards it rather than towards zero). The prior is the
rules themselves: the rules' margin (and, for a tag, the rules' evidence for it) has the weight
that reproduces their decision, every other feature 0. So with no votes the learner decides
exactly as the rules do. The weights every story has (the margin, the rules' evidence per topic,
the site, the kind, the bias) are held firmly: a few hundred votes from other days cannot say how
strict to be on a front page whose mix is different (measured: learning them freely from the
development labels lowered accuracy on newer pages). The weights of particular things (a word, a
domain, a site tag) move freely, so many votes about the same domain, site tag or word overturn
the rules for the stories that share it.

Hand-written on purpose, and deterministic: a full-batch gradient descent (Adagrad steps) over
sorted feature names, a fixed number of iterations, no randomness. scikit-learn would bring numpy
and scipy (about 100 MB installed) for these forty lines; 500 votes fit in about 1.2 s (BENCHMARKS.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

STOPWORDS = frozenset("""a an the and or but of to in on for with at by from as is are was were be been it its this that
these those how why what when who which your you we our i my me us they them their he she his her not no do does did
can will just into about over after before than more most new via vs""".split())  # noqa: SIM905 - a word list
STRENGTH = 1.0  # how firmly a word's, domain's or site tag's weight is held to its prior (0): one vote nudges
GLOBAL_STRENGTH = 30.0  # ...and the weights every story has (the rules' margin and evidence, site, kind, bias)
PARTICULAR = ("w:", "d:", "t:", "a:")  # features of particular stories: title words, domains, site tags,
# article words
TERMS = 300  # article words the learner weighs at most: those most voted articles share...
SHARED = 2  # ...if at least this many of them use it (a word of one article says nothing of the next)
ARTICLE = 2.0  # an article's words together weigh as much as two title words
LONGEST = 30  # characters: a longer "word" is a hash, a URL's tail or a page's junk, and would swell the reading step
ITERATIONS = 100  # full-batch Adagrad steps: the weights move by less than 1% in the last ten (tested)
STEP = 0.5


@dataclass
class Vote:
    """One labelled story: what the reader said about it (relevance, and tags when given)."""

    title: str
    domain: str | None
    site_tags: list[str]
    relevant: int
    tags: list[str] | None = None
    site: str | None = None  # hn or lobsters (None: not known, as in a labels file without it)
    kind: str = "story"
    text: str = ""  # the start of its article, when it was read: the rules count its topic words, as they do
    # for the stories they judge, and the learner weighs its words
    story_id: int | None = None  # the story in the history, for a vote from feedback.db

    @property
    def vote(self) -> str:
        """The vote as the reader gave it: "up" or "down"."""
        return "up" if self.relevant else "down"


POSSESSIVE = r"['’]s\b"
WORD = r"[a-z0-9][a-z0-9+#.-]*[a-z0-9+#]|[a-z0-9]"  # the rules model's reading step finds article words with these


def words(text: str) -> set[str]:
    """A title's (or article's) words, lower case, without stop words or possessives ("c++", "node.js", "1.0"
    stay whole)."""
    return {w for w in re.findall(WORD, re.sub(POSSESSIVE, " ", text.lower())) if w not in STOPWORDS}


def story_features(title: str, domain: str | None, site: str | None, site_tags, kind: str = "story"
                   ) -> dict[str, float]:
    """What a story shows before anyone judges it, as binary features: the things one reader's taste
    is about (a word, a site, a domain, a kind of post, a Lobsters tag)."""
    found = {"bias": 1.0}
    if site:
        found[f"site:{site}"] = 1.0
    if kind and kind != "story":
        found[f"kind:{kind}"] = 1.0
    found.update({f"w:{w}": 1.0 for w in words(title)})
    host = (domain or "").lower().split("/")[0].removeprefix("www.")
    if host:
        found[f"d:{host}"] = 1.0
        found[f"tld:{host.rsplit('.', 1)[-1]}"] = 1.0
    found.update({f"t:{t.lower()}": 1.0 for t in site_tags or []})
    return found


def fit(rows: list[dict[str, float]], labels: list[int], prior: dict[str, float]) -> dict[str, float]:
    """Weights maximising the log-likelihood of `labels` minus k/2 · (w - prior)² for each weight, k being
    STRENGTH for a particular word, domain or site tag and GLOBAL_STRENGTH for the rest (MAP logistic
    regression with a Gaussian prior centred on `prior`)."""
    names = sorted({name for row in rows for name in row} | set(prior))
    index = {name: i for i, name in enumerate(names)}
    matrix = [[(index[name], value) for name, value in sorted(row.items())] for row in rows]
    start = [prior.get(name, 0.0) for name in names]
    strength = [STRENGTH if name.startswith(PARTICULAR) else GLOBAL_STRENGTH for name in names]
    weights, squares = list(start), [1e-8] * len(names)
    for _ in range(ITERATIONS):
        gradient = [k * (w - w0) for k, w, w0 in zip(strength, weights, start, strict=True)]
        for row, label in zip(matrix, labels, strict=True):
            z = sum(weights[i] * value for i, value in row)
            error = 1 / (1 + math.exp(-max(-30.0, min(30.0, z)))) - label
            for i, value in row:
                gradient[i] += error * value
        for i, g in enumerate(gradient):
            squares[i] += g * g
            weights[i] -= STEP * g / math.sqrt(squares[i])
    return dict(zip(names, weights, strict=True))


@dataclass
class Example:
    """A vote as the learner sees it: the story's features, the rules' margin and evidence per topic,
    and the reader's labels."""

    features: dict[str, float]
    margin: float
    evidence: dict[str, float]
    relevant: int
    tags: list[str] | None = None
    article: frozenset[str] = frozenset()  # the words of its article's start, when it was read


@dataclass
class Learner:
    """Relevance and per-tag logistic regressions, each anchored to the rules' decision (its prior).

    `relevance_prior` gives the weight of the rules' margin; `tag_prior` the weight of the rules'
    evidence for the tag ("own") and the bias that puts the decision at the rules' threshold."""

    examples: list[Example]
    relevance_prior: dict[str, float]
    tag_prior: dict[str, float]
    relevance_weights: dict[str, float] = field(init=False)
    tag_weights: dict[str, dict[str, float]] = field(init=False)
    terms: frozenset[str] = field(init=False)
    meaning: Meaning | None = None  # the votes over embeddings: when set (and weighty), it decides with the rules

    def __post_init__(self):
        self.n = len(self.examples)
        self.terms = shared_words([e.article for e in self.examples if e.article])
        self.relevance_weights = fit([self.relevance_row({**e.features, **self.article_features(e.article)},
                                                         e.margin, e.evidence) for e in self.examples],
                                     [e.relevant for e in self.examples], self.relevance_prior) if self.n else {}
        tagged = [e for e in self.examples if e.tags]
        self.tag_weights = {
            tag: fit([self.tag_row(e.features, e.evidence, tag) for e in tagged],
                     [int(tag in e.tags) for e in tagged], self.tag_prior)
            for tag in sorted({t for e in tagged for t in e.tags})
        }

    def article_features(self, article) -> dict[str, float]:
        """An article's words the votes taught something about, as features "a:word", scaled so that they weigh
        as much as ARTICLE title words together however many of them the article uses (L2-normalised)."""
        known = sorted(self.terms.intersection(article or ()))
        return {f"a:{word}": ARTICLE / math.sqrt(len(known)) for word in known}

    @staticmethod
    def topics(evidence: dict[str, float], but: str | None = None) -> dict[str, float]:
        """The rules' evidence for each topic (but `but`), as features between 0 and 1."""
        return {f"ev:{tag}": min(weight, 3.0) / 3 for tag, weight in evidence.items() if tag != but}

    def relevance_row(self, features: dict[str, float], margin: float, evidence: dict[str, float]) -> dict[str, float]:
        return {**features, "margin": max(-3.0, min(3.0, margin)), **self.topics(evidence)}

    def tag_row(self, features: dict[str, float], evidence: dict[str, float], tag: str) -> dict[str, float]:
        return {**features, "own": min(evidence.get(tag, 0.0), 3.0), **self.topics(evidence, but=tag)}

    @staticmethod
    def logit(weights: dict[str, float], prior: dict[str, float], row: dict[str, float]) -> float:
        return sum(weights.get(name, prior.get(name, 0.0)) * value for name, value in row.items())

    def relevance(self, features: dict[str, float], margin: float, evidence: dict[str, float]) -> float:
        """Log-odds that the reader wants this story: the rules' margin times its prior weight with no
        votes; with votes, what the fitted weights say."""
        return self.logit(self.relevance_weights, self.relevance_prior,
                          self.relevance_row(features, margin, evidence))

    def deciding(self, features: dict[str, float], towards: int, most: int = 3) -> list[str]:
        """The particular things (domains, site tags, words) of this story whose learned weights pull its
        relevance `towards` 1 or 0 the most, named for a reader: "apple.com", "tag vibecoding", "'apple'"."""
        sign = 1 if towards else -1
        pulls = sorted((sign * self.relevance_weights.get(name, 0.0) * value, name) for name, value in features.items()
                       if name.startswith(PARTICULAR))
        named = {"d": "{}", "t": "tag {}", "w": "'{}'", "a": "'{}' in the article"}
        return [named[name[0]].format(name[2:][:40]) for pull, name in reversed(pulls) if pull > 0][:most]

    def tags(self, features: dict[str, float], evidence: dict[str, float]) -> dict[str, float]:
        """Log-odds of each tag the reader has used in their votes, for this story."""
        return {tag: self.logit(weights, self.tag_prior, self.tag_row(features, evidence, tag))
                for tag, weights in self.tag_weights.items()}


def shared_words(articles: list[frozenset[str]]) -> frozenset[str]:
    """The TERMS words most of `articles` use (at least SHARED of them, at most half unless there are only a few:
    a word every article uses tells them apart no better than a stop word), ties broken alphabetically."""
    counts: dict[str, int] = {}
    for article in articles:
        for word in article:
            if len(word) <= LONGEST and not word.replace(".", "").isdigit():  # a number ("2016") is no topic
                counts[word] = counts.get(word, 0) + 1
    most = max(SHARED, len(articles) // 2)
    common = sorted((-n, word) for word, n in counts.items() if SHARED <= n <= most)
    return frozenset(word for _, word in common[:TERMS])


# --- learning from meaning: regressions over embeddings -----------------------------------------------

RULES_VOTES = 5  # the rules count as this many votes: with n votes the embedding model has n/(n + 5) of the say
MIN_VOTES = 20  # fewer votes fit a model of those votes, not of the reader: below this the rules decide alone
C = 1.0  # scikit-learn's default regularisation; both constants are in README (Learning) with what they measured


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass
class Meaning:
    """What the votes say over embeddings: a logistic regression for relevance and one per tag the reader
    used, each fitted on the voted stories' vectors (classes balanced: a reader who likes one story in five
    is not taught to like none). `embed` turns a story's text into its vector (embeddings.Embedder)."""

    embed: Callable[[list[str]], list[list[float]]]
    model_id: str
    n: int
    relevance: object | None = None  # sklearn LogisticRegression, or None with one class only
    tags: dict[str, object] = field(default_factory=dict)
    tuned: Callable[[list[str]], list[list[float]]] | None = None  # relevance's vectors: the model tuned on
    # the votes (embeddings.Tuned), when the model's weights are here; else `embed`'s

    @property
    def weight(self) -> float:
        """The embedding model's share of the decision; the rules have the rest."""
        return self.n / (self.n + RULES_VOTES) if self.n >= MIN_VOTES else 0.0

    def probabilities(self, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        """For each text: the probability the reader wants it (None: no relevance model), and each tag's."""
        import numpy as np

        x = np.asarray(self.embed(texts), dtype=float)
        if self.relevance is None:
            relevant = [None] * len(texts)
        else:
            relevant = positive(self.relevance, x if self.tuned is None else np.asarray(self.tuned(texts)))
        tags = {tag: positive(model, x) for tag, model in self.tags.items()}
        return [(None if p is None else float(p), {tag: float(ps[i]) for tag, ps in tags.items()})
                for i, p in enumerate(relevant)]


def positive(model, x):
    """A fitted binary LogisticRegression's probability of class 1 for each row of `x`: what predict_proba
    gives, without its input checks (a thousand calls a refresh spent most of their time in them)."""
    import numpy as np

    z = np.clip(x @ model.coef_[0] + model.intercept_[0], -30.0, 30.0)
    return 1 / (1 + np.exp(-z))


def fit_meaning(embed: Callable[[list[str]], list[list[float]]], model_id: str, texts: list[str],
                relevant: list[int], tags: list[list[str] | None], tune=None) -> Meaning:
    """The regressions over these votes' vectors (deterministic: lbfgs, no sampling). `tune(texts, labels)`:
    the embedding model tuned on the relevance votes (embeddings.Embedder.tuned; None where it cannot be),
    whose vectors relevance is then learned over; tags keep the model's own vectors (tuned for relevance,
    they lose what a story is about)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    meaning = Meaning(embed, model_id, len(texts))
    if not texts:
        return meaning
    x = np.asarray(embed(texts), dtype=float)
    y = np.asarray(relevant)

    def fitted(rows, labels):
        return LogisticRegression(C=C, class_weight="balanced", max_iter=1000).fit(rows, labels)

    if 0 < y.sum() < len(y):
        tuned = tune(texts, relevant) if tune is not None and meaning.weight else None
        meaning.tuned = tuned.vectors if tuned is not None else None
        meaning.relevance = fitted(x if tuned is None else np.asarray(tuned.vectors(texts)), y)
    tagged = [i for i, t in enumerate(tags) if t]
    for tag in sorted({t for i in tagged for t in tags[i]}):
        labels = np.asarray([int(tag in tags[i]) for i in tagged])
        if 0 < labels.sum() < len(labels):
            meaning.tags[tag] = fitted(x[tagged], labels)
    return meaning
