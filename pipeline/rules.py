"""The built-in `rules` model: deterministic judgment that drives the real agent loop.

`RulesModel` is a smolagents `Model`. Like an LLM it reads the task (the
candidate table in the prompt), and answers with Python code that calls the
`sql` tool to INSERT judgments and tags, then `final_answer`. So `rules` goes
through exactly the same agent -> sandbox -> validation -> sync path as a real
model, offline and without a key, and the tests exercise that path.

The judgment itself (`judge`) is a small, explainable classifier:
- title words matched on word boundaries (never substrings: "Trusted Computing"
  is not about rust, "email" is not about ai), with multi-word phrases;
- Lobsters' own tags, mapped onto the vocabulary (strong evidence);
- the domain (github.com -> programming, arxiv.org -> science ...);
- the story kind (job posts are never relevant; Show/Ask HN keep their topic).
Tags are ranked by evidence; relevance needs technical evidence that outweighs
business/culture evidence.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

from smolagents import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from . import embeddings, learn
from .prompt import CANDIDATES_MARKER, Candidate, TaskSite, parse_task
from .settings import Reading

TECHNICAL = {"ai", "programming", "python", "rust", "go", "javascript", "web", "databases", "devops", "security",
             "systems"}
CORE = TECHNICAL - {"web"}
NON_TECHNICAL = {"business", "culture", "science"}

# Word-boundary keywords per tag. Phrases may contain spaces; "+" and "." are literal.
KEYWORDS: dict[str, list[str]] = {
    "ai": ["ai", "a.i.", "llm", "llms", "gpt", "gpt-4", "gpt-5", "chatgpt", "openai", "claude", "anthropic", "gemini",
           "llama", "mistral", "deepseek", "machine learning", "deep learning", "neural", "neural network",
           "transformer", "transformers", "embedding", "embeddings", "rag", "agent", "agents", "agentic", "copilot",
           "inference", "diffusion", "artificial intelligence", "ml", "model weights", "fine-tuning", "prompt",
           "vibe coding", "vibecoding", "chatbot", "genai"],
    "python": ["python", "pypi", "pip", "django", "flask", "fastapi", "numpy", "pandas", "cpython", "pytorch",
               "asyncio", "jupyter", "pydantic"],
    "rust": ["rust", "rustc", "cargo", "crates.io", "tokio"],
    "go": ["golang", "go 1.\\d+", "goroutine", "goroutines"],
    "javascript": ["javascript", "typescript", "js", "node.js", "nodejs", "npm", "react", "vue", "svelte", "deno",
                   "bun", "jquery", "ecmascript", "next.js"],
    "web": ["web", "browser", "browsers", "http", "https", "css", "html", "chrome", "firefox", "safari", "website",
            "websites", "webassembly", "wasm", "url", "urls", "cookies", "search engine", "web app", "dns", "frontend",
            "rss"],
    "databases": ["database", "databases", "sql", "sqlite", "postgres", "postgresql", "mysql", "redis", "duckdb",
                  "clickhouse", "datasette", "orm", "query", "queries", "data warehouse", "dataframe", "key-value",
                  "nosql", "mongodb", "index", "indexes"],
    "devops": ["kubernetes", "k8s", "docker", "container", "containers", "ci", "ci/cd", "terraform", "aws", "cloud",
               "deploy", "deployment", "nix", "nixos", "ansible", "serverless", "devops", "observability",
               "logging", "logs", "monitoring", "github actions", "self-hosted", "self-hosting", "homelab"],
    "security": ["security", "vulnerability", "vulnerabilities", "exploit", "exploits", "cve", "injection", "attack",
                 "attacks", "malware", "ransomware", "privacy", "encryption", "cryptography", "password", "passwords",
                 "tls", "ssl", "breach", "hacked", "backdoor", "phishing", "bypassing", "bypass", "authentication",
                 "sandbox", "sandboxing", "zero-day", "0day", "spyware", "surveillance", "fuzzing", "certificate",
                 "certificates", "pgp", "ssh", "cookies"],
    "systems": ["linux", "kernel", "os", "operating system", "unix", "bsd", "freebsd", "openbsd", "networking",
                "network", "tcp", "udp", "ethernet", "userspace", "filesystem", "file system", "distributed",
                "performance", "latency", "memory", "scheduler", "ebpf", "io_uring", "virtualization",
                "virtual machine",
                "syscall", "syscalls", "posix", "systemd", "concurrency", "multithreading", "cache", "caching",
                "assembly", "x86", "simd", "jit", "garbage collector", "allocator", "emulator", "windows", "macos",
                "benchmark", "benchmarks", "protocol", "ipv6", "bgp", "consensus", "raft"],
    "hardware": ["hardware", "chip", "chips", "cpu", "cpus", "gpu", "gpus", "risc-v", "arm", "fpga", "raspberry pi",
                 "arduino", "keyboard", "laptop", "iphone", "ipad", "soldering", "retro", "microcontroller",
                 "pcb", "semiconductor", "nvidia", "intel", "amd", "tsmc", "circuit", "transistor", "sensor", "robot",
                 "3d printer", "3d printing", "console", "commodore", "amiga", "z80", "6502"],
    "programming": ["programming", "programmer", "programmers", "code", "coding", "compiler", "compilers",
                    "language", "languages", "programming language", "type system", "types", "java", "c++", "c",
                    "haskell", "lisp", "ocaml", "zig", "elixir", "erlang", "kotlin", "swift", "scala", "clojure",
                    "lua", "fortran", "cobol", "api", "apis", "library", "framework", "refactoring", "debugging",
                    "debugger", "git", "vim", "neovim", "emacs", "editor", "ide", "vs code", "vscode",
                    "open-source", "open source", "testing", "software", "developer", "developers", "codebase",
                    "functional programming", "parser", "algorithm", "algorithms", "data structures", "regex",
                    "unicode", "version control", "monorepo", "sdk", "cli", "terminal", "shell", "bash",
                    "interpreter", "bytecode", "webassembly", "llvm", "gcc", "repl"],
    "science": ["science", "scientists", "physics", "math", "mathematics", "mathematician", "biology", "space",
                "nasa", "quantum", "climate", "solar", "medical", "medicine", "health", "brain", "study",
                "researchers", "species", "universe", "cancer", "genetics", "chemistry", "astronomy", "telescope",
                "planet", "mars", "moon", "evolution", "vaccine", "disease", "ocean", "energy", "nuclear", "fusion",
                "theorem", "proof", "dna", "protein", "galaxy", "fossil", "bacteria", "virus", "neuroscience"],
    "business": ["startup", "startups", "funding", "raises", "acquires", "acquisition", "ipo", "hiring", "is hiring",
                 "layoffs", "revenue", "market", "markets", "stock", "stocks", "ceo", "company", "companies", "lawsuit",
                 "court", "judge", "judges", "ruling", "rules", "law", "laws", "regulation", "ftc", "eu", "antitrust",
                 "sec", "policy", "government", "congress", "senate", "tariff", "tariffs", "billion", "million",
                 "price", "prices", "pricing", "investors", "valuation", "bankruptcy", "profit", "sales", "economy",
                 "inflation", "trade", "competition", "monopoly", "jobs", "salary",
                 "customers", "subscription", "advertising", "ads", "fined", "fine", "settlement",
                 "license", "licensing", "trademark", "patent", "copyright", "bill", "ban", "banned", "election"],
    "culture": ["history", "historical", "essay", "life", "career", "careers", "society", "book", "books", "art",
                "music", "film", "movie", "museum", "culture", "death", "dies", "died", "obituary", "writing",
                "writer", "novel", "poetry", "photography", "family", "children", "kids", "school", "education",
                "city", "cities", "travel", "food", "sport", "sports", "game", "games", "story", "memoir",
                "philosophy", "psychology", "happiness", "burnout", "remote work", "meetings", "management",
                "manager", "interview", "language learning", "design"],
}

# Lobsters tags -> vocabulary (evidence worth more than a title word).
LOBSTERS_TAGS: dict[str, list[str]] = {
    "ai": ["ai"], "vibecoding": ["ai", "programming"], "python": ["python", "programming"],
    "rust": ["rust", "programming"], "go": ["go", "programming"], "javascript": ["javascript", "web"],
    "web": ["web"], "browsers": ["web"], "css": ["web"], "databases": ["databases"], "devops": ["devops"],
    "nix": ["devops"], "security": ["security"], "cryptography": ["security"], "privacy": ["security"],
    "reversing": ["security"], "linux": ["systems"], "unix": ["systems"], "osdev": ["systems"],
    "windows": ["systems"], "mac": ["systems"], "freebsd": ["systems"], "openbsd": ["systems"],
    "networking": ["systems"], "distributed": ["systems"], "performance": ["systems"], "hardware": ["hardware"],
    "assembly": ["systems", "programming"], "compilers": ["programming"], "plt": ["programming"],
    "programming": ["programming"], "practices": ["programming"], "testing": ["programming"],
    "debugging": ["programming"], "vcs": ["programming"], "emacs": ["programming"], "vim": ["programming"],
    "lisp": ["programming"], "lua": ["programming"], "zig": ["programming"], "c++": ["programming"],
    "c": ["programming"], "clojure": ["programming"], "haskell": ["programming"], "ml": ["programming"],
    "elixir": ["programming"], "erlang": ["programming"], "java": ["programming"], "dotnet": ["programming"],
    "swift": ["programming"], "ruby": ["programming"], "php": ["programming"], "scala": ["programming"],
    "compsci": ["programming", "science"], "api": ["programming"], "release": ["programming"],
    "graphics": ["programming"], "games": ["culture"], "culture": ["culture"], "historical": ["culture"],
    "person": ["culture"], "philosophy": ["culture"], "law": ["business"], "finance": ["business"],
    "science": ["science"], "math": ["science"], "education": ["culture"], "video": [], "pdf": [],
    "meta": ["culture"], "ask": [], "show": [], "satire": ["culture"], "design": ["web"], "mobile": ["programming"],
    "android": ["programming"], "ios": ["programming"], "wasm": ["web", "programming"],
    "formalmethods": ["programming"],
}

DOMAIN_HINTS: dict[str, list[str]] = {
    "github.com": ["programming"], "gitlab.com": ["programming"], "codeberg.org": ["programming"],
    "sr.ht": ["programming"], "arxiv.org": ["science"], "lwn.net": ["systems"], "kernel.org": ["systems"],
    "python.org": ["python"], "rust-lang.org": ["rust"], "go.dev": ["go"], "developer.mozilla.org": ["web"],
    "sqlite.org": ["databases"], "postgresql.org": ["databases"], "nature.com": ["science"],
    "science.org": ["science"], "quantamagazine.org": ["science"], "nasa.gov": ["science"],
    "wsj.com": ["business"], "bloomberg.com": ["business"], "reuters.com": ["business"], "ft.com": ["business"],
    "cnbc.com": ["business"], "techcrunch.com": ["business"], "economist.com": ["business"],
    "greenhouse.io": ["business"], "lever.co": ["business"], "workable.com": ["business"],
    "ycombinator.com": ["business"], "newyorker.com": ["culture"], "theatlantic.com": ["culture"],
    "hackaday.com": ["hardware"], "hackaday.io": ["hardware"], "krebsonsecurity.com": ["security"],
    "arstechnica.com": [], "theverge.com": ["business"], "nytimes.com": ["culture"], "bbc.com": ["culture"],
    "bbc.co.uk": ["culture"], "theguardian.com": ["culture"], "wikipedia.org": ["culture"],
}

TITLE_WEIGHT, NATIVE_WEIGHT, DOMAIN_WEIGHT = 1.0, 2.0, 0.75
# Per topic word in what a card shows of the article (at most 3 count), and how much of a voted story's article
# counts: as much as a card shows.
ARTICLE_WEIGHT, ARTICLE_CHARS = 0.25, Reading.article_chars


def _pattern(words: list[str]) -> re.Pattern:
    alternatives = sorted((re.escape(w.lower()).replace(r"\\d\+", r"\d+").replace(r"\ ", r"\s+") for w in words),
                          key=len, reverse=True)
    # Word boundaries that also work for words ending in symbols ("c++", "node.js"). Matched against lower-cased
    # text: the same matches as re.IGNORECASE, in half the time over an article.
    return re.compile(r"(?<![\w+#.-])(?:" + "|".join(alternatives) + r")(?![\w+#-]|\.\w)")


PATTERNS = {tag: _pattern(words) for tag, words in KEYWORDS.items()}


@functools.cache
def pattern_for(tag: str) -> re.Pattern:
    """The tag's phrase list, or for a tag the config added, its own name as a word (for lower-cased text)."""
    return PATTERNS.get(tag) or _pattern([tag, tag.replace("-", " ")])


