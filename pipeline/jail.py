"""`--executor jail` (the default): the agent's Python runs in its own process under bubblewrap.

smolagents' LocalPythonExecutor is an AST interpreter, not a boundary: code it runs
can walk frames back to the host's objects (see ../shared/notes). So model-written
code never runs in the refresh process. Each site gets one jailed worker process
for the whole run (state persists across steps), started by `bwrap` with:

- its own empty network, PID, IPC, UTS and user namespaces, no capabilities, a new
  session, and death with the refresh (`--die-with-parent`);
- a seccomp filter (`seccomp.py`) refusing ptrace and the other calls that reach into
  another process, so nothing in the jail can tamper with its PID 1;
- an empty environment (no API keys: only PATH, PYTHONPATH, HOME and TMPDIR are set);
- a filesystem of read-only system paths, the interpreter's own files (binary, standard
  library, libpython: never a folder a symlink passes through), the package folders
  (at neutral paths under /opt/newsreader) and one writable tmpfs `/sandbox` of a fixed
  size holding that site's sandbox DB; `/dev` is read-only and there is no `/tmp`: never
  the data folder, the history DB, raw pages, logs or `$HOME`. bwrap takes its arguments
  on a pipe, so no command line in the jail names a host path;
- resource limits set by the worker on itself before it reads any code: address
  space, CPU seconds, file size, processes, open files.

Inside, the worker still runs the code through LocalPythonExecutor with the `sql`
tool (defence in depth). The host talks to it over pipes, one JSON line per
message, and trusts nothing it reads back: every reply is size-capped and
type-checked, and the sandbox DB comes back as bytes that the host validates like
any other sandbox. Deadlines are the host's: a step that has not answered by its
deadline (per step, and the site's overall deadline) gets its jail killed
(SIGKILL to the jail's PID 1, known from bwrap's --info-fd: the kernel then kills
everything in its PID namespace; then to bwrap) and the site fails with that reason.
Ctrl-C kills every running jail (`kill_all`).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

from . import seccomp
from .executors import HostExecutor, step_deadline

JAIL_DIR = "/sandbox"  # the jail's one writable folder (a tmpfs), its working directory
PACKAGE_ROOT = "/opt/newsreader"  # where this package is bound, read-only, inside the jail
DB_NAME = "sandbox.db"  # the sql tool's default path, relative to JAIL_DIR
# Hard limits on the jailed process (the worker sets them on itself before reading code).
LIMITS = {
    "memory_mb": 1024,  # address space: a 4 GB allocation fails with MemoryError
    "cpu_s": 300,  # CPU seconds over the jail's life (SIGXCPU kills it)
    "file_mb": 64,  # largest file it may write: caps the sandbox DB
    "procs": 32,  # processes and threads
    "files": 64,  # open file descriptors
    "disk_mb": 96,  # size of the /sandbox tmpfs
}
STARTUP_S = 30  # the worker's imports and setup: posted messages are answered within this
MAX_REPLY = 128 * 1024 * 1024  # bytes of one reply line (a 64 MB sandbox DB as base64 fits)
MAX_TEXT = 50_000  # characters of output/logs/error taken from one reply
TOOLS = ("sql", "final_answer")  # the only tools a jail builds; they are constructed inside it


RUNNING: weakref.WeakSet = weakref.WeakSet()  # every jail this process started that is not yet killed
STOPPING = threading.Event()  # set by kill_all: no jail starts until the next judging clears it


def kill_all() -> None:
    """Kill every jail still running, and start none after (Ctrl-C: the sites' threads then end at once
    instead of at their deadlines, and a site whose jail was about to start gets none)."""
    STOPPING.set()
    for executor in list(RUNNING):
        executor.kill()


class JailError(Exception):
    """The jail cannot start, or died; the message says why and, where it can, what to do."""


# --- the host side ------------------------------------------------------------------------


PYTHON = f"{PACKAGE_ROOT}/python"  # the interpreter as the jail names it: a symlink, so no host path shows
LIBRARIES = f"{PACKAGE_ROOT}/lib"  # the package folders, bound read-only at LIBRARIES/0, /1, ...


def interpreter_binds() -> dict[str, str]:
    """What the interpreter itself needs, each at its own resolved path: the binary, the standard library
    and, for a shared build, libpython. Never a folder a symlink passes through (a venv reached through
    ~/bin/python3 must not bind ~), and never the base interpreter's site-packages on sys.path (-S)."""
    import sysconfig

    binds = {os.path.realpath(sys.executable), os.path.realpath(os.path.dirname(os.__file__))}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        library = os.path.join(sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or "")
        if os.path.isfile(library):
            binds.add(library)
            binds.add(os.path.realpath(library))
    return {path: path for path in sorted(binds) if not path.startswith("/usr/")}


