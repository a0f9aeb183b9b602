"""The judge: one smolagents CodeAgent per site, in parallel, each writing into its own sandbox.

The agent sees the reader's profile, the tag vocabulary and a compact candidate
table (never HTML), and has one tool, `sql`, into its sandbox DB. It judges by
writing INSERTs; the DB's constraints say what is well-formed. A final-answer
check run on the host refuses to finish until every candidate is judged and
tagged and the sandbox is still sound, so the model keeps working instead of
declaring victory.

`JudgeAgent` is smolagents' CodeAgent with the judge's own system prompt
(prompt.py's template), `run_id` and `candidates` as variables of the code, a
memory that says what each earlier step's code did instead of repeating it, replies that could
not run (cut off at the token limit, empty, no code) named to the model, and no
extra model call at max steps. Whenever the agent stops, for any reason, the host
checks the sandbox: complete and valid, it lands.

Executors: `local` (smolagents' LocalPythonExecutor, in process) or a remote one
(`docker`, `e2b`, `modal`, `blaxel`). Remote kernels run the tool's source on
their side, so the sandbox DB is shipped in before the run and read back afterwards
(`executors.HostExecutor.load`/`dump`, or base64 through a kernel smolagents built); the
host's validation and sync are the same for every executor.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from smolagents import CodeAgent, Model
from smolagents.agents import ToolCall, populate_template
from smolagents.memory import ActionStep
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import LogLevel, Timing, TokenUsage
from smolagents.utils import AgentError, AgentMaxStepsError, AgentParsingError

from . import articles, executors, jail, plugins, prompt, sandbox, sqltool
from .models import BUILTIN_MODELS, BudgetedModel, ModelCallFailed, model_cost
from .parse import Story
from .rules import RulesModel
from .settings import Judge, Reading
from .text import describe, one_line

# CPython 3.11 before 3.11.9 can fail with "SystemError: AST constructor recursion depth
# mismatch" when two threads run ast.parse at once (python/cpython#106905), and the two
# sites' agents both parse code (smolagents' executor, tool shipping). Parse one at a time.
_AST_LOCK = threading.Lock()
_ast_parse = ast.parse


def _serial_ast_parse(*args, **kwargs):
    with _AST_LOCK:
        return _ast_parse(*args, **kwargs)


if sys.version_info < (3, 11, 9):
    ast.parse = _serial_ast_parse

# Bounds on one step in smolagents' LocalPythonExecutor (in process, or inside the jail): its own
# time limit (only checked when the step's thread finishes) and printed characters.


# --- the task -------------------------------------------------------------------------


@dataclass
class Site:
    """One site this run as the judge and the sync take it: its sandbox, which holds the stories to judge,
    and what the host knows beside it, which the model's code must not be able to change."""

    box: sandbox.Sandbox
    # The site's other stories this run: judged before on the same basis, carried over by the sync
    # from that run's judgment (story, history run id) instead of being put to the agent.
    reused: list[tuple[Story, int]] = field(default_factory=list)
    basis: dict[str, str] = field(default_factory=dict)  # source_id -> prompt.basis of its judgment
    cached: dict[str, articles.Article] = field(default_factory=dict)  # article key -> read recently, in history
    reading: articles.Reading | None = None  # what the host read for the candidates (None: nothing read)
    # The reader's votes a batch's judge sees, chosen for the batch's stories (the nearest in meaning);
    # None: the votes preloaded for the whole site.
    votes_near: Callable[[list[Story]], list] | None = None
    about: prompt.TaskSite | None = None  # its name and hints, as the task gives them (None: its slug alone)
    listing: str = "front page"  # what its listing is called in the task (a feed's: "feed")

    @property
    def source(self) -> str:
        return self.box.source

    @property
    def stories(self) -> list[Story]:
        """Every story of the site this run: the candidates, then those carried over."""
        return [*self.box.candidates.values(), *(story for story, _ in self.reused)]

    def add_reading(self, reading: articles.Reading) -> None:
        """What the host read for the candidates: into the sandbox for the model, and kept here for the sync
        (the whole text, where the sandbox holds an excerpt)."""
        self.reading = reading
        sandbox.add_reading(self.box, reading)