@dataclass(frozen=True)
class Interests:
    """Which tags count for relevance (core) and which against it (other)."""

    core: frozenset[str] = frozenset(CORE)
    other: frozenset[str] = frozenset(NON_TECHNICAL)


def interests_from(profile: str | None, vocabulary: set[str]) -> Interests:
    """Read the reader's profile the way the rules can: which vocabulary topics it names, and which it rejects.

    The text before "not interested in" adds the tags it mentions (by name or by their
    phrase lists) to the relevant topics; the text after it moves the tags it mentions
    to the counter-evidence. Topics the profile does not mention keep their defaults.
    """
    if not profile:
        return Interests()
    positive, *rest = re.split(r"\bnot interested in\b|\bnot into\b", profile, maxsplit=1, flags=re.IGNORECASE)
    negative = rest[0] if rest else ""

    def mentioned(text: str) -> set[str]:
        return {tag for tag in vocabulary
                if pattern_for(tag).search(text.lower()) or re.search(rf"\b{re.escape(tag)}\b", text, re.IGNORECASE)}

    wanted = mentioned(positive)
    unwanted = mentioned(negative) - wanted
    return Interests(core=frozenset((CORE | wanted) - unwanted), other=frozenset((NON_TECHNICAL | unwanted) - wanted))


@dataclass
class Verdict:
    relevant: int
    score: int
    tags: list[str]
    summary: str
    reason: str


