"""The package's shape, checked: imports flow one way, every per-site fact has one home, a light CLI start."""

import ast
import sqlite3
import subprocess
import sys
from pathlib import Path

from pipeline import config, schema, sites

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

# The data flow, earliest first: a module may import only modules before it (and the package root).
ORDER = [
    "text", "sites", "settings",  # helpers and facts with no dependencies
    "sources", "schema", "parse",  # fetch a page; schema.sql as code; HTML -> stories the schema takes
    "discussions", "articles",  # a story's comments; what it links to (fetched, read, archived)
    "history",  # reads of the history before judging (a judgment to carry over, a recent article) and the CLI's
    "sqltool", "sandbox", "prompt", "embeddings", "learn", "rules",  # the sandbox DB, its one tool, the task,
    # what stories mean as vectors, what votes teach, the built-in models
    "seccomp", "executors", "jail", "container", "plugins",  # where the agent's code runs: its interface, the
    # jail (and its seccomp filter), docker, and the registry the built-ins and plugins fill
    "models", "agent",  # the model factory and the budget; the judge
    "collect", "sync", "store",  # cross-posts and digest; landing a run; the history DB
    "config", "progress", "refresh", "evaluate", "schedule", "serve", "cli",  # the ways in
]


def imports_of(path: Path) -> set[str]:
    """Package modules a module imports, at any depth (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
    return found - {"__init__"}


def test_every_module_is_in_the_declared_order():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER)


def test_imports_flow_one_way():
    backwards = []
    for name in ORDER:
        for imported in imports_of(PACKAGE / f"{name}.py"):
            if imported in ORDER and ORDER.index(imported) >= ORDER.index(name):
                backwards.append(f"{name} imports {imported}")
    assert backwards == []


def test_every_module_says_its_job():
    for path in PACKAGE.glob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and len(docstring.split()) >= 5, path.name


def test_the_site_registry_and_schema_sql_agree():
    with schema.reference_db() as conn:
        seeded = dict(conn.execute("SELECT slug, name FROM sources"))
        for slug in ("hn", "lobsters", "reddit"):
            allowed = True
            try:
                conn.execute("INSERT OR REPLACE INTO sources (slug, name, base_url) VALUES (?, 'x', 'https://x')",
                             [slug])
            except sqlite3.IntegrityError:
                allowed = False
            assert allowed == (slug in sites.SITES), slug
    assert seeded == {slug: site.name for slug, site in sites.SITES.items()}


def test_command_line_ranges_are_the_configs():
    from click.testing import CliRunner

    from pipeline.cli import cli

    out = CliRunner().invoke(cli, ["refresh", "--max-steps", str(config.RANGES["max_steps"] + 1)])
    assert out.exit_code == 2 and f"1<=x<={config.RANGES['max_steps']}" in out.output
    out = CliRunner().invoke(cli, ["refresh", "--step-timeout", str(config.RANGES["step_timeout"] + 1)])
    assert out.exit_code == 2 and f"1<=x<={config.RANGES['step_timeout']}" in out.output


def test_help_and_config_do_not_load_the_agent_libraries():
    """`newsreader --help` and `newsreader config` must not pay for smolagents or LiteLLM (~0.3 s and ~3 s)."""
    code = ("import sys, pipeline.cli, pipeline.config; pipeline.config.load(); "
            "print(sorted(m for m in ('smolagents', 'litellm', 'datasette') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_function_is_over_sixty_lines():
    """A function a reader can hold: 60 lines at most, docstring included."""
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(PACKAGE.glob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60]
    assert long == []
