"""The judge's defaults and limits: one place, importable without smolagents or LiteLLM.

config.py validates user values against them, the command line shows them, and the
judge (agent.py) starts from them. Nothing here imports the heavy libraries, so
`newsreader --help` and `newsreader config` stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

DEFAULT_PROFILE = (
    "A software engineer following programming languages (especially Python, Rust, Go), AI/ML and LLM "
    "engineering, databases and data tooling, developer tools, operating systems, systems and distributed "
    "systems, security engineering, software architecture and performance. Not interested in business, "
    "funding, startup or market news, crypto, politics/law/policy news, social-media drama, hiring posts, or "
    "general science/space/health/history unless it is about computing."
)
EXECUTORS = ("jail", "local", "docker", "e2b", "modal", "blaxel")  # the built-in ones (plugins.py); plugins add more
DEFAULT_EXECUTOR = "jail"
DEFAULT_MAX_STEPS = 6
PARALLEL_SOURCES = 4  # sources fetched and judged at once: two cores, and a hosted model's rate limit, bear this
PER_HOST = 2  # listing requests to one host at once (a self-hosted RSSHub serves many feeds)
MAX_CANDIDATES = 100  # stories judged per site and run: a front page has 25-30
STEP_TIMEOUT_S = 60  # wall clock for one step of generated code (jail, docker)
SITE_TIMEOUT_S = 900  # wall clock for one site's whole agent run
ARTICLE_CACHE_DAYS = 7  # an article read this recently is not fetched again
REUSE_DAYS = 7  # a judgment whose basis is unchanged is carried over this long instead of asking the model again


@dataclass(frozen=True)
class Reading:
    """What the model is shown of each story (`[reading]` in the config): the characters of its article's
    start, of each comment and how many comments a card holds, and the prompt tokens one batch of cards
    may take (an 8k-context local model holds a batch, its reply and a second step)."""

    article_chars: int = 700
    comment_chars: int = 200
    comments: int = 3
    batch_tokens: int = 5000


CURVE_ORDERS = 5  # eval --curve: each point is the mean over this many seeded orders of the votes (one is noise)


@dataclass(frozen=True)
class Judge:
    """How one refresh or eval judges: built from the config (and flags), handed to the judge as one object."""

    model: str = "rules"
    model_options: dict = field(default_factory=dict)  # passed to LiteLLM
    executor: str = DEFAULT_EXECUTOR
    executor_options: dict = field(default_factory=dict)  # passed to the executor
    max_steps: int = DEFAULT_MAX_STEPS
    step_timeout: float = STEP_TIMEOUT_S
    site_timeout: float = SITE_TIMEOUT_S
    profile: str = DEFAULT_PROFILE
    budget_usd: float | None = None  # the refresh stops calling the model before spending more than this
    reading: Reading = field(default_factory=Reading)  # what a card holds, how many cards a batch
    embeddings: str = "auto"  # what the learner embeds stories with: auto, local, none or a LiteLLM id
    embedding_options: dict = field(default_factory=dict)  # passed to litellm.embedding (api_base, ...)

    @property
    def served_model(self) -> str:
        """The model a judgment rests on: its id and, for a model at an api_base, where it is served (another
        model behind the same alias on another server must not reuse its judgments)."""
        base = self.model_options.get("api_base")
        return f"{self.model} at {base}" if base else self.model

    def but(self, **changes) -> Judge:
        """A copy with some settings changed."""
        return replace(self, **changes)
