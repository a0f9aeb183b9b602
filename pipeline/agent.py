"""The judge: one smolagents CodeAgent per site, in parallel, each writing into its own sandbox.

The agent sees the reader's profile, the tag vocabulary and a compact candidate
table (never HTML), and has one tool, `sql`, into its sandbox DB. It judges by
writing INSERTs; the DB's constraints say what is well-formed. A final-answer
check run on the host refuses to finish until every candidate is judged and
tagged and the sandbox is still sound, so the model keeps working instead of
declaring victory.

Executors: `local` (smolagents' LocalPythonExecutor, in process) or a remote one
(`docker`, `e2b`, `modal`, `blaxel`). Remote kernels run the tool's source on
their side, so the sandbox DB is shipped in as base64 before the run and read
back afterwards; the host's validation and sync are the same for every executor.
"""

from __future__ import annotations

import ast
import base64
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from smolagents import CodeAgent, LiteLLMModel, Model
from smolagents.memory import ActionStep
from smolagents.monitoring import LogLevel
from smolagents.utils import AgentError

from . import jail, prompt, sandbox
from .rules import KeywordBaselineModel, RulesModel
from .settings import Judge
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

BUILTIN_MODELS = (RulesModel.name, KeywordBaselineModel.name)  # deterministic code we wrote: may run in-process
REMOTE_DB = "sandbox.db"  # the SqlTool's default path, inside a remote kernel's working directory
# Bounds on one step in smolagents' LocalPythonExecutor (in process, or inside the jail): its own
# time limit (only checked when the step's thread finishes) and printed characters.
LOCAL_EXECUTOR_DEFAULTS = {"timeout_seconds": 30, "max_print_outputs_length": 20_000}


# --- the task -------------------------------------------------------------------------


def build_task(box: sandbox.Sandbox, profile: str, vocabulary: dict[str, str]) -> str:
    """The prompt for one site's sandbox (see prompt.py)."""
    return prompt.build_task(box.source, box.run_id, profile, vocabulary, box.candidates)


# --- models ---------------------------------------------------------------------------


def make_model(model_id: str | None, **options) -> Model:
    """`rules` (the default, offline), `keyword-baseline`, or any LiteLLM model id (keys from the environment)."""
    if not model_id or model_id == RulesModel.name:
        return RulesModel()
    if model_id == KeywordBaselineModel.name:
        return KeywordBaselineModel()
    options = {"timeout": 120, "max_retries": 2, **options}
    retry_wait = options.pop("retry_wait", 5.0)
    model = LiteLLMModel(model_id=model_id, **options)
    # smolagents' own rate-limit retry starts at a 60 s wait; keep a refresh from hanging for minutes.
    model.retryer.wait_seconds = retry_wait
    model.retryer.max_attempts = min(model.retryer.max_attempts, 3)
    return model


@dataclass
class SiteResult:
    """How one site's agent did (filled by agent.judge_site); the sync's input and run_sites' row."""

    source: str
    status: str = "failed"  # 'ok' or 'failed' as the agent finished
    box: sandbox.Sandbox | None = None
    steps: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    judge_s: float = 0.0
    fetch_s: float = 0.0
    error: str | None = None
    log: list[str] = field(default_factory=list)
    problems: list[str] | None = None  # sandbox.validate's verdict, taken once when the agent stopped...
    fingerprint: str | None = None  # ...on the sandbox file with this SHA-256


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
    if executor == "local" and not builtin:
        notice("executor 'local' runs model-written code inside the refresh process: "
               "use it only for code you trust (the default 'jail' isolates it)")
    return executor


def ship_in(executor, box: sandbox.Sandbox) -> None:
    """Put the sandbox DB where the executor's code runs (the jail's /sandbox, a kernel's working folder)."""
    if isinstance(executor, jail.JailExecutor):
        executor.load(box.path.read_bytes())
        return
    data = base64.b64encode(box.path.read_bytes()).decode("ascii")
    executor.run_code_raise_errors(
        f"import base64\nwith open({REMOTE_DB!r}, 'wb') as f:\n    f.write(base64.b64decode({data!r}))\n"
        f"print('shipped', {len(data)})"
    )


SHIP_OUT_MARK = "NEWSREADER-SANDBOX:"


def ship_out(executor, box: sandbox.Sandbox) -> None:
    """Read the sandbox DB back into the host's copy (untrusted bytes: validated before any use)."""
    if isinstance(executor, jail.JailExecutor):
        box.path.write_bytes(executor.dump())
        return
    out = executor.run_code_raise_errors(
        f"import base64\nwith open({REMOTE_DB!r}, 'rb') as f:\n"
        f"    print({SHIP_OUT_MARK!r} + base64.b64encode(f.read()).decode('ascii'))"
    )
    text = out.logs or ""
    if SHIP_OUT_MARK not in text:
        raise RuntimeError("the remote sandbox did not send its database back")
    payload = text.split(SHIP_OUT_MARK, 1)[1].split()[0]
    box.path.write_bytes(base64.b64decode(payload))


def make_executor(executor: str, executor_kwargs: dict, step_timeout: float, site_deadline: float):
    """Our own executors (jail, docker) with the host's deadlines; None lets smolagents build the rest."""
    if executor == "jail":
        return jail.JailExecutor([], step_timeout=step_timeout, site_deadline=site_deadline,
                                 **{**LOCAL_EXECUTOR_DEFAULTS, **executor_kwargs})
    if executor == "docker":
        from .container import SandboxContainerExecutor

        return SandboxContainerExecutor([], step_timeout=step_timeout, site_deadline=site_deadline,
                                        **executor_kwargs)
    return None


