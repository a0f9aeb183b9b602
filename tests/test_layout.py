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
    "text", "settings",  # helpers and facts with no dependencies
    "sources", "schema", "parse",  # fetch a listing; schema.sql as code; HTML -> stories the schema takes
    "discussions", "articles",  # a story's comments; what it links to (fetched, read, archived)
    "sites", "sites.hn", "sites.lobsters", "sites.feed",  # what a kind of site is; the built-in kinds
    "history",  # reads of the history before judging (a judgment to carry over, a recent article) and the CLI's
    "sqltool", "sandbox", "prompt", "embeddings", "learn", "rules",  # the sandbox DB, its one tool, the task,
    # what stories mean as vectors, what votes teach, the built-in models
    "seccomp", "executors", "jail", "container", "plugins",  # where the agent's code runs: its interface, the
    # jail (and its seccomp filter), docker, and the registry the built-ins and plugins fill
    "models", "agent",  # the model factory and the budget; the judge
    "collect", "sync", "store",  # cross-posts and digest; landing a run; the history DB
    "config", "deliver", "progress", "refresh", "evaluate", "schedule", "serve", "cli",  # the ways in
]


def module_name(path: Path) -> str:
    """pipeline/refresh.py -> "refresh"; pipeline/sites/hn.py -> "sites.hn"; pipeline/sites/__init__.py -> "sites"."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(path: Path) -> set[str]:
    """Package modules a module imports, at any depth (lazy imports inside functions count too), named as
    ORDER names them (a subpackage's modules as "sites.hn")."""
    here = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            if node.module:
                found.add(resolve([*base, *node.module.split(".")]))
            else:
                found.update(resolve([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(resolve(node.module.split(".")[1:]))
    return found - {"", module_name(path)}


def resolve(parts: list[str]) -> str:
    """The longest prefix of a dotted name that is a module of the package (a name imported from it is not)."""
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if module_path(name).is_file():
            return name
    return ""


def test_every_module_is_in_the_declared_order():
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")} - {""}
    assert modules == set(ORDER)


def test_imports_flow_one_way():
    backwards = []
    for name in ORDER:
        for imported in imports_of(module_path(name)):
            if imported in ORDER and ORDER.index(imported) >= ORDER.index(name):
                backwards.append(f"{name} imports {imported}")
    assert backwards == []


def test_every_module_says_its_job():
    for path in PACKAGE.rglob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and len(docstring.split()) >= 5, path.name


def test_schema_sql_lists_no_site_and_takes_any_well_formed_source():
    """The sites are the registry's (pipeline/sites/, plugins): schema.sql seeds none and takes any slug of the
    shape a config's `[sources.NAME]` may have; the refresh writes the configured ones."""
    with schema.reference_db() as conn:
        assert conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 0
        for slug in ("hn", "lobsters", "reddit", "my-feed_2", "Bad", "1feed", "a b", "x" * 33):
            allowed = True
            try:
                conn.execute("INSERT INTO sources (slug, kind, name, label, base_url) "
                             "VALUES (?, 'feed', 'x', 'x', 'https://x')", [slug])
            except sqlite3.IntegrityError:
                allowed = False
            assert allowed == bool(sites.SLUG.fullmatch(slug)), slug


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
            for path in sorted(PACKAGE.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60]
    assert long == []