def cards_for(site: Site, ids: list[int], reading: Reading | None = None) -> list[str]:
    """The reading cards of these candidates: each story's facts and what the host read of it."""
    found, candidates = site.reading, site.box.candidates
    return [prompt.card(i, candidates[i], found.articles.get(candidates[i].source_id) if found else None,
                        found.discussions.get(candidates[i].source_id) if found else None, reading)
            for i in ids]


def build_task(site: Site, profile: str, vocabulary: dict[str, str], ids: list[int] | None = None,
               reading: Reading | None = None) -> str:
    """The prompt for a batch of one site's candidates (all of them by default): see prompt.py."""
    box = site.box
    ids = sorted(box.candidates) if ids is None else ids
    return prompt.build_task(box.source, box.run_id, profile, vocabulary, cards_for(site, ids, reading), box.votes,
                             site.about, site.listing)


def code_variables(box: sandbox.Sandbox, ids: list[int] | None = None) -> dict:
    """What the agent's code finds defined: the run's id and the batch's candidates as plain data."""
    ids = sorted(box.candidates) if ids is None else ids
    return {"run_id": box.run_id,
            "candidates": [{"id": i, "title": s.title, "domain": s.domain, "site_tags": list(s.tags),
                            "points": s.points, "comments": s.comments, "kind": s.kind}
                           for i, s in ((i, box.candidates[i]) for i in ids)]}


# --- the agent -----------------------------------------------------------------------

# Small real models import sqlite3 at every step (their refusal named the allowed modules, not the tool).
IMPORT_HINT = (" Do not import modules to reach the database: call sql(statement, params), which is already "
               "defined, as the system prompt shows.")
THOUGHT_KEPT = 600  # characters of an earlier reply's thought repeated in later prompts, in whole lines
FAILED_CODE_KEPT = 3000  # characters of the latest step's failed code repeated, in whole lines, to be fixed
OUTPUT_KEPT = 8000  # characters of the latest step's output and error shown (the prompt says so); earlier...
EARLIER_OUTPUT_KEPT = 400  # ...this many


def finish_reason(message: ChatMessage) -> str | None:
    raw = getattr(message, "raw", None)
    try:
        return raw.choices[0].finish_reason
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def cut_off(message: ChatMessage, max_tokens: int | None) -> str:
    """Why a reply stopped at `length`, named truly: the output limit (max_tokens) or, when the reply is
    shorter than that, the model's context window, full with the prompt and the reply."""
    usage = message.token_usage
    if usage is not None and max_tokens and usage.output_tokens < max_tokens:
        return (f"your reply was cut off after {usage.output_tokens} tokens because the model's context window was "
                f"full ({usage.input_tokens} prompt + {usage.output_tokens} reply tokens), so none of its code ran: "
                "write a short loop over `candidates` instead of one line per story")
    tokens = usage.output_tokens if usage else "the maximum number of"
    return (f"your reply was cut off after {tokens} tokens (the output limit), so none of its code ran: "
            "write fewer judgments per code block (e.g. 10), then continue with the rest")


def reply_problem(message: ChatMessage | None, tags: tuple[str, str], max_tokens: int | None = None) -> str | None:
    """Why a model reply cannot be run as it stands, in words the model can act on; None if it can."""
    if message is None:
        return None
    if finish_reason(message) == "length":
        return cut_off(message, max_tokens)
    content = message.content
    if content is None:
        return "your reply had no text (null content): answer with a thought and one code block"
    if isinstance(content, str):
        if not content.strip():
            return "your reply was empty: answer with a thought and one code block"
        opening, closing = tags
        if opening not in content and content.count("```") % 2:
            return (f"your reply opened a ``` code block and never closed it, so nothing ran: put the code "
                    f"between {opening} and {closing}")
        # Bare code too: smolagents adds the closing tag to a reply without one, and then cannot parse it.
        if opening not in content and "```" not in content:
            return (f"your reply had no code block, so nothing ran: put Python code that calls sql(...) between "
                    f"{opening} and {closing} (not JSON, not prose)")
    return None