def evidence(c: Candidate, vocabulary: set[str]) -> dict[str, float]:
    """Weighted evidence per vocabulary tag from title words, site tags and domain."""
    found: dict[str, float] = {}
    title = re.sub(r"^(ask|show|launch|tell) hn:\s*", "", c.title, flags=re.IGNORECASE)
    title = re.sub(r"\((?:19|20)\d\d\)\s*$", "", title)  # "(1998)" marks an old article, not a topic
    for tag in vocabulary:
        hits = len(pattern_for(tag).findall(title.lower()))
        if hits:
            found[tag] = found.get(tag, 0) + TITLE_WEIGHT * min(hits, 2)
    for site_tag in c.site_tags:
        for tag in LOBSTERS_TAGS.get(site_tag.lower(), [site_tag.lower()] if site_tag.lower() in vocabulary else []):
            found[tag] = found.get(tag, 0) + NATIVE_WEIGHT
    domain = (c.domain or "").lower().split("/")[0]
    for known, tags in DOMAIN_HINTS.items():
        if domain == known or domain.endswith("." + known):
            for tag in tags:
                found[tag] = found.get(tag, 0) + DOMAIN_WEIGHT
    # A language tag implies the broader programming tag.
    for lang in ("python", "rust", "go", "javascript"):
        if lang in found:
            found["programming"] = found.get("programming", 0) + 0.5
    if re.search(r"\b\d{4}\)\s*$", c.title) or re.search(r"\bhistory\b", c.title, re.IGNORECASE):
        found["culture"] = found.get("culture", 0) + 0.5
    return {tag: weight for tag, weight in found.items() if tag in vocabulary}


