"""newsreader's plugin hooks (pluggy) and what they register: the executors the agent's code can run in,
and the kinds of site a source can be.

A plugin package adds either by an entry point in the `newsreader` group whose module implements
`register_executors` (returning `executors.Kind`s) or `register_sites` (returning `sites.Kind`s); the
built-in ones are registered by this module in the same way. Loaded on first use (`kinds()`,
`site_kinds()`), never at `newsreader --help`.
"""

from __future__ import annotations

import functools
import sys

import pluggy

from . import sites
from .executors import LOCAL_EXECUTOR_DEFAULTS, HostExecutor, Kind
from .sites.feed import Feed
from .sites.hn import HackerNews
from .sites.lobsters import Lobsters

hookspec = pluggy.HookspecMarker("newsreader")
hookimpl = pluggy.HookimplMarker("newsreader")


class Spec:
    @hookspec
    def register_executors(self) -> list[Kind]:
        """The executors a plugin adds."""

    @hookspec
    def register_sites(self) -> list[sites.Kind]:
        """The kinds of site a plugin adds (a source's `kind = "..."` in the config)."""


# --- the built-in executors, registered as a plugin would register its own ------------------------------

def make_jail(options: dict, step_timeout: float, site_deadline: float) -> HostExecutor:
    from .jail import JailExecutor

    return JailExecutor([], step_timeout=step_timeout, site_deadline=site_deadline,
                        **{**LOCAL_EXECUTOR_DEFAULTS, **options})


def make_docker(options: dict, step_timeout: float, site_deadline: float) -> HostExecutor:
    from .container import SandboxContainerExecutor

    return SandboxContainerExecutor([], step_timeout=step_timeout, site_deadline=site_deadline, **options)


def built_by_smolagents(options: dict, step_timeout: float, site_deadline: float) -> None:
    return None


@hookimpl
def register_executors() -> list[Kind]:
    return [
        Kind("jail", make_jail),  # a bubblewrap process per site (the default)
        Kind("local", built_by_smolagents, isolates=False),  # in the refresh process: trusted code only
        Kind("docker", make_docker),  # a locked-down Docker container per site
        *(Kind(name, built_by_smolagents) for name in ("e2b", "modal", "blaxel")),  # smolagents' hosted ones
    ]


@hookimpl
def register_sites() -> list[sites.Kind]:
    return [HackerNews(), Lobsters(), Feed()]


def manager() -> pluggy.PluginManager:
    """The plugin manager: the hook specs, this module's built-ins, then the installed plugins."""
    found = pluggy.PluginManager("newsreader")
    found.add_hookspecs(Spec)
    found.register(sys.modules[__name__], name="newsreader.builtins")
    found.load_setuptools_entrypoints("newsreader")
    return found


def collect(plugins: pluggy.PluginManager, hook: str = "register_executors") -> dict:
    """What these plugins register through `hook`, by name: the built-in ones first, kept on a name clash
    (a plugin cannot replace the jail, or Hacker News)."""
    found: dict = {}
    for registered in reversed(getattr(plugins.hook, hook)()):  # pluggy calls the last registered first
        for kind in registered or []:
            found.setdefault(kind.name, kind)
    return found


@functools.cache
def kinds() -> dict[str, Kind]:
    """Every executor there is (the built-in ones and the installed plugins'), loaded once."""
    return collect(manager())


@functools.cache
def site_kinds() -> dict[str, sites.Kind]:
    """Every kind of site there is (the built-in ones and the installed plugins'), loaded once."""
    return collect(manager(), "register_sites")

