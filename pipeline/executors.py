"""Where the agent's code runs, behind one interface.

`HostExecutor` is what the host needs of an executor beyond smolagents' executor protocol (send_tools,
send_variables, a call per step): put the sandbox DB where the code runs (`load`), read it back (`dump`),
say why it is gone (`dead`), and `cleanup`. The jail and the Docker sandbox are HostExecutors; an executor
smolagents builds itself (e2b, modal, blaxel) gets the sandbox as base64 through its own kernel instead.

Which executors there are is plugins.py's registry. Nothing here imports smolagents or pluggy: the jail's
worker imports this module too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


class HostExecutor:
    """An executor the host can hand the sandbox DB to and take it back from (see the module docstring)."""

    dead: str | None = None  # why the executor is gone, once it is: the agent is stopped with that reason

    def load(self, data: bytes) -> None:
        raise NotImplementedError

    def dump(self) -> bytes:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Stop whatever runs the code (a process, a container); called once the site is done."""


@dataclass(frozen=True)
class Kind:
    """One place the agent's code can run, as the registry knows it.

    `make(executor_options, step_timeout, site_deadline)` builds a HostExecutor, or returns None for an
    executor smolagents builds itself from the name (`executor_type`). `isolates`: whether model-written
    code may run there (False for `local`, inside the refresh process: only the built-in models' code)."""

    name: str
    make: Callable[[dict, float, float], HostExecutor | None]
    isolates: bool = True


def step_deadline(step_timeout: float, site_deadline: float | None) -> tuple[float, str]:
    """When a step must have answered (a `time.monotonic()` instant), and the reason to give if it has not:
    the step's own bound, or the site's deadline if that comes first. The jail and docker both use it."""
    deadline, why = time.monotonic() + step_timeout, f"the step ran past its {step_timeout:g} s limit"
    if site_deadline is not None and site_deadline < deadline:
        deadline, why = site_deadline, "the site ran past its time limit"
    return deadline, why


LOCAL_EXECUTOR_DEFAULTS = {"timeout_seconds": 30, "max_print_outputs_length": 20_000}
REMOTE_DB = "sandbox.db"  # the SqlTool's default path, inside a remote kernel's working directory
SHIP_OUT_MARK = "NEWSREADER-SANDBOX:"


def remote_load(executor, data: bytes) -> None:
    """The sandbox DB into a remote kernel's working folder, as base64 through the kernel itself."""
    import base64

    encoded = base64.b64encode(data).decode("ascii")
    executor.run_code_raise_errors(
        f"import base64\nwith open({REMOTE_DB!r}, 'wb') as f:\n    f.write(base64.b64decode({encoded!r}))\n"
        f"print('shipped', {len(encoded)})")


def remote_dump(executor) -> bytes:
    """The sandbox DB back from a remote kernel (untrusted bytes: validated before any use)."""
    import base64

    out = executor.run_code_raise_errors(
        f"import base64\nwith open({REMOTE_DB!r}, 'rb') as f:\n"
        f"    print({SHIP_OUT_MARK!r} + base64.b64encode(f.read()).decode('ascii'))")
    text = out.logs or ""
    if SHIP_OUT_MARK not in text:
        raise RuntimeError("the remote sandbox did not send its database back")
    return base64.b64decode(text.split(SHIP_OUT_MARK, 1)[1].split()[0])
