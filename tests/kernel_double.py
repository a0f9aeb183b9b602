"""A stand-in for a remote executor's kernel: another process, its own working directory.

The host side (`SubprocessKernel`) speaks smolagents' RemotePythonExecutor interface,
so the judge's ship-in / ship-out of the sandbox DB is exercised exactly as with a
Docker or E2B kernel, offline. Run as a script it is the kernel: JSON lines in,
JSON lines out, one persistent namespace, like a Jupyter kernel.
"""

import contextlib
import io
import json
import subprocess
import sys
import traceback
from pathlib import Path

from smolagents.local_python_executor import CodeOutput
from smolagents.monitoring import AgentLogger, LogLevel
from smolagents.remote_executors import RemotePythonExecutor
from smolagents.utils import AgentError


class SubprocessKernel(RemotePythonExecutor):
    def __init__(self, workdir: Path):
        super().__init__([], AgentLogger(level=LogLevel.OFF))
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-u", __file__], cwd=self.workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        self.cells = 0

    def run_code_raise_errors(self, code: str) -> CodeOutput:
        self.cells += 1
        self.process.stdin.write(json.dumps({"code": code}) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        if reply.get("error_name") == self.FINAL_ANSWER_EXCEPTION:
            return CodeOutput(self._deserialize_final_answer(reply["error_value"]), reply["stdout"], True)
        if reply.get("error_name"):
            raise AgentError(reply["traceback"], self.logger)
        return CodeOutput(None, reply["stdout"], False)

    def install_packages(self, additional_imports):
        return additional_imports

    def cleanup(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


def serve() -> None:
    # smolagents hoists the final-answer tool's optional `import numpy` to the top of the
    # tool code it sends; real kernel images ship numpy. Stand in with an empty module.
    import types

    numpy = types.ModuleType("numpy")
    numpy.ndarray = numpy.integer = numpy.floating = type("NotNumpy", (), {})
    sys.modules.setdefault("numpy", numpy)
    namespace: dict = {}
    for line in sys.stdin:
        request = json.loads(line)
        out, reply = io.StringIO(), {}
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(request["code"], "<cell>", "exec"), namespace)
        except BaseException as exc:  # the kernel reports every error, like Jupyter
            reply = {"error_name": type(exc).__name__, "error_value": str(getattr(exc, "value", exc)),
                     "traceback": traceback.format_exc()}
        reply["stdout"] = out.getvalue()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
