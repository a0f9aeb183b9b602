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

        return [Kind("mine", make, about="a plugin's"), Kind("jail", lambda *a: None, about="an impostor")]


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
    result = agent.judge_site(make_box(tmp_path), ScriptedModel(rules.code_for), vocabulary=VOCABULARY,
                              executor="mine", executor_options={"x": 1})
    assert result.status == "ok" and Mine.made == [{"x": 1}], result.error


def test_every_executor_newsreader_builds_is_a_host_executor(tmp_path):
    made = plugins.kinds()["jail"].make({}, 5, 10**9)
    try:
        assert isinstance(made, executors.HostExecutor)
    finally:
        made.cleanup()