def add_libraries(count: int) -> None:
    """Inside the jail: the bound package folders on sys.path, after the standard library, .pth files read
    (what a venv's site module does; -S kept the base interpreter's own site-packages out)."""
    import site

    for i in range(count):
        site.addsitedir(f"{LIBRARIES}/{i}")


def package_folders() -> list[str]:
    """The site-packages folders this interpreter imports from, resolved (the jail binds them read-only)."""
    found = []
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry) and os.path.isdir(entry):
            real = os.path.realpath(entry)
            if real not in found:
                found.append(real)
    return found


def bwrap_command(limits: dict) -> list[str]:
    """The bubblewrap arguments: what the jail can see, and nothing else (without bwrap's own path, which
    `start` puts in front; the arguments go to bwrap on a pipe, so the jail's /proc/1/cmdline names none)."""
    package = Path(__file__).resolve().parent
    readonly = {**interpreter_binds(), "/usr": "/usr", str(package): f"{PACKAGE_ROOT}/{package.name}"}
    for i, folder in enumerate(package_folders()):
        readonly[folder] = f"{LIBRARIES}/{i}"
    # The one writable place: the sandbox folder, a tmpfs of a fixed size. /dev is remounted read-only
    # (its /dev/shm was an unbounded tmpfs), there is no /tmp (TMPDIR is the sandbox folder) and / is
    # read-only, so what the jail can write in all is `disk_mb`.
    args = ["--size", str(limits["disk_mb"] * 1024 * 1024), "--tmpfs", JAIL_DIR]
    for source, target in readonly.items():
        args += ["--ro-bind", source, target]
    args += ["--symlink", os.path.realpath(sys.executable), PYTHON]
    for name in ("lib", "lib64", "bin", "sbin"):
        if os.path.islink(f"/{name}"):
            args += ["--symlink", f"usr/{name}", f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            args += ["--ro-bind", f"/{name}", f"/{name}"]
    args += [
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        "--remount-ro", "/",  # bwrap's root is a tmpfs: read-only, or the jail could fill memory through it
        "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "PYTHONPATH", PACKAGE_ROOT,
        "--setenv", "HOME", JAIL_DIR, "--setenv", "TMPDIR", JAIL_DIR,
        "--setenv", "LITELLM_LOCAL_MODEL_COST_MAP", "True",
        "--chdir", JAIL_DIR,
    ]
    return args


def bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise JailError("bubblewrap is not installed (apt-get install bubblewrap), or choose --executor docker")
    return found


def start(limits: dict, command: list[str], **popen) -> tuple[subprocess.Popen, int]:
    """Start `command` (run by PYTHON) in a jail: (bwrap's process, the read end of its --info-fd).

    bwrap reads its arguments and the seccomp program from pipes (`--args`, `--seccomp`), so the jail's
    /proc/1/cmdline names no host path, and writes the host pid of the jail's PID 1 to the info pipe:
    `JailExecutor.kill` ends the whole PID namespace through it."""
    program = bwrap()
    info_read, info_write = os.pipe()
    fds, options = [info_write], ["--info-fd", str(info_write)]
    try:
        if seccomp.supported():
            fds.append(pipe_with(seccomp.program()))
            options += ["--seccomp", str(fds[-1])]
        fds.append(pipe_with(b"".join(a.encode() + b"\0" for a in [*bwrap_command(limits), *options])))
        process = subprocess.Popen([program, "--args", str(fds[-1]), "--", PYTHON, "-S", "-s", *command],
                                   pass_fds=fds, start_new_session=True, close_fds=True, **popen)
    except OSError as exc:
        os.close(info_read)
        raise JailError(f"bubblewrap could not start: {exc}") from None
    finally:
        for fd in fds:
            os.close(fd)
    return process, info_read


def pipe_with(data: bytes) -> int:
    """A readable fd holding `data`, then EOF: how bwrap takes its arguments and its seccomp program."""
    if len(data) >= 60_000:  # a pipe holds 64 KB; more would block this write forever
        raise OSError(f"{len(data)} bytes are too many to hand to bwrap")
    read, write = os.pipe()
    try:
        os.write(write, data)
    finally:
        os.close(write)
    return read


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when a jail can start on this machine, else the reason and the fix (checked once)."""
    # The worker's imports must resolve in there too (a venv or packages the binds missed).
    check = (f"import sys; from pipeline.jail import add_libraries; add_libraries({len(package_folders())}); "
             "import importlib.util as u; sys.exit(0 if u.find_spec('smolagents') else 'packages not visible')")
    try:
        process, info = start(LIMITS, ["-c", check], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except JailError as exc:
        return str(exc)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        os.close(info)  # only now: bwrap stalls if its info pipe has no reader
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if done.returncode != 0:
        reason = " ".join((done.stderr or done.stdout).split())[:300] or f"exit status {done.returncode}"
        return (f"bubblewrap cannot create a jail here ({reason}): user namespaces may be disabled "
                "(sysctl kernel.unprivileged_userns_clone=1, or AppArmor's restrict_unprivileged_userns=0); "
                "or choose --executor docker")
    return None


class JailExecutor(HostExecutor):
    """A smolagents PythonExecutor whose code runs in a bubblewrap jail (see the module docstring).

    `timeout_seconds` and `max_print_outputs_length` go to the LocalPythonExecutor
    inside; `step_timeout` is the host's wall-clock bound on one step, `site_deadline`
    a `time.monotonic()` instant after which no step may run.
    """

    def __init__(self, additional_imports: list[str] | None = None, logger=None, *,
                 step_timeout: float, site_deadline: float | None = None,
                 timeout_seconds: float | None = 30, max_print_outputs_length: int = 20_000, **limits):
        unknown = set(limits) - set(LIMITS)
        if unknown:
            raise JailError(f"unknown jail option(s): {', '.join(sorted(unknown))}")
        self.limits = {**LIMITS, **limits}
        self.step_timeout = float(step_timeout)
        self.site_deadline = site_deadline
        self.dead: str | None = None  # why the jail is gone, once it is
        self.state: dict = {"_print_outputs": ""}  # smolagents reads the last step's logs from here on errors
        self.stderr_tail = b""
        settings = {"limits": self.limits, "timeout_seconds": timeout_seconds,
                    "max_print_outputs_length": int(max_print_outputs_length),
                    "imports": list(additional_imports or []), "libraries": len(package_folders())}
        if STOPPING.is_set():
            raise JailError("the refresh is stopping: no jail starts now")
        self.started = time.monotonic()
        self.process, info = start(self.limits, ["-m", "pipeline.jail", json.dumps(settings)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.buffer = b""
        self.pending = 0  # posted messages whose replies are not read yet
        self.init: int | None = None  # a pidfd of the jail's PID 1, once bwrap has said which process it is
        self.init_known = threading.Event()
        self.kill_lock = threading.RLock()  # re-entered by a Ctrl-C handler that interrupts a kill
        RUNNING.add(self)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        threading.Thread(target=self._read_info, args=(info,), daemon=True).start()

    # -- the pipe protocol ---------------------------------------------------------------

    def _drain_stderr(self):
        """Keep the last few KB the jail wrote to stderr, for the reason when it dies."""
        for chunk in iter(lambda: self.process.stderr.read1(4096), b""):
            self.stderr_tail = (self.stderr_tail + chunk)[-4096:]

    def post(self, message: dict) -> None:
        """Send a message whose reply ("ok") is checked later, before the next request's.

        Tools, variables and the sandbox DB are posted while the worker is still
        importing, so the jail starts during the model's first call instead of before it.
        """
        self._write(message)
        self.pending += 1

    def request(self, message: dict, timeout: float | None = None) -> dict:
        """Send one message, wait for its reply until the deadline; kill the jail on any fault."""
        deadline, why = step_deadline(self.step_timeout if timeout is None else timeout, self.site_deadline)
        self._write(message)
        while self.pending:
            self.pending -= 1
            self._expect_ok(self._reply(max(deadline, time.monotonic() + STARTUP_S), why))
        return self._reply(deadline, why)

    def _write(self, message: dict) -> None:
        if self.dead:
            raise JailError(self.dead)
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            self._die(f"the jail is gone ({self._exit_reason()})")

    def _reply(self, deadline: float, why: str) -> dict:
        line = self._read_line(deadline, why)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self._die("the jail sent something that is not a reply")
        return reply

    def _read_line(self, deadline: float, why: str) -> bytes:
        out = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._die(f"{why}: the jail was killed")
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            chunk = os.read(out, 1 << 20)
            if not chunk:
                self._die(f"the jail died ({self._exit_reason()})")
            self.buffer += chunk
            if len(self.buffer) > MAX_REPLY:
                self._die("the jail sent a reply over the size limit")
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def _exit_reason(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "not answering"
        tail = " ".join(self.stderr_tail.decode("utf-8", "replace").split())[-300:]
        what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return f"{what}{': ' + tail if tail else ''}"

    def _die(self, reason: str):
        self.kill()
        self.dead = reason
        raise JailError(reason)

    def _read_info(self, fd: int) -> None:
        """bwrap's --info-fd: the host pid of the jail's PID 1, held as a pidfd (a pid could be reused)."""
        try:
            with os.fdopen(fd, "rb") as info:
                child = json.loads(info.read(65536) or b"{}").get("child-pid")
            if isinstance(child, int) and child > 1 and self.process.poll() is None:
                self.init = os.pidfd_open(child)
        except (OSError, ValueError, AttributeError):
            pass  # no init to kill separately: bwrap's own death still takes the jail with it
        finally:
            self.init_known.set()

    def kill(self) -> None:
        """SIGKILL the jail's PID 1, which ends every process in its PID namespace whatever they did (the
        seccomp filter refuses ptrace, so none can have cleared its parent-death signal), then bwrap."""
        with self.kill_lock:  # Ctrl-C kills from the main thread while the site's own thread may too
            RUNNING.discard(self)
            self.init_known.wait(timeout=5)
            if self.init is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self.init, signal.SIGKILL)
                    # The pidfd turns readable once PID 1 has exited, which it does only after the kernel has
                    # ended every other process of its namespace: when this returns, none is left.
                    select.select([self.init], [], [], 10)
                with contextlib.suppress(OSError):
                    os.close(self.init)
                self.init = None
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL is not refused; bounded anyway
                self.process.wait(timeout=10)
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()

    # -- smolagents' PythonExecutor interface --------------------------------------------

    def send_tools(self, tools: dict) -> None:
        """The jail builds its own `sql` and `final_answer` tools; host Tool objects never cross."""
        unexpected = set(tools) - set(TOOLS)
        if unexpected:
            raise JailError(f"the jail only provides the tools {', '.join(TOOLS)}, not {', '.join(sorted(unexpected))}")
        self.post({"op": "tools", "names": sorted(tools)})

    def send_variables(self, variables: dict) -> None:
        """Plain data only (it crosses as JSON)."""
        try:
            payload = json.loads(json.dumps(variables, default=lambda o: None))
        except ValueError as exc:
            raise JailError(f"variables for the jail must be plain data: {exc}") from None
        self.post({"op": "variables", "values": payload})

    def __call__(self, code_action: str):
        from smolagents.local_python_executor import CodeOutput

        reply = self.request({"op": "run", "code": code_action})
        logs = _text(reply.get("logs"))
        self.state["_print_outputs"] = logs
        if reply.get("error") is not None:
            raise JailError(_text(reply["error"]))
        output = reply.get("output")
        return CodeOutput(output=None if output is None else _text(output), logs=logs,
                          is_final_answer=reply.get("final") is True)

    def cleanup(self) -> None:
        self.kill()
        if self.dead is None:
            self.dead = "the jail was stopped"

    # -- the sandbox DB in and out ---------------------------------------------------------

    def load(self, data: bytes) -> None:
        """Put the site's sandbox DB into the jail's /sandbox."""
        self.post({"op": "load", "data": base64.b64encode(data).decode("ascii")})

    def dump(self) -> bytes:
        """The jail's sandbox DB as bytes (untrusted: the host validates it like any sandbox)."""
        reply = self.request({"op": "dump"}, timeout=max(self.step_timeout, STARTUP_S))
        data = reply.get("data")
        if not isinstance(data, str):
            self._die(f"the jail did not send its database back ({_text(reply.get('error'))})")
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            self._die("the jail sent back a database that is not base64")

    def _expect_ok(self, reply: dict) -> None:
        if reply.get("ok") is not True:
            self._die(f"the jail refused: {_text(reply.get('error'))}")


