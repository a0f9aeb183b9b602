"""newsreader: a daily Hacker News + Lobsters digest judged by an LLM CodeAgent.

Modules, in the order data flows through them:

    sources   -> fetch the front pages, keep raw snapshots
    parse     -> deterministic parsers: HTML -> Story records
    sandbox   -> a per-site SQLite DB (from schema.sql)
    sqltool   -> the agent's one tool, `sql`, under a default-deny authorizer
    rules     -> the built-in deterministic `rules` model (and the keyword baseline)
    agent     -> one CodeAgent per site, in parallel
    jail      -> where the agent's code runs by default: a bubblewrap process per site
    container -> or a locked-down Docker container per site (`--executor docker`)
    collect   -> cross-posts and the digest
    sync      -> validate each sandbox and merge it atomically into history
    store     -> the history database (data/news.db)
    serve     -> Datasette over the history (command line and the one plugin hook)

Around them: refresh (one run, end to end), config (newsreader.toml), progress
(terminal output and JSON logs), evaluate (`newsreader eval`), schedule (recipes)
and cli (the `newsreader` command).
"""

import os

# litellm fetches its model cost map from the internet at import time unless told
# not to; newsreader must work offline, so default to the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"


def shipped(name: str):
    """schema.sql or metadata.yml: the repository root holds the one copy; a wheel's build puts it in the
    package (pyproject.toml, force-include). Inside the package first, else the checkout's root."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    return here / name if (here / name).is_file() else here.parent / name