# --- one site ---------------------------------------------------------------------------


def judge_site(
    box: sandbox.Sandbox,
    model: Model,
    *,
    vocabulary: dict[str, str],
    judge: Judge | None = None,
    python_executor=None,
    step_reporter: Callable[[str, int, str], None] | None = None,
    **changes,
) -> SiteResult:
    """Run one site's CodeAgent to completion; never raises, the result says what happened.

    `judge` holds the settings (see settings.Judge); `changes` override some of them
    (`max_steps=2`), for a caller that wants the defaults but one.
    """
    judge = (judge or Judge()).but(**changes)
    executor, executor_kwargs, max_steps = judge.executor, judge.executor_options, judge.max_steps
    step_timeout, site_timeout, profile = judge.step_timeout, judge.site_timeout, judge.profile
    result = SiteResult(source=box.source, box=box)
    started = time.monotonic()
    site_deadline = started + site_timeout
    remote = executor != "local" or python_executor is not None
    tool = sandbox.SqlTool() if remote else sandbox.SqlTool(str(box.path))
    agent = own_executor = None
    try:
        if not box.candidates:
            raise RuntimeError("no candidates to judge")

        def stop_reason() -> str | None:
            """Why the agent must stop now: its jail/container died or the site ran out of time."""
            dead = getattr(agent.python_executor, "dead", None)
            if dead:
                return dead
            if time.monotonic() > site_deadline:
                return f"the site ran past its {site_timeout:g} s time limit"
            return None

        def after_step(step, agent=None):
            """Each agent step: stop at once when the executor is gone; report for --verbose and the log."""
            if stop_reason():
                agent.interrupt()
            if step_reporter and isinstance(step, ActionStep):
                step_reporter(box.source, step.step_number,
                              one_line(f"{step.observations or ''} {step.error or ''}", 2000))

        def every_candidate_judged(answer, memory, agent=None):
            """Host-side final-answer check: done means every candidate judged, tagged, sandbox sound."""
            if remote:
                ship_out(agent.python_executor, box)
            problems = sandbox.validate(box.path) or sandbox.judged_summary(box.path, box.run_id, box.candidates)
            if problems:
                raise ValueError("not done yet: " + "; ".join(problems))
            return True

        if python_executor is None:
            python_executor = own_executor = make_executor(executor, executor_kwargs, step_timeout,
                                                           site_deadline)
        agent = CodeAgent(
            tools=[tool],
            model=model,
            executor=python_executor,
            executor_type=executor if python_executor is None else "local",
            executor_kwargs=({**LOCAL_EXECUTOR_DEFAULTS, **executor_kwargs} if executor == "local"
                             else executor_kwargs),
            max_steps=max_steps,
            final_answer_checks=[every_candidate_judged],
            return_full_result=True,
            verbosity_level=LogLevel.OFF,  # our Reporter shows steps (--verbose) and failures
            step_callbacks=[after_step],
        )
        if remote:
            ship_in(agent.python_executor, box)
        try:
            run = agent.run(build_task(box, profile, vocabulary))
        except AgentError:
            reason = stop_reason()
            if reason is None:
                raise
            raise TimeoutError(reason) from None
        if remote:
            ship_out(agent.python_executor, box)
        steps = count_steps(agent, result)
        if run.token_usage is not None:
            result.input_tokens = run.token_usage.input_tokens
            result.output_tokens = run.token_usage.output_tokens
        result.log = [one_line(f"{s.observations or ''} {s.error or ''}", 2000) for s in steps]
        if run.state == "success":
            result.status = "ok"
            result.fingerprint = sandbox.fingerprint(box.path)
            result.problems = sandbox.validate(box.path)  # once, on what will be merged
        else:
            last_error = next((s.error for s in reversed(steps) if s.error is not None), None)
            result.error = f"{run.state}: the agent did not finish in {max_steps} steps" + (
                f" (last error: {one_line(str(last_error))})" if last_error else ""
            )
    except Exception as exc:  # a failed site must not stop the other one
        result.error = describe(exc) if not isinstance(exc, TimeoutError) else one_line(f"stopped: {exc}")
        if agent is not None:
            count_steps(agent, result)
    finally:
        executor_to_clean = agent.python_executor if agent is not None else own_executor
        if executor_to_clean is not None and hasattr(executor_to_clean, "cleanup"):
            try:
                executor_to_clean.cleanup()
            except Exception as exc:  # pragma: no cover - cleanup failures are reported, not raised
                result.log.append(f"executor cleanup failed: {exc}")
        result.judge_s = time.monotonic() - started
    return result


def count_steps(agent: CodeAgent, result: SiteResult) -> list[ActionStep]:
    """The agent's action steps, counted into the result (steps taken, model calls made)."""
    steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    result.steps = len(steps)
    result.llm_calls = sum(1 for s in steps if s.model_output_message is not None)
    return steps


def judge_sites(boxes: list[sandbox.Sandbox], model_factory: Callable[[], Model], **kwargs) -> list[SiteResult]:
    """One agent per site, all at once: the refresh takes as long as the slowest site."""
    if not boxes:
        return []
    with ThreadPoolExecutor(max_workers=len(boxes), thread_name_prefix="judge") as pool:
        futures = [pool.submit(judge_site, box, model_factory(), **kwargs) for box in boxes]
        return [f.result() for f in futures]