TAG_THRESHOLD = 0.75  # evidence a tag needs to be given
RULES_WEIGHT = 2.0  # the learner's prior: log-odds = 2 × the rules' margin (or tag evidence over the threshold)


def margin_of(ev: dict[str, float], site: str, interests: Interests) -> tuple[float, float, float]:
    """The rules' relevance margin (relevant at >= 0), and the technical and other evidence it weighs."""
    # Web and hardware stories are half-way: they count half unless the profile decides them.
    technical = sum(w for t, w in ev.items() if t in interests.core)
    other = sum(w for t, w in ev.items() if t in interests.other)
    if "web" not in interests.core | interests.other:
        technical += 0.5 * ev.get("web", 0)
    if "hardware" not in interests.core | interests.other:
        other += 0.5 * ev.get("hardware", 0)
    if getattr(site, "computing", False):
        technical += 0.5  # the community itself filters for computing (its kind says so: sites.Kind.computing)
    margin = technical - other if technical > 0 else -0.25  # relevant: some technical evidence, not outweighed
    return margin, technical, other


def with_article(ev: dict[str, float], hits: dict[str, int] | None, vocabulary) -> dict[str, float]:
    """The evidence plus the article's topic words (`hits`: counts per tag), weaker than the title's."""
    ev = dict(ev)
    for tag, n in (hits or {}).items():
        if tag in vocabulary:
            ev[tag] = ev.get(tag, 0) + ARTICLE_WEIGHT * min(n, 3)
    return ev