def code_problem(code: str) -> str | None:
    """Why a parsed code block is not a step (real models answered with `<code># python code</code>`)."""
    try:
        statements = ast.parse(code).body
    except SyntaxError:
        return None  # the executor names the syntax error
    if not statements:
        return ("your code block held no code (only comments or blank lines), so nothing ran: "
                "write Python that calls sql(...)")
    return None


def shortened(text: str, limit: int | None, what: str) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters of {what}]"


def whole_lines(text: str, limit: int, what: str, comment: str = "") -> str:
    """Text cut to at most `limit` characters at a line's end, never inside a line (a model copies a cut
    line back, and every later step fails at the cut); the note says what is left out."""
    if len(text) <= limit:
        return text
    lines, kept, size = text.splitlines(), [], 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + f"\n{comment}[... {len(lines) - len(kept)} more lines of {what} not repeated]"


def what_it_wrote(step: ActionStep, before: sandbox.Standing | None, after: sandbox.Standing | None) -> str:
    """One step's code as later prompts remember it: by what it did to the database, never by its text
    (models copy remembered code back)."""
    wrote = sorted(after.judged - before.judged) if before is not None and after is not None else None
    if step.error is None:
        if wrote is None:
            return "[this code ran; it is not repeated: the database holds what it wrote]"
        done = f"{len(wrote)} judgments (stories {sandbox.id_ranges(wrote)[1:-1]})" if wrote else "no judgment"
        return f"[this code ran and wrote {done}; it is not repeated]"
    if wrote:
        return (f"[this code failed with the error below after writing {len(wrote)} judgments "
                f"(stories {sandbox.id_ranges(wrote)[1:-1]}), which are in the database]")
    if wrote is None:
        return "[this code failed with the error below; the database holds only what ran before the error]"
    return "[this code failed with the error below: no judgment from it is in the database]"


def remembered_reply(step: ActionStep, tags: tuple[str, str], before: sandbox.Standing | None,
                     after: sandbox.Standing | None, code_room: int = 0) -> str:
    """A reply as later prompts repeat it: its thought in whole lines, then what its code did. Failed code
    is repeated too, in whole lines, when `code_room` (characters) is given: the latest step's, to be
    fixed. Succeeded code never is."""
    opening, closing = tags
    text = str(step.model_output).strip()
    head, found, _ = text.partition(opening)
    if not found and not step.code_action:
        return whole_lines(text, THOUGHT_KEPT, "this reply")
    thought = whole_lines(head.strip(), THOUGHT_KEPT, "this thought") if found else ""
    said = what_it_wrote(step, before, after)
    code = step.code_action.strip("\n") if step.error is not None and step.code_action else ""
    if code and len(code.splitlines()[0]) < code_room:
        code = whole_lines(code, code_room, "this code", comment="# ")
        return f"{thought}\n{said}\n{opening}\n{code}\n{closing}".strip()
    return f"{thought}\n{said}".strip()


