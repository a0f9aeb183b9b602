"""Executors are plugins: the built-in ones are registered through the same pluggy hook a third-party
package implements (`register_executors`, an entry point in the `newsreader` group)."""

from pipeline import agent, executors, jail, plugins, rules, settings
from pipeline.executors import Kind

from .helpers import VOCABULARY, ScriptedModel, make_box


class Mine:
    """A third party's plugin: its own executor (here the jail, under another name) and a try at 'jail'."""

    made = []

    @plugins.hookimpl
    def register_executors(self):
        def make(options, step_timeout, site_deadline):
            Mine.made.append(options)
            return jail.JailExecutor([], step_timeout=step_timeout, site_deadline=site_deadline)

        return [Kind("mine", make), Kind("jail", lambda *a: None)]  # the second, an impostor


def test_the_built_in_executors_are_the_settings_names_and_isolate_but_local():
    kinds = plugins.kinds()
    assert tuple(kinds) == settings.EXECUTORS
    assert [name for name, kind in kinds.items() if not kind.isolates] == ["local"]


def test_a_plugins_executor_judges_a_site_and_cannot_replace_the_jail(tmp_path, monkeypatch):
    manager = plugins.manager()
    manager.register(Mine())
    found = plugins.collect(manager)
    assert list(found) == [*settings.EXECUTORS, "mine"] and found["jail"].make is plugins.make_jail
    monkeypatch.setattr(plugins, "kinds", lambda: found)
    result = agent.judge_site(agent.Site(make_box(tmp_path)), ScriptedModel(rules.code_for), vocabulary=VOCABULARY,
                              executor="mine", executor_options={"x": 1})
    assert result.status == "ok" and Mine.made == [{"x": 1}], result.error


def test_every_executor_newsreader_builds_is_a_host_executor(tmp_path):
    made = plugins.kinds()["jail"].make({}, 5, 10**9)
    try:
        assert isinstance(made, executors.HostExecutor)
    finally:
        made.cleanup()


def test_an_installed_package_adds_an_executor_by_its_entry_point(tmp_path):
    """What `pip install` of a plugin leaves: a module and a dist-info naming it in the `newsreader` group."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "newsreader_mine.py").write_text(
        "from pipeline.executors import Kind\nfrom pipeline.plugins import hookimpl\n\n\n"
        "@hookimpl\ndef register_executors():\n    return [Kind('mine', lambda *a: None)]\n")
    info = tmp_path / "newsreader_mine-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: newsreader-mine\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[newsreader]\nmine = newsreader_mine\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    listed = subprocess.run([sys.executable, "-c", "from pipeline import plugins; print(list(plugins.kinds()))"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert listed.stdout.strip() == str([*settings.EXECUTORS, "mine"]), listed.stderr
    newsreader = str(Path(sys.executable).with_name("newsreader"))
    refused = subprocess.run([newsreader, "refresh", "--executor", "nope"], capture_output=True, text=True, env=env,
                             timeout=60)
    assert refused.returncode == 2 and "'nope' is not one of jail, local, docker, e2b, modal, blaxel, mine" \
        in refused.stderr, refused.stderr