def topic_hits(text: str, vocabulary) -> dict[str, int]:
    """Each topic's words counted in the start of an article (what its card shows)."""
    text = text[:ARTICLE_CHARS].lower()
    return {tag: n for tag in sorted(vocabulary) if (n := len(pattern_for(tag).findall(text)))}


def teach(votes: list[learn.Vote], vocabulary, profile: str | None = None,
          embedder: embeddings.Embedder | None = None, computing: frozenset[str] = frozenset()) -> learn.Learner:
    """What the reader's votes teach, anchored to these rules (read with the reader's `profile`, as the
    judge reads it from the task): with no votes, the rules' own decisions. With an `embedder`, the votes
    are also learned over the meaning of each story (learn.Meaning), which then decides with the rules.
    `computing`: the sources whose community keeps to computing (the hint the task gives the judge)."""
    priors = {"relevance_prior": {"margin": RULES_WEIGHT},
              "tag_prior": {"own": RULES_WEIGHT, "bias": -TAG_THRESHOLD * RULES_WEIGHT}}
    if embedder is not None:  # the meaning decides with the rules: the word features are not fitted for nothing
        return learn.Learner([], **priors, meaning=learn.fit_meaning(
            embedder.vectors, embedder.model_id, [vote_text(v) for v in votes], [v.relevant for v in votes],
            [[t for t in v.tags or [] if t in vocabulary] for v in votes], tune=embedder.tuned))
    interests, examples = interests_from(profile, set(vocabulary)), []
    for v in votes:
        c = Candidate(0, v.title, v.domain, list(v.site_tags or []), None, None, v.kind or "story")
        ev = with_article(evidence(c, set(vocabulary)), topic_hits(v.text, vocabulary) if v.text else None,
                          vocabulary)
        tags = [t for t in v.tags or [] if t in vocabulary] or None  # a tag outside the vocabulary is never given
        examples.append(learn.Example(learn.story_features(c.title, c.domain, v.site, c.site_tags, c.kind),
                                      margin_of(ev, TaskSite(v.site, computing=v.site in computing), interests)[0],
                                      ev, v.relevant, tags,
                                      frozenset(learn.words(v.text[:ARTICLE_CHARS]))))
    return learn.Learner(examples, **priors)


def vote_text(vote: learn.Vote) -> str:
    """A vote as the learner embeds it: the same line as a card's (meaning_text), from what the vote holds."""
    return embeddings.story_text(vote.title, vote.domain, vote.site_tags, vote.text)