def _text(value) -> str:
    """A reply field as bounded text (whatever the jail sent)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "... (truncated)"


# --- the jailed side --------------------------------------------------------------------


def limit_self(limits: dict) -> None:
    """Hard resource limits on this process and its children, before any code arrives."""
    import resource

    mb = 1024 * 1024
    for name, value in (("RLIMIT_AS", limits["memory_mb"] * mb), ("RLIMIT_CPU", limits["cpu_s"]),
                        ("RLIMIT_FSIZE", limits["file_mb"] * mb), ("RLIMIT_NPROC", limits["procs"]),
                        ("RLIMIT_NOFILE", limits["files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))


def serve(settings: dict) -> None:
    """The worker: read one JSON message a line from stdin, answer one JSON line on the protocol fd."""
    limit_self(settings["limits"])
    add_libraries(settings["libraries"])
    # stdout belongs to the protocol; anything else printed goes nowhere.
    protocol = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

    FinalAnswerTool, LocalPythonExecutor = executor_classes()
    from pipeline.sqltool import SqlTool

    executor = LocalPythonExecutor(settings["imports"], max_print_outputs_length=settings["max_print_outputs_length"],
                                   timeout_seconds=settings["timeout_seconds"])
    available = {"sql": lambda: SqlTool(DB_NAME), "final_answer": FinalAnswerTool}

    def answer(reply: dict) -> None:
        protocol.write(json.dumps(reply, default=str).encode() + b"\n")
        protocol.flush()

    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
            op = message["op"]
            if op == "tools":
                executor.send_tools({name: available[name]() for name in message["names"]})
                answer({"ok": True})
            elif op == "variables":
                executor.send_variables(message["values"])
                answer({"ok": True})
            elif op == "load":
                Path(DB_NAME).write_bytes(base64.b64decode(message["data"]))
                answer({"ok": True})
            elif op == "dump":
                answer({"data": base64.b64encode(Path(DB_NAME).read_bytes()).decode("ascii")})
            elif op == "run":
                answer(run_step(executor, message["code"]))
            else:
                answer({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # the host decides what a failed message means
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def executor_classes():
    """smolagents' FinalAnswerTool and LocalPythonExecutor, without running the package's __init__: it
    imports the agents, models and CLI too, which the worker never uses (a tenth of a second of every
    jail's start). The modules themselves load as they are, under a bare `smolagents` package."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("smolagents")
    package = types.ModuleType("smolagents")
    package.__path__, package.__spec__, package.__file__ = list(spec.submodule_search_locations), spec, spec.origin
    sys.modules["smolagents"] = package
    from smolagents.default_tools import FinalAnswerTool
    from smolagents.local_python_executor import LocalPythonExecutor
    from smolagents.tools import Tool

    package.Tool = Tool  # what pipeline.sqltool imports from the package
    return FinalAnswerTool, LocalPythonExecutor


def run_step(executor, code: str) -> dict:
    """One agent step through LocalPythonExecutor: output, printed logs, or the error the model sees."""
    try:
        out = executor(code)
    except Exception as exc:
        logs = str(executor.state.get("_print_outputs", ""))
        return {"error": str(exc)[:MAX_TEXT], "logs": logs[:MAX_TEXT]}
    output = None if out.output is None else str(out.output)[:MAX_TEXT]
    return {"output": output, "logs": out.logs[:MAX_TEXT], "final": bool(out.is_final_answer)}


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
