"""newsreader: a daily Hacker News + Lobsters digest judged by an LLM CodeAgent.

Modules, in the order imports may flow (each imports only those above it; see
ARCHITECTURE.md and tests/test_layout.py):

    text, sites, settings -> helpers, the site registry, the judge's defaults
    sources   -> fetch the front pages, keep raw snapshots
    schema    -> schema.sql as code
    parse     -> deterministic parsers: HTML -> Story records the schema takes
    sqltool   -> the agent's one tool, `sql`, under a default-deny authorizer
    sandbox   -> a per-site SQLite DB (from schema.sql), validated once
    prompt    -> the task prompt, built and read back
    rules     -> the built-in deterministic `rules` model (and the keyword baseline)
    seccomp   -> the jail's seccomp filter (ptrace and kin refused)
    jail      -> where the agent's code runs by default: a bubblewrap process per site
    container -> or a locked-down Docker container per site (`--executor docker`)
    agent     -> one CodeAgent per site, in parallel
    collect   -> cross-posts and the digest
    sync      -> land every site's sandbox in history, atomically
    store     -> the history database (data/news.db)
    config, progress, refresh, evaluate, schedule, serve, cli -> the ways in
"""

import os

# litellm fetches its model cost map from the internet at import time unless told
# not to; newsreader must work offline, so default to the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"


def shipped(name: str):
    """schema.sql, feedback.sql or metadata.yml: the repository root holds the one copy; a wheel's build puts it in the
    package (pyproject.toml, force-include). Inside the package first, else the checkout's root."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    return here / name if (here / name).is_file() else here.parent / name