class JudgeAgent(CodeAgent):
    """smolagents' CodeAgent as the judge needs it (see the module docstring)."""

    def __init__(self, *, facts: dict, prompt_tokens: int | None = None, **kwargs):
        self.prompt_tokens = prompt_tokens  # the batch's prompt budget (reading.batch_tokens), estimated
        self.facts = facts  # the run's facts the system prompt states: run_id, the candidate id range
        self.standings: dict[int, sandbox.Standing] = {}  # step number -> the batch after it (0: before any)
        super().__init__(prompt_templates=prompt.templates(), **kwargs)

    def initialize_system_prompt(self) -> str:
        return populate_template(self.prompt_templates["system_prompt"], variables={
            **self.facts, "max_steps": self.max_steps, "output_chars": f"{OUTPUT_KEPT:,}",
            "code_block_opening_tag": self.code_block_tags[0], "code_block_closing_tag": self.code_block_tags[1]})

    def write_memory_to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """System prompt, task, then each step as its remembered reply (remembered_reply) and one message
        with what it printed and its error: no 'Calling tools' copy of the code, earlier outputs cut shorter.
        The latest step's failed code is repeated within what the batch's prompt budget leaves."""
        messages, latest = self.remembered(summary_mode)
        actions = [step for step in self.memory.steps if isinstance(step, ActionStep)]
        if latest is None or actions[-1].error is None or not actions[-1].code_action:
            return messages
        used = sum(prompt.tokens(str(part.get("text", ""))) for m in messages for part in m.content
                   if isinstance(part, dict)) if self.prompt_tokens else 0
        room = min(FAILED_CODE_KEPT, (self.prompt_tokens - used) * prompt.CHARS_PER_TOKEN) \
            if self.prompt_tokens else FAILED_CODE_KEPT
        if room > 0:  # the latest reply again, with its failed code
            before = self.standings.get(actions[-2].step_number if len(actions) > 1 else 0)
            text = remembered_reply(actions[-1], self.code_block_tags, before,
                                    self.standings.get(actions[-1].step_number), room)
            messages[latest] = ChatMessage(role=MessageRole.ASSISTANT, content=[{"type": "text", "text": text}])
        return messages

    def remembered(self, summary_mode: bool) -> tuple[list[ChatMessage], int | None]:
        """The conversation with no code repeated, and where in it the latest step's reply is (None: none)."""
        messages = self.memory.system_prompt.to_messages(summary_mode=summary_mode)
        actions = [step for step in self.memory.steps if isinstance(step, ActionStep)]
        before, latest_reply = self.standings.get(0), None
        for step in self.memory.steps:
            if not isinstance(step, ActionStep):
                messages.extend(step.to_messages(summary_mode=summary_mode))
                continue
            latest = step is actions[-1]
            after = self.standings.get(step.step_number)
            if step.model_output:
                text = remembered_reply(step, self.code_block_tags, before, after)
                latest_reply = len(messages) if latest else latest_reply
                messages.append(ChatMessage(role=MessageRole.ASSISTANT, content=[{"type": "text", "text": text}]))
            before = after
            keep = OUTPUT_KEPT if latest else EARLIER_OUTPUT_KEPT
            parts = []
            if step.observations:
                parts.append("Observation:\n" + shortened(step.observations, keep, "output"))
            if step.error is not None:
                parts.append("Error:\n" + shortened(str(step.error), keep, "the error") + "\nFix it and go on."
                             + (IMPORT_HINT if "Import of " in str(step.error) else ""))
            if parts:
                text = "\n".join(parts)
                messages.append(ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": text}]))
        return messages, latest_reply

    def _step_stream(self, memory_step: ActionStep):
        """smolagents' step, but a reply that cannot run as it stands is named to the model, not run."""
        inner = super()._step_stream(memory_step)
        max_tokens = getattr(self.model, "kwargs", {}).get("max_tokens")
        try:
            for item in inner:
                if isinstance(item, ToolCall):
                    problem = reply_problem(memory_step.model_output_message, self.code_block_tags, max_tokens) \
                        or code_problem(str(item.arguments))
                    if problem:
                        raise AgentParsingError(problem, self.logger)
                yield item
        except AgentParsingError as exc:
            problem = reply_problem(memory_step.model_output_message, self.code_block_tags, max_tokens)
            if problem and str(exc) != problem:
                raise AgentParsingError(problem, self.logger) from None
            raise
        finally:
            inner.close()

    def _handle_max_steps_reached(self, task: str):
        """Out of steps: no extra 'give your final answer' call (smolagents makes one, uncounted). The host
        looks at the sandbox instead."""
        now = time.time()
        step = ActionStep(step_number=self.step_number, timing=Timing(start_time=now, end_time=now),
                          error=AgentMaxStepsError(f"no final_answer within {self.max_steps} steps", self.logger),
                          token_usage=TokenUsage(0, 0))
        self._finalize_step(step)
        self.memory.steps.append(step)
        return None


@dataclass
class SiteResult:
    """How one site's agent did (filled by agent.judge_site); the sync's input and run_sites' row."""

    source: str
    status: str = "failed"  # 'ok' or 'failed' as the agent finished
    site: Site | None = None
    steps: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    judge_s: float = 0.0
    fetch_s: float = 0.0
    cost_usd: float | None = 0.0  # None when the model's price is unknown
    error: str | None = None
    note: str | None = None  # for a site that landed: something the reader should know
    log: list[str] = field(default_factory=list)
    problems: list[str] | None = None  # sandbox.validate's verdict, taken once when the agent stopped...
    fingerprint: str | None = None  # ...on the sandbox file with this SHA-256

    @property
    def box(self) -> sandbox.Sandbox | None:
        """The site's sandbox, as the agent left it."""
        return self.site.box if self.site is not None else None


# --- where the agent's code runs ------------------------------------------------------


def choose_executor(executor: str, model_id: str | None, notice: Callable[[str], None]) -> str:
    """The executor a run really uses, said out loud when it is not the one asked for.

    The jail is the boundary for model-written code, so an LLM model never falls back
    to in-process execution: if the jail cannot start, this raises `JailError` with
    the reason and the fix. The built-in models write code we wrote, so they may fall
    back to `local` with a notice (`make run` works on a machine without bubblewrap).
    """
    builtin = (model_id or RulesModel.name) in BUILTIN_MODELS
    if executor == "jail":
        reason = jail.unavailable()
        if reason is None:
            return "jail"
        if not builtin:
            raise jail.JailError(f"cannot run the model's code in a jail: {reason}")
        notice(f"no jail on this machine ({reason}); the built-in model's code runs in-process (local)")
        return "local"
    kind = plugins.kinds().get(executor)
    if kind is None:
        raise ValueError(f"no executor {executor!r} (known: {', '.join(plugins.kinds())})")
    if not kind.isolates and not builtin:
        notice(f"executor '{executor}' runs model-written code inside the refresh process: "
               "use it only for code you trust (the default 'jail' isolates it)")
    return executor


def ship_in(executor, box: sandbox.Sandbox) -> None:
    """Put the sandbox DB where the executor's code runs (the jail's /sandbox, a kernel's working folder)."""
    if isinstance(executor, executors.HostExecutor):
        executor.load(box.path.read_bytes())
    else:
        executors.remote_load(executor, box.path.read_bytes())


def ship_out(executor, box: sandbox.Sandbox) -> None:
    """Read the sandbox DB back into the host's copy (untrusted bytes: validated before any use)."""
    box.path.write_bytes(executor.dump() if isinstance(executor, executors.HostExecutor)
                         else executors.remote_dump(executor))


# --- one site ---------------------------------------------------------------------------


def without_candidates(site: Site, result: SiteResult) -> SiteResult:
    """A site with nothing to put to the model: every story judged before (it lands as it is), or a quiet
    listing (a feed with nothing today: nothing lost); a listing whose every story was refused fails."""
    box = site.box
    if site.reused or not box.rejected:
        result.status = "ok"
        result.note = (f"all {len(site.reused)} stories judged before: no model call" if site.reused
                       else "the listing has no stories today")
        result.problems, result.fingerprint = sandbox.validate(box.path), sandbox.fingerprint(box.path)
    else:
        result.error = "no candidates to judge"
    return result


def judge_site(
    site: Site,
    model: Model,
    *,
    vocabulary: dict[str, str],
    judge: Judge | None = None,
    python_executor=None,
    step_reporter: Callable[[str, int, str], None] | None = None,
    **changes,
) -> SiteResult:
    """Judge one site's candidates, a batch of cards at a time, each batch its own CodeAgent conversation over
    the same sandbox and executor; never raises, the result says what happened.

    `judge` holds the settings (see settings.Judge); `changes` override some of them (`max_steps=2`). A
    batch that fails costs its own stories: the others land, and the site's error names the failed batches.
    A site whose stories were all judged before (site.reused) needs no agent and lands as it is.
    """
    judge, box = (judge or Judge()).but(**changes), site.box
    result = SiteResult(source=box.source, site=site)
    started = time.monotonic()
    if not box.candidates:
        return without_candidates(site, result)
    site_deadline = started + judge.site_timeout
    if isinstance(model, BudgetedModel):
        model.deadline = site_deadline
    own = None
    try:
        if python_executor is None:
            python_executor = own = plugins.kinds()[judge.executor].make(judge.executor_options,
                                                                           judge.step_timeout, site_deadline)
        parts = batches(site, judge, vocabulary)
        for number, ids in enumerate(parts, 1):
            done = judge_batch(site, ids, model, vocabulary=vocabulary, judge=judge, python_executor=python_executor,
                               site_deadline=site_deadline, step_reporter=step_reporter)
            add_batch(result, done, ids, f"batch {number} of {len(parts)}" if len(parts) > 1 else "")
    except Exception as exc:  # the executor could not start: the site fails, the other one goes on
        result.error = describe(exc)
    finally:
        if own is not None:
            try:
                own.cleanup()
            except Exception as exc:  # pragma: no cover - cleanup failures are reported, not raised
                result.log.append(f"executor cleanup failed: {exc}")
    result.cost_usd = model_cost(model, result.input_tokens, result.output_tokens)
    if result.status == "ok":
        result.fingerprint = sandbox.fingerprint(box.path)
        result.problems = sandbox.validate(box.path)  # once, on what will be merged
    result.judge_s = time.monotonic() - started
    return result


BATCH_FILL = 0.75  # of reading.batch_tokens the cards' first prompt may fill: a recovering step adds up to 1.3x


def batches(site: Site, judge: Judge, vocabulary: dict[str, str]) -> list[list[int]]:
    """The site's candidates in batches whose first prompt (system prompt, task and cards) fills at most
    BATCH_FILL of the batch budget, the rest left for the batch's later steps (its reply, what it printed);
    each card goes in exactly one batch, and a card too big for any batch alone makes a batch of one."""
    fixed = prompt.tokens(prompt.template_text()) + prompt.tokens(build_task(site, judge.profile, vocabulary, []))
    parts, size, room = [[]], fixed, judge.reading.batch_tokens * BATCH_FILL
    for story_id in sorted(site.box.candidates):
        cost = prompt.tokens(cards_for(site, [story_id], judge.reading)[0]) + 1
        if parts[-1] and size + cost > room:
            parts.append([])
            size = fixed
        parts[-1].append(story_id)
        size += cost
    return parts


def add_batch(result: SiteResult, done: SiteResult, ids: list[int], name: str) -> None:
    """One batch's outcome into the site's: its counts added, its failure named (it costs its own stories)."""
    for counter in ("steps", "llm_calls", "input_tokens", "output_tokens"):
        setattr(result, counter, getattr(result, counter) + getattr(done, counter))
    result.log += done.log
    if done.status == "ok":
        result.status = "ok"
        note = f"{name}: {done.note}" if name and done.note else done.note
        result.note = "; ".join(n for n in (result.note, note) if n) or None
        return
    failed = f"{name} (stories {sandbox.id_ranges(ids)[1:-1]}): {done.error}" if name else done.error
    result.error = "; ".join(e for e in (result.error, failed) if e)


def runs_remotely(judge: Judge, python_executor) -> bool:
    """Whether the agent's code runs outside this process (its sandbox DB is shipped in and out)."""
    return judge.executor != "local" or python_executor is not None


def judge_batch(site: Site, ids: list[int], model: Model, *, vocabulary: dict[str, str], judge: Judge,
                python_executor, site_deadline: float, step_reporter=None) -> SiteResult:
    """One CodeAgent over one batch of cards: done when every story of the batch is judged and tagged."""
    box = site.box
    result = SiteResult(source=box.source, site=site)
    remote = runs_remotely(judge, python_executor)
    agent = None
    unanswered = (getattr(model, "unanswered", 0), getattr(model, "unanswered_tokens", 0))
    try:
        if site.votes_near is not None:  # before the task is built: it says how many votes the sandbox holds
            sandbox.add_votes(box, site.votes_near([box.candidates[i] for i in ids]))
        agent = batch_agent(box, ids, model, judge, python_executor, site_deadline, step_reporter)
        agent.state.update(code_variables(box, ids))  # sent to the executor by run(), not pasted into the task
        if remote:
            ship_in(agent.python_executor, box)
        try:
            run = agent.run(build_task(site, judge.profile, vocabulary, ids, judge.reading))
        except AgentError as exc:
            reason = agent.stop_reason()
            if reason is None:
                raise
            raise TimeoutError(reason) from exc
        if remote:
            ship_out(agent.python_executor, box)
        if run.state == "success":
            result.status = "ok"
        else:
            stands = agent.standings[max(agent.standings)]
            result.error = (f"the agent did not call final_answer within {judge.max_steps} steps "
                            f"({len(stands.judged)} of {len(stands.batch)} stories judged)")
    except Exception as exc:  # a failed batch must not stop the others
        if isinstance(exc, TimeoutError):
            result.error = one_line(f"stopped: {exc}")
        elif isinstance(exc, AgentError) and isinstance(exc.__cause__, ModelCallFailed):
            result.error = one_line(str(exc.__cause__))
        else:
            result.error = describe(exc)
    finally:
        if agent is not None:
            steps = count_steps(agent, result)
            result.llm_calls += getattr(model, "unanswered", 0) - unanswered[0]
            result.input_tokens += getattr(model, "unanswered_tokens", 0) - unanswered[1]
            result.log = [one_line(f"{s.observations or ''} {s.error or ''}", 2000) for s in steps]
            last = last_error(steps)
            if result.error and last and last not in result.error:
                result.error += f" (last error: {last})"
    if result.status != "ok":
        settle(result, box, ids)
    return result


@dataclass
class BatchWatch:
    """The host's side of one batch's agent: after each step the host's copy of a remote sandbox is made
    current, the model told where the batch stands, and the agent stopped when its executor died or the
    site ran out of time; the final answer is refused until every story of the batch is judged, tagged
    and the sandbox sound."""

    box: sandbox.Sandbox
    ids: list[int]
    remote: bool
    site_deadline: float
    site_timeout: float
    step_reporter: Callable[[str, int, str], None] | None = None
    agent: JudgeAgent | None = None

    def stop_reason(self) -> str | None:
        dead = getattr(self.agent.python_executor, "dead", None)
        if dead:
            return dead
        if time.monotonic() > self.site_deadline:
            return f"the site ran past its {self.site_timeout:g} s time limit"
        return None

    def after_step(self, step, agent=None) -> None:
        if self.stop_reason():
            self.agent.interrupt()
        elif self.remote and isinstance(step, ActionStep) and step.code_action:
            with contextlib.suppress(Exception):  # the host keeps its previous copy
                ship_out(self.agent.python_executor, self.box)
        if isinstance(step, ActionStep) and step.is_final_answer is not True:
            with contextlib.suppress(Exception):  # an unreadable sandbox says so at the final answer
                stands = sandbox.standing(self.box.path, self.box.run_id, self.ids)
                self.agent.standings[step.step_number] = stands
                step.observations = f"{step.observations or ''}\n{stands}".strip()
        if self.step_reporter and isinstance(step, ActionStep):
            self.step_reporter(self.box.source, step.step_number,
                               one_line(f"{step.observations or ''} {step.error or ''}", 2000))

    def every_candidate_judged(self, answer, memory, agent=None) -> bool:
        if self.remote:
            ship_out(self.agent.python_executor, self.box)
        box = self.box
        problems = sandbox.validate(box.path) or sandbox.judged_summary(box.path, box.run_id, box.candidates, self.ids)
        if problems:
            raise ValueError("not done yet: " + "; ".join(problems))
        return True


def batch_agent(box: sandbox.Sandbox, ids: list[int], model: Model, judge: Judge, python_executor,
                site_deadline: float, step_reporter=None) -> JudgeAgent:
    """The JudgeAgent of one batch, watched by the host (BatchWatch)."""
    remote = runs_remotely(judge, python_executor)
    tool = sqltool.SqlTool() if remote else sqltool.SqlTool(str(box.path))
    watch = BatchWatch(box, ids, remote, site_deadline, judge.site_timeout, step_reporter)
    local = judge.executor == "local"
    agent = JudgeAgent(
        facts={"run_id": box.run_id, "first_id": ids[0], "last_id": ids[-1]}, tools=[tool], model=model,
        prompt_tokens=judge.reading.batch_tokens,
        executor=python_executor, executor_type=judge.executor if python_executor is None else "local",
        executor_kwargs={**executors.LOCAL_EXECUTOR_DEFAULTS, **judge.executor_options} if local
        else judge.executor_options,
        max_steps=judge.max_steps, final_answer_checks=[watch.every_candidate_judged], return_full_result=True,
        verbosity_level=LogLevel.OFF,  # our Reporter shows steps (--verbose) and failures
        step_callbacks=[watch.after_step])
    watch.agent = agent
    agent.stop_reason = watch.stop_reason
    agent.standings[0] = sandbox.Standing(frozenset(ids), frozenset())  # a batch's stories start unjudged
    return agent


def settle(result: SiteResult, box: sandbox.Sandbox, ids: list[int]) -> None:
    """The agent stopped without finishing (out of steps, a refused final answer, a dead jail, a deadline):
    if the host's copy of its sandbox holds the batch complete and valid anyway, it lands, with a note."""
    try:
        problems = sandbox.validate(box.path) or sandbox.judged_summary(box.path, box.run_id, box.candidates, ids)
    except Exception:  # an unreadable sandbox stays a failed batch
        return
    if problems:
        return
    result.status, result.note, result.error = "ok", f"landed complete although {result.error}", None


def last_error(steps: list[ActionStep]) -> str | None:
    """The model's last real error (not smolagents' closing 'max steps' marker), as one line."""
    for step in reversed(steps):
        if step.error is not None and not isinstance(step.error, AgentMaxStepsError):
            return one_line(str(step.error), 300)
    return None


def count_steps(agent: CodeAgent, result: SiteResult) -> list[ActionStep]:
    """The agent's action steps, counted into the result (steps taken, model calls made)."""
    steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    result.steps = len([s for s in steps if not isinstance(s.error, AgentMaxStepsError)])
    result.llm_calls = sum(1 for s in steps if s.model_output_message is not None)
    result.input_tokens = sum(s.token_usage.input_tokens for s in steps if s.token_usage)
    result.output_tokens = sum(s.token_usage.output_tokens for s in steps if s.token_usage)
    return steps


def judge_sites(sites: list[Site], model_factory: Callable[[], Model],
                before: Callable[[Site], None] | None = None, parallel: int | None = None,
                **kwargs) -> list[SiteResult]:
    """One agent per site, at most `parallel` at once (default: all): the refresh takes as long as the
    slowest site, or the pool's share. `before` runs first in the site's own thread (reading its
    articles), so no site waits on another's."""
    if not sites:
        return []
    try:
        with ThreadPoolExecutor(max_workers=min(parallel or len(sites), len(sites)),
                                thread_name_prefix="judge") as pool:
            return wait_for(pool, [(site, model_factory) for site in sites], before, kwargs)
    finally:
        jail.STOPPING.clear()  # every site's thread has ended: the next judging may start jails again


def wait_for(pool: ThreadPoolExecutor, sites: list, before, kwargs: dict) -> list[SiteResult]:
    """Submit each site and wait for them all. On Ctrl-C (or any escape) while submitting or waiting: no
    site still queued starts, no jail starts again (jail.STOPPING, which also ends model calls), and
    every running jail is killed, so the sites' threads end at once instead of at their deadlines."""
    futures = []
    try:
        futures += [pool.submit(read_then_judge, site, factory(), before, kwargs) for site, factory in sites]
        return [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        jail.kill_all()
        raise


def read_then_judge(site: Site, model: Model, before: Callable[[Site], None] | None,
                    settings: dict) -> SiteResult:
    """One site in its own thread: `before` (reading its articles), then judge_site with `settings`."""
    if before is not None:
        before(site)
    return judge_site(site, model, **settings)
