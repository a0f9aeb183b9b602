"""`--executor docker`: each site's agent in its own locked-down container, built offline.

The image is built here from packages this machine can reach, not pulled from a
registry: a Debian root filesystem from `debootstrap`, a venv with the Jupyter kernel
gateway from wheels downloaded by the host's pip, a non-root user, imported with
`docker import` and tagged with a hash of the recipe (a changed recipe builds a new
tag; an existing tag is reused). `newsreader sandbox build` does it once.

Each container: an internal Docker network (no route out; the host reaches the
kernel at the container's address), a read-only root filesystem with only
/sandbox (the agent's working folder) and /tmp writable as small tmpfs, a memory,
CPU and process limit, no capabilities, user 1000. Containers carry a label with
the owning process id, so the next start removes those of a process that died.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from smolagents.monitoring import AgentLogger, LogLevel
from smolagents.remote_executors import DockerExecutor, RemotePythonExecutor, _create_kernel_http

from .executors import HostExecutor, remote_dump, remote_load, step_deadline

RECIPE = {
    "suite": "bookworm",
    "mirror": "http://deb.debian.org/debian",
    "debian_packages": ["python3", "python3-venv", "ca-certificates"],
    "python_version": "3.11.2",  # bookworm's python3
    # the kernel gateway, and what smolagents' final-answer tool imports when it is sent in
    "wheels": ["jupyter_kernel_gateway", "ipykernel", "jupyter_client", "numpy", "pillow"],
    # Optional for jsonschema, but builds a Lark grammar at import (~1.5 s of every kernel start)
    "drop": ["rfc3987-syntax"],
    "uid": 1000,
}
LABEL = "newsreader.sandbox"
NETWORK = "newsreader-sandbox"
LIMITS = {"mem_limit": "512m", "nano_cpus": 1_000_000_000, "pids_limit": 128}


class ContainerError(Exception):
    """Docker or the image is not usable; the message says what to do."""


def image_tag() -> str:
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    return f"newsreader-sandbox:{digest}"


def client():
    try:
        import docker
    except ModuleNotFoundError:
        raise ContainerError("the docker executor needs the docker package: pip install 'newsreader[docker]'") from None
    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ContainerError(f"cannot reach the Docker daemon ({exc}); start dockerd (root: `dockerd &`)") from None


def image_exists(docker_client, tag: str) -> bool:
    import docker

    try:
        docker_client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(force: bool = False, log=print) -> str:
    """Build (or reuse) the sandbox image; return its tag."""
    tag = image_tag()
    docker_client = client()
    if image_exists(docker_client, tag) and not force:
        return tag
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            raise ContainerError(f"building the sandbox image needs {tool} (apt-get install debootstrap), as root")
    with tempfile.TemporaryDirectory(prefix="newsreader-image-") as work:
        rootfs, wheels = Path(work) / "rootfs", Path(work) / "wheels"
        log(f"debootstrap {RECIPE['suite']} ...")
        run(["debootstrap", "--variant=minbase", f"--include={','.join(RECIPE['debian_packages'])}",
             RECIPE["suite"], str(rootfs), RECIPE["mirror"]])
        log("downloading the kernel gateway wheels with the host's pip ...")
        run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), "--only-binary=:all:",
             "--python-version", RECIPE["python_version"], *RECIPE["wheels"]])
        shutil.copytree(wheels, rootfs / "tmp" / "wheels")
        run(["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", "/opt/kernel"])
        run(["chroot", str(rootfs), "/opt/kernel/bin/pip", "install", "-q", "--no-index", "--find-links",
             "/tmp/wheels", *RECIPE["wheels"]])
        shutil.rmtree(rootfs / "tmp" / "wheels")
        if RECIPE["drop"]:
            run(["chroot", str(rootfs), "/opt/kernel/bin/pip", "uninstall", "-q", "-y", *RECIPE["drop"]])
        uid = RECIPE["uid"]
        with open(rootfs / "etc" / "passwd", "a") as handle:
            handle.write(f"sandbox:x:{uid}:{uid}::/sandbox:/usr/sbin/nologin\n")
        with open(rootfs / "etc" / "group", "a") as handle:
            handle.write(f"sandbox:x:{uid}:\n")
        (rootfs / "sandbox").mkdir(exist_ok=True)
        log(f"importing into Docker as {tag} ...")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        changes = [f"USER {uid}:{uid}", "WORKDIR /sandbox", "ENV HOME=/sandbox",
                   "ENV PATH=/opt/kernel/bin:/usr/local/bin:/usr/bin:/bin", "EXPOSE 8888",
                   'CMD ["jupyter", "kernelgateway", "--KernelGatewayApp.ip=0.0.0.0", "--KernelGatewayApp.port=8888"]']
        args = ["docker", "import"] + [x for c in changes for x in ("--change", c)] + ["-", tag]
        subprocess.run(args, stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return tag


def run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ContainerError(f"{' '.join(args[:3])} ... failed: {' / '.join(tail)}")


def clean_stale(docker_client) -> int:
    """Remove sandbox containers whose owning process is gone (a crashed refresh)."""
    removed = 0
    for container in docker_client.containers.list(all=True, filters={"label": LABEL}):
        pid = int(container.labels.get("newsreader.pid", "0") or 0)
        if pid and pid_alive(pid):
            continue
        container.remove(force=True)
        removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


NETWORK_LOCK = threading.Lock()  # both sites start at once; only one may create the network


def internal_network(docker_client):
    with NETWORK_LOCK:
        found = docker_client.networks.list(names=[NETWORK])
        if found:
            return found[0]
        return docker_client.networks.create(NETWORK, driver="bridge", internal=True)


class SandboxContainerExecutor(DockerExecutor, HostExecutor):
    """smolagents' Docker executor, started the newsreader way (see the module docstring)."""

    def load(self, data: bytes) -> None:
        remote_load(self, data)

    def dump(self) -> bytes:
        return remote_dump(self)

    def __init__(self, additional_imports: list[str], logger: AgentLogger | None = None, image: str | None = None,
                 step_timeout: float = 60, site_deadline: float | None = None, **limits):
        logger = logger or AgentLogger(level=LogLevel.OFF)
        # smolagents opens a websocket per step with no timeout; a kernel killed by the memory
        # limit would leave it waiting forever. The per-read timeout is only a backstop: the
        # wall-clock bound on a step is the watchdog in run_code_raise_errors.
        import websocket

        websocket.setdefaulttimeout(step_timeout)
        self.step_timeout = float(step_timeout)
        self.site_deadline = site_deadline
        self.dead: str | None = None  # why the container is gone, once it is
        RemotePythonExecutor.__init__(self, additional_imports, logger)
        self.client = client()
        clean_stale(self.client)
        image = image or image_tag()
        if not image_exists(self.client, image):
            raise ContainerError(f"no sandbox image {image}: run `newsreader sandbox build` first")
        network = internal_network(self.client)
        token = secrets.token_urlsafe(16)
        self.container = self.client.containers.create(
            image, network=network.name, read_only=True, user=f"{RECIPE['uid']}:{RECIPE['uid']}",
            tmpfs={"/sandbox": f"rw,size=64m,uid={RECIPE['uid']},gid={RECIPE['uid']},mode=0700",
                   "/tmp": "rw,size=16m,mode=1777"},
            working_dir="/sandbox", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            environment={"KG_AUTH_TOKEN": token, "HOME": "/sandbox"},
            labels={LABEL: "1", "newsreader.pid": str(os.getpid())}, **{**LIMITS, **limits},
        )
        try:
            self.container.start()
            deadline = time.monotonic() + 20
            address = ""
            while time.monotonic() < deadline and not address:
                self.container.reload()
                address = self.container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
                if not address:
                    time.sleep(0.1)
            self.host, self.port = address, 8888
            self.base_url = f"http://{address}:8888"
            self._wait_for_server(token)
            self.kernel_id = _create_kernel_http(f"{self.base_url}/api/kernels?token={token}", self.logger)
            self.ws_url = f"ws://{address}:8888/api/kernels/{self.kernel_id}/channels?token={token}"
            self.installed_packages = []
        except Exception as exc:
            self.cleanup()
            raise ContainerError(f"the sandbox container did not start its kernel: {exc}") from exc

    def _wait_for_server(self, token: str, limit_s: float = 30.0):
        """Poll the kernel gateway every 50 ms (smolagents waits whole seconds between tries)."""
        import requests

        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/api/kernelspecs?token={token}", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise ContainerError(f"the kernel gateway did not answer within {limit_s:.0f} s")

    def run_code_raise_errors(self, code: str):
        """One step, bounded by wall-clock time: at the deadline the container is killed.

        A step that keeps printing would reset a per-read socket timeout forever; a
        timer does not care what the kernel sends.
        """
        if self.dead:
            raise ContainerError(self.dead)
        deadline, why = step_deadline(self.step_timeout, self.site_deadline)
        killed = f"{why}: the container was killed"
        expired = threading.Event()

        def expire():
            expired.set()
            with contextlib.suppress(Exception):  # already gone: the step fails either way
                self.container.kill()

        timer = threading.Timer(max(deadline - time.monotonic(), 0.0), expire)
        timer.start()
        try:
            return super().run_code_raise_errors(code)
        except Exception:
            if not expired.is_set():
                raise
            raise ContainerError(killed) from None
        finally:
            timer.cancel()
            if expired.is_set():
                self.dead = killed

    def install_packages(self, additional_imports):
        """There is no network inside: everything the agent may import is in the image."""
        return []

    def cleanup(self):
        if hasattr(self, "container"):
            try:
                self.container.remove(force=True)
            finally:
                del self.container
