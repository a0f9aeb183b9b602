"""Learning from the reader: a small naive Bayes model over their votes, added to the rules' evidence.

The reader's 👍/👎 (and tag corrections) are labels of their taste. From them this learns,
at each refresh, which features of a story go with "relevant" and with each tag: the title's
words, the domain and the site's own tags. The `rules` model adds the learned log-odds to its
own evidence, weighted by how many votes there are (n / (n + 20)): with no votes it judges
exactly as before, and the more votes, the more they count.

Hand-written on purpose: two tables of counts and a logarithm. A library (scikit-learn) would
add about 100 MB of install for the same arithmetic; this is deterministic and explainable.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

STOPWORDS = frozenset("""a an the and or but of to in on for with at by from as is are was were be been it its this that
these those how why what when who which your you we our i my me us they them their he she his her not no do does did
can will just into about over after before than more most new via vs""".split())  # noqa: SIM905 - a word list
PRIOR_VOTES = 20  # the learned model weighs n / (n + PRIOR_VOTES): half at 20 votes
CLAMP = 4.0  # no single story's learned log-odds beyond this
MIN_SEEN = 2  # a feature counts once it is in this many votes (one vote says little about a word)


@dataclass
class Vote:
    """One labelled story: what the reader said about it (relevance, and tags when given)."""

    title: str
    domain: str | None
    site_tags: list[str]
    relevant: int
    tags: list[str] | None = None
    topics: list[str] = field(default_factory=list)  # what the rules found it is about (rules.teach fills it)


def features(title: str, domain: str | None, site_tags, topics=()) -> set[str]:
    """Title words (lower case, no stop words), the domain, the site's own tags, and the topics the rules
    found: the dense feature that carries one reader's taste from one page to the next."""
    words = {w for w in re.findall(r"[a-z0-9][a-z0-9+#.-]*[a-z0-9+#]|[a-z0-9]", title.lower()) if w not in STOPWORDS}
    found = {f"w:{w}" for w in words}
    if domain:
        found.add(f"d:{domain.lower().split('/')[0].removeprefix('www.')}")
    found |= {f"t:{t.lower()}" for t in site_tags or []}
    found |= {f"topic:{t}" for t in topics}
    return found


class Learner:
    """Bernoulli naive Bayes over `features`: relevance, and one-against-the-rest for each tag."""

    def __init__(self, votes: list[Vote]):
        self.n = len(votes)
        self.weight = self.n / (self.n + PRIOR_VOTES)
        self.docs = Counter(v.relevant for v in votes)
        self.counts = {0: Counter(), 1: Counter()}
        self.tagged = [v for v in votes if v.tags]
        self.tag_docs: Counter = Counter()
        self.tag_counts: dict[str, Counter] = defaultdict(Counter)
        self.all_counts: Counter = Counter()
        for vote in votes:
            found = features(vote.title, vote.domain, vote.site_tags, vote.topics)
            self.counts[1 if vote.relevant else 0].update(found)
        for vote in self.tagged:
            found = features(vote.title, vote.domain, vote.site_tags, vote.topics)
            self.all_counts.update(found)
            for tag in set(vote.tags):
                self.tag_docs[tag] += 1
                self.tag_counts[tag].update(found)

    @staticmethod
    def log_odds(found: set[str], yes: Counter, yes_docs: int, no: Counter, no_docs: int) -> float:
        """Sum over the story's features seen in at least MIN_SEEN votes of log P(f | yes) / P(f | no),
        Laplace-smoothed. No class prior: the rules already carry the base rate."""
        score = 0.0
        for f in found:
            if yes[f] + no[f] >= MIN_SEEN:
                score += math.log((yes[f] + 1) / (yes_docs + 2)) - math.log((no[f] + 1) / (no_docs + 2))
        return max(-CLAMP, min(CLAMP, score))

    def relevance(self, title: str, domain: str | None, site_tags, topics=()) -> float:
        """Learned log-odds that the reader wants this story (0 with no votes)."""
        if not self.n:
            return 0.0
        return self.log_odds(features(title, domain, site_tags, topics), self.counts[1], self.docs[1],
                             self.counts[0], self.docs[0])

    def tags(self, title: str, domain: str | None, site_tags, topics=()) -> dict[str, float]:
        """Learned log-odds of each tag the reader has used, for this story."""
        found = features(title, domain, site_tags, topics)
        total = len(self.tagged)
        return {tag: self.log_odds(found, counts, self.tag_docs[tag],
                                   self.all_counts - counts, total - self.tag_docs[tag])
                for tag, counts in self.tag_counts.items()}
