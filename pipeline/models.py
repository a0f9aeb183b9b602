"""The judge's models: the factory (`rules`, `keyword-baseline` or any LiteLLM id), the refresh's budget, and
LiteLLM's model as real servers need it.

`BudgetedModel` checks every call against the refresh's `budget_usd` and counts it in, ends it by the site's
deadline however slowly the provider answers, detects a server that takes only plain-text messages
(llama.cpp's), counts calls that got no answer, and names a provider's errors by their cause and the
server (`ModelCallFailed`). `make_model` gives every judging call a `max_tokens` and a temperature.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from smolagents import LiteLLMModel, Model
from smolagents.models import ChatMessage
from smolagents.monitoring import TokenUsage

from . import jail, prompt
from .rules import KeywordBaselineModel, RulesModel
from .text import one_line

BUILTIN_MODELS = (RulesModel.name, KeywordBaselineModel.name)  # deterministic code we wrote: may run in-process

MAX_TOKENS = 3000  # one reply: a batch's judgments fit, and a batch (3,750) plus this fits an 8k context
TEMPERATURE = 0.2  # a judging step, not a creative one
OLLAMA_NUM_CTX = 16384  # tokens: the task, a few steps and their outputs, with room to spare


def cost_usd(model_id: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """What the tokens cost, from LiteLLM's bundled cost map; None when the model's price is unknown."""
    if model_id in BUILTIN_MODELS:
        return 0.0
    if not model_id:
        return None
    import litellm

    litellm.suppress_debug_info = True  # no "Provider List" banner for a model it does not know
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model_id, prompt_tokens=input_tokens, completion_tokens=output_tokens)
    except Exception:  # litellm raises for a model it has no price for
        return None
    return round(prompt_cost + completion_cost, 6)


def model_cost(model: Model, input_tokens: int, output_tokens: int) -> float | None:
    """cost_usd for a model object: ours cost nothing, a LiteLLM model what the cost map says, others unknown."""
    if isinstance(model, RulesModel):
        return 0.0
    if isinstance(model, LiteLLMModel):
        return cost_usd(model.model_id, input_tokens, output_tokens)
    return None


@dataclass
class Usage:
    """What model calls took outside any site's agent (the editor's note): calls, tokens, cost (None when
    LiteLLM has no price for the model). The run's totals add it to the sites'."""

    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0


class ModelCallFailed(Exception):
    """A model call that got no usable answer, named by its cause (what the site's error says)."""


class BudgetSpent(ModelCallFailed):
    """The refresh's budget_usd would be exceeded by the next model call."""


class Budget:
    """What one refresh may spend on model calls, shared by every call (both sites, the editor's note)."""

    def __init__(self, limit_usd: float | None):
        self.limit, self.spent, self.lock = limit_usd, 0.0, threading.Lock()

    def check(self, model_id: str, messages) -> None:
        """Refuse a call whose prompt alone (about 4 characters a token) would take spending past the limit."""
        if self.limit is None:
            return
        characters = sum(len(str(getattr(m, "content", m))) for m in messages)
        estimate = cost_usd(model_id, characters // 4, 0) or 0.0
        with self.lock:
            if self.spent + estimate > self.limit:
                raise BudgetSpent(f"budget_usd {self.limit:g} reached: ${self.spent:.4f} spent, the next call "
                                  f"would cost about ${estimate:.4f}; no more model calls this refresh")

    def add(self, model_id: str, usage: TokenUsage | None) -> None:
        if usage is not None:
            with self.lock:
                self.spent += cost_usd(model_id, usage.input_tokens, usage.output_tokens) or 0.0


FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)\n?```", re.DOTALL)


def mend_fences(text: str, opening: str = "<code>", closing: str = "</code>") -> str:
    """A reply's code block as the model meant it. Real small models open with `<code>` and close with a
    markdown fence (smolagents closes the block at the reply's end, so the prose after the fence ran as
    Python), or write a markdown fence only: either is cut at the fence and tagged as the prompt asks."""
    head, found, rest = text.partition(opening)
    if not found:
        match = FENCE.search(text)
        return f"{text[:match.start()]}{opening}\n{match.group(1)}\n{closing}" if match else text
    if closing in rest:
        return text
    code, fence, _ = rest.partition("\n```")
    return f"{head}{opening}{code}\n{closing}" if fence else text


def refuses_parts(exc: Exception) -> bool:
    """A server that takes a message's content only as a string (llama.cpp's, through llama-cpp-python,
    answers smolagents' list of text parts with 'Input should be a valid string')."""
    text = str(exc)
    return "valid string" in text and "content" in text


def timed_out(exc: Exception) -> bool:
    """A call given up at a timeout: the site's deadline (TimeoutError) or LiteLLM's own (litellm.Timeout)."""
    import litellm

    return isinstance(exc, TimeoutError | litellm.Timeout)


def call_failure(exc: Exception, where: str, timeout: float | None) -> ModelCallFailed | None:
    """A provider's error as the site's error should name it (where the model is served, what to change);
    None for errors that already say what they are."""
    import litellm

    first = one_line(str(exc), 200)
    if isinstance(exc, litellm.Timeout):
        return ModelCallFailed(f"the model at {where} did not answer within {timeout or 0:g} s (the call was "
                               "given up, not retried: set model.options timeout for a slow local model)")
    if isinstance(exc, litellm.ContextWindowExceededError) or "context window" in first.lower():
        return ModelCallFailed(f"the prompt did not fit the context window of the model at {where}: serve it "
                               "with a larger context (llama.cpp server: --n_ctx 8192) or lower [reading] "
                               f"batch_tokens ({first})")
    if isinstance(exc, litellm.APIConnectionError) or "connection error" in first.lower():
        return ModelCallFailed(f"cannot reach the model at {where}: {first}")
    return None


TEXT_ONLY: set[tuple[str, str]] = set()  # (api_base, model id) of servers found to refuse a list of parts


class DeadlinePassed(TimeoutError):
    """The site's deadline came before a model call: no call is made."""


class BudgetedModel(LiteLLMModel):
    """A LiteLLM model whose every call is checked against, and counted into, the refresh's budget, and
    ends by the site's deadline (`deadline`, a `time.monotonic()` instant that judge_site sets). Calls that
    got no answer are counted too (`unanswered`, `unanswered_tokens`: a timed-out prompt was still read)."""

    def __init__(self, *args, budget: Budget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if (self.api_base, self.model_id) in TEXT_ONLY:
            self.flatten_messages_as_text = True
        self.budget = budget or Budget(None)
        self.deadline: float | None = None
        self.unanswered = self.unanswered_tokens = 0

    @property
    def where(self) -> str:
        return self.api_base or f"{self.model_id.split('/', 1)[0]}'s API"

    def generate(self, messages, *args, **kwargs) -> ChatMessage:
        if jail.STOPPING.is_set():  # Ctrl-C: the agent ends at its next call instead of trying its steps out
            raise DeadlinePassed("the refresh is stopping: no more model calls")
        self.budget.check(self.model_id, messages)
        try:
            message = self.within_deadline(super().generate, messages, *args, **kwargs)
        except DeadlinePassed:
            raise
        except Exception as exc:
            self.unanswered += 1
            if not self.flatten_messages_as_text and refuses_parts(exc):
                self.flatten_messages_as_text = True  # detected once: every later call to it sends plain text
                TEXT_ONLY.add((self.api_base, self.model_id))
                return self.generate(messages, *args, **kwargs)
            if timed_out(exc):
                self.unanswered_tokens += sum(prompt.tokens(str(getattr(m, "content", m))) for m in messages)
            failure = call_failure(exc, self.where, kwargs.get("timeout") or self.kwargs.get("timeout"))
            if failure is None:
                raise
            raise failure from exc
        self.budget.add(self.model_id, message.token_usage)
        if isinstance(message.content, str):
            message.content = mend_fences(message.content)
        return message

    def within_deadline(self, call, *args, **kwargs) -> ChatMessage:
        """The call, given up at the deadline however the provider answers: LiteLLM's timeout bounds each
        read, so an endpoint dripping a byte a second held one call for minutes. The abandoned call runs
        on in a daemon thread, with no more retries than LiteLLM's own, and its answer is never used."""
        if self.deadline is None:
            return call(*args, **kwargs)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the site ran past its time limit before this model call")
        kwargs["timeout"] = min(float(kwargs.get("timeout") or self.kwargs.get("timeout") or left), left)
        done: dict = {}

        def run():
            try:
                done["message"] = call(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting thread
                done["error"] = exc

        worker = threading.Thread(target=run, daemon=True, name="model-call")
        worker.start()
        worker.join(left)
        if worker.is_alive():
            raise TimeoutError(f"the model call ran past the site's time limit ({left:.0f} s left when it began)")
        if "error" in done:
            raise done["error"]
        return done["message"]


SERVED_TIMEOUT = 600  # seconds a call to a model at a given api_base may take (a CPU generates slowly)


def model_options(model_id: str, options: dict) -> dict:
    """The LiteLLM options a judging call is made with: ours first, the config's over them.

    Without max_tokens a reply that never closes its code block generates until the context is full (7,203
    tokens in 382 s, seen with a local model); without a temperature a server's own default (0.8) applies;
    drop_params drops what a model does not take (gpt-5's temperature). A model served at an api_base (a
    local server) is not retried: a call given up at its timeout keeps the server generating, and a retry
    makes it generate twice."""
    served = bool(options.get("api_base"))
    options = {"timeout": SERVED_TIMEOUT if served else 120, "max_retries": 0 if served else 2,
               "drop_params": True, "max_tokens": MAX_TOKENS, "temperature": TEMPERATURE, **options}
    if model_id.startswith(("ollama/", "ollama_chat/")):  # Ollama's default 2-4k context cannot hold the task
        options.setdefault("num_ctx", OLLAMA_NUM_CTX)
    return options


def option_warnings(model_id: str | None, options: dict) -> list[str]:
    """What in model.options has no effect on this model, said once a refresh (LiteLLM drops it silently)."""
    if model_id and "num_ctx" in options and not model_id.startswith(("ollama/", "ollama_chat/")):
        return [f"model.options num_ctx is an Ollama option and has no effect on {model_id}: the context window "
                "is the server's (llama.cpp server: --n_ctx; LM Studio: the model's load settings)"]
    return []


def make_model(model_id: str | None, budget: Budget | None = None, learned=None, **options) -> Model:
    """`rules` (the default, offline), `keyword-baseline`, or any LiteLLM model id (keys from the environment).
    `learned`: what the `rules` model learned from the reader's votes (an LLM reads them in its sandbox)."""
    if not model_id or model_id == RulesModel.name:
        return RulesModel(learned=learned)
    if model_id == KeywordBaselineModel.name:
        return KeywordBaselineModel()
    options = model_options(model_id, options)
    retry_wait = options.pop("retry_wait", 5.0)
    import litellm

    litellm.suppress_debug_info = True  # no "Provider List" banner on stdout when a call fails for an unknown model
    model = BudgetedModel(model_id=model_id, budget=budget, **options)
    # smolagents' own rate-limit retry starts at a 60 s wait; keep a refresh from hanging for minutes.
    model.retryer.wait_seconds = retry_wait
    model.retryer.max_attempts = min(model.retryer.max_attempts, 3)
    return model