def judge(c: Candidate, vocabulary: set[str], site: str, interests: Interests = Interests(),
          article_hits: dict[str, int] | None = None, article_words: frozenset[str] = frozenset(),
          learned: learn.Learner | None = None) -> Verdict:
    ev = with_article(evidence(c, vocabulary), article_hits, vocabulary)
    if c.kind == "job":
        ev["business"] = ev.get("business", 0) + 3
    ranked = sorted(ev.items(), key=lambda kv: (-kv[1], kv[0]))
    tags = [tag for tag, weight in ranked if weight >= TAG_THRESHOLD][:3]
    if not tags:
        # Lobsters is computing-focused; an HN story with no evidence is most likely general interest.
        tags = ["programming" if getattr(site, "computing", False) and "programming" in vocabulary else
                ("culture" if "culture" in vocabulary else sorted(vocabulary)[0])]
    margin, technical, other = margin_of(ev, site, interests)
    relevant = by_rules = int(c.kind != "job" and margin >= 0)
    reason = reason_for(ev, by_rules, c)
    if learned is not None and learned.meaning is not None:  # the votes' meaning decides with the rules...
        if learned.meaning.weight:  # ...once there are enough of them
            relevant, tags = with_meaning(c, learned.meaning, ev, margin, tags, vocabulary)
        if relevant != by_rules:
            reason += f"; overturned by your votes on stories like this one ({learned.meaning.n} votes)"
    elif learned is not None and learned.n:  # the reader's votes decide, anchored to the margin above
        features = {**learn.story_features(c.title, c.domain, site, c.site_tags, c.kind),
                    **learned.article_features(article_words)}
        relevant = int(c.kind != "job" and learned.relevance(features, margin, ev) >= 0)
        if relevant != by_rules:
            reason += "; overturned by your votes on " + (", ".join(learned.deciding(features, relevant))
                                                          or "stories like this")
        odds = learned.tags(features, ev)  # a tag the reader gives stories like this one is added, never removed
        tags += [t for t in sorted(odds, key=lambda t: (-odds[t], t)) if odds[t] >= 0 and t in vocabulary
                 and t not in tags][:max(0, 3 - len(tags))]
    engagement = min(20, ((c.points or 0) // 25) + ((c.comments or 0) // 25))
    score = max(0, min(100, (55 if relevant else 15) + int(10 * (technical - other)) + engagement))
    score = min(score, 45) if not relevant else max(score, 50)
    return Verdict(relevant, score, tags, summary_for(c, tags, relevant, site), reason)


def with_meaning(c: Candidate, meaning: learn.Meaning, ev: dict[str, float], margin: float, tags: list[str],
                 vocabulary) -> tuple[int, list[str]]:
    """Relevance and tags when the votes were learned over embeddings: each a probability mixed from the
    rules' (their margin, their evidence for the tag, as log-odds of RULES_WEIGHT a unit) and the embedding
    model's, which has `meaning.weight` of the say. A tag is added, never removed (the rules' own stay)."""
    w = meaning.weight
    (wanted, tag_odds), = meaning.probabilities([meaning_text(c)])
    rules_p = learn.sigmoid(RULES_WEIGHT * max(-3.0, min(3.0, margin)))
    p = rules_p if wanted is None else (1 - w) * rules_p + w * wanted
    mixed = {tag: (1 - w) * learn.sigmoid(RULES_WEIGHT * (min(ev.get(tag, 0.0), 3.0) - TAG_THRESHOLD)) + w * q
             for tag, q in tag_odds.items() if tag in vocabulary}
    added = [t for t in sorted(mixed, key=lambda t: (-mixed[t], t)) if mixed[t] >= 0.5 and t not in tags]
    return int(c.kind != "job" and p >= 0.5), tags + added[:max(0, 3 - len(tags))]


def meaning_text(c: Candidate) -> str:
    """A card as the learner embeds it (the same line as a vote's: embeddings.story_text)."""
    return embeddings.story_text(c.title, c.domain, c.site_tags, c.article)


def summary_for(c: Candidate, tags: list[str], relevant: int, site: str) -> str:
    kinds = {"ask": "discussion thread", "show": "project showcase", "job": "job posting", "story": "article"}
    where = f"from {c.domain}" if c.domain else f"posted on {getattr(site, 'name', site)}"
    numbers = []
    if c.points is not None:
        numbers.append(f"{c.points} points")
    if c.comments is not None:
        numbers.append(f"{c.comments} comments")
    engagement = f" ({', '.join(numbers)})" if numbers else ""
    verdict = "worth a look for your interests" if relevant else "outside your usual interests"
    return f"{kinds.get(c.kind, 'article').capitalize()} {where} on {' and '.join(tags)}{engagement}; {verdict}."


def reason_for(ev: dict[str, float], relevant: int, c: Candidate) -> str:
    if c.kind == "job":
        return "hiring post"
    if not ev:
        return "no topical evidence in title, tags or domain"
    top = ", ".join(f"{t}={w:g}" for t, w in sorted(ev.items(), key=lambda kv: -kv[1])[:4])
    return ("technical evidence: " if relevant else "mostly non-technical: ") + top


# --- reading the task, writing the code ---------------------------------------------

def sentences(text: str) -> list[str]:
    """The sentences of a text that start on a word (a capital, a digit or a quote) and end in . ! or ?."""
    return [s.strip() for line in text.split("\n")
            for s in re.findall(r'(?<![A-Za-z0-9])[A-Z0-9"][^.!?]*[.!?]', line)]


def quotable(text: str) -> bool:
    """What schema.sql takes as evidence: four words, or 15 characters of a script written without spaces."""
    return len(text.split()) >= 4 or (" " not in text and len(text) >= 15 and not text.isascii())


def from_card(c: Candidate, fallback: str) -> tuple[str, str | None, str | None, str | None]:
    """(summary, evidence, discussion line, its evidence) from what the card shows: the article's description
    as the summary, else its first full sentence of 40-200 characters, which is also the evidence (the start
    of its first line when it has none); the discussion line from the first comment's first sentence that is
    not a quote, which is also the discussion's evidence."""
    quote = next((s for s in sentences(c.article) if 40 <= len(s) <= 200 and quotable(s)
                  and s.lower() not in c.title.lower()), None)
    if quote is None and c.article.strip():  # no full sentence: the start of the first line, cut at a word
        line = c.article.strip().split("\n")[0].strip()
        quote = line if len(line) <= 200 else line[:200].rsplit(" ", 1)[0].strip()
        quote = quote if quotable(quote) else None
    about = " ".join(c.description.split())
    summary = about if 10 <= len(about) <= 400 and about.lower() not in c.title.lower() else (quote or fallback)
    if repeats_title(summary, c.title):  # a one-line item (a commit) whose text is its title: say what it is
        summary = fallback
    comment = c.first_comments[0][1] if c.first_comments else ""
    lines = [line for line in comment.split("\n") if line and not line.startswith(">")]
    said = next((s for s in sentences("\n".join(lines)) if 20 <= len(s) <= 250 and quotable(s)), None)
    return summary, quote, ("Top comment: " + said) if said else None, said


def repeats_title(summary: str, title: str) -> bool:
    """Whether schema.sql's trigger would refuse `summary` for repeating the title: its letters, without
    spaces and . , : - ' ", are part of the title's."""
    squeeze = str.maketrans("", "", " .,:-'\"")
    return summary.lower().translate(squeeze) in title.lower().translate(squeeze)


def card_text(c: Candidate) -> str:
    """What the card shows of a story's article: its description and the start of its text."""
    return f"{c.description}\n{c.article}".strip()


def code_for(task: str, judge_fn=None, learned_terms: frozenset[str] = frozenset(), embed=None) -> str:
    """The Python the rules model 'writes' after reading the cards: one INSERT per judgment and tag, then
    final_answer. What a card shows of the article counts in relevance and tags (its topic words, and the
    words the reader's votes taught something about), and the summary, evidence and discussion line are
    taken from the card, as an LLM would take them."""
    judge_fn = judge_fn or judge
    run_id, site, vocabulary, candidates, profile = parse_task(task)
    interests = interests_from(profile, vocabulary)
    if embed is not None:  # the whole batch in one call to the embedding model
        embed([meaning_text(c) for c in candidates])
    rows = []
    for c in candidates:
        text = card_text(c)
        hits = topic_hits(text, vocabulary) if text else None
        words = learned_terms.intersection(learn.words(text)) if text and learned_terms else frozenset()
        v = judge_fn(c, vocabulary, site, interests, hits, frozenset(words))
        summary, quote, said, heard = from_card(c, v.summary)
        rows.append([c.id, v.relevant, v.score, summary, v.reason, quote, said, heard, v.tags])
    return (f"{inspect.getsource(write_judgments)}\n"
            f"rows = {rows!r}\n"
            f"failed = write_judgments(rows, {run_id}, sql)\n"
            "print('failed:', failed)\n"
            "final_answer(f'judged {len(rows) - len(failed)} of {len(rows)} stories')\n")


def write_judgments(rows: list, run_id: int, sql) -> list:
    """The rules model's code in the sandbox (sent as this function's source, run by the executor): each
    row's judgment, then its tags, through the `sql` tool; what the database refused, with its reason."""
    failed = []
    for story_id, relevant, score, summary, reason, evidence, discussion, heard, tags in rows:
        r = sql("INSERT INTO judgments (run_id, story_id, relevant, score, summary, reason, evidence, "
                "discussion, discussion_evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [run_id, story_id, relevant, score, summary, reason, evidence, discussion, heard])
        if r.startswith("error"):
            failed.append((story_id, r))
            continue
        for tag in tags:
            t = sql("INSERT INTO story_tags (run_id, story_id, tag) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [run_id, story_id, tag])
            if t.startswith("error"):
                failed.append((story_id, t))
    return failed


class RulesModel(Model):
    """A smolagents Model that answers every step with deterministic code (no network, no key)."""

    name = "rules"
    def __init__(self, learned: learn.Learner | None = None, **kwargs):
        super().__init__(model_id=self.name, **kwargs)
        self.learned = learned  # the reader's votes, learned at this refresh (None: the rules alone)

    def judge(self, c: Candidate, vocabulary: set[str], site: str, interests: Interests,
              hits: dict[str, int] | None = None, words: frozenset[str] = frozenset()) -> Verdict:
        return judge(c, vocabulary, site, interests, hits, words, self.learned)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
        task = next(text_of(m) for m in messages if role_of(m) == "user" and CANDIDATES_MARKER in text_of(m))
        meaning = self.learned.meaning if self.learned else None
        code = code_for(task, self.judge, self.learned.terms if self.learned else frozenset(),
                        meaning.embed if meaning is not None and meaning.weight else None)
        content = f"Thought: judging every candidate from its card with the deterministic rules.\n<code>\n{code}</code>"
        return ChatMessage(role=MessageRole.ASSISTANT, content=content, token_usage=TokenUsage(0, 0))


def role_of(message) -> str:
    role = message["role"] if isinstance(message, dict) else message.role
    return getattr(role, "value", role)


def text_of(message) -> str:
    content = message["content"] if isinstance(message, dict) else message.content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


# --- the floor: a naive keyword filter ---------------------------------------------------

BASELINE_RELEVANT = ["python", "rust", "golang", " go ", "ai", "llm", "gpt", "database", "sql", "linux", "kernel",
                     "security", "programming", "code", "compiler", "software", "developer", "open source", "api"]
BASELINE_SKIP = ["funding", "raises", "hiring", "crypto", "bitcoin", "election", "lawsuit", "court", "stock"]
BASELINE_TAGS = {
    "ai": ["ai", "ml", "gpt", "llm", "neural"], "python": ["python"], "rust": ["rust"], "go": ["go"],
    "javascript": ["js", "javascript", "react"], "web": ["web", "browser", "http"], "databases": ["sql", "database"],
    "devops": ["docker", "kubernetes", "cloud"], "security": ["security", "hack", "vulnerab"],
    "systems": ["linux", "kernel", "os"], "hardware": ["chip", "cpu", "hardware"], "science": ["science", "space"],
    "business": ["startup", "funding", "hiring", "company"], "programming": ["code", "programming", "compiler"],
}


def keyword_baseline(c: Candidate, vocabulary: set[str], site: str) -> Verdict:
    """Substring matching on the lower-cased title, as a naive filter would do it (so "Trusted" is rust)."""
    title = f" {c.title.lower()} "
    relevant = int(any(k in title for k in BASELINE_RELEVANT) and not any(k in title for k in BASELINE_SKIP))
    tags = [tag for tag, words in BASELINE_TAGS.items() if tag in vocabulary and any(w in title for w in words)][:3]
    tags = tags or (["culture"] if "culture" in vocabulary else [sorted(vocabulary)[0]])
    return Verdict(relevant, 70 if relevant else 20, tags, summary_for(c, tags, relevant, site), "keyword match")


class KeywordBaselineModel(RulesModel):
    """The keyword filter driven through the same agent path, so every eval shows the floor."""

    name = "keyword-baseline"

    def judge(self, c: Candidate, vocabulary: set[str], site: str, interests: Interests,
              hits: dict[str, int] | None = None, words: frozenset[str] = frozenset()) -> Verdict:
        return keyword_baseline(c, vocabulary, site)  # the naive filter ignores the profile and the article
