"""Ready-to-use recipes for a daily refresh: cron, systemd (service + timer), GitHub Actions."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

RECIPES = ("cron", "systemd", "github-actions")


# The recipes' text, filled with str.format (`{{` is a literal brace: GitHub's `${{ ... }}`).
CRON = (
    "# Daily newsreader refresh (add with `crontab -e`); errors only, so cron mails only on failure.\n"
    "0 {hour} * * * cd {quoted_workdir} && {quoted_exe} refresh --quiet\n"
)

SYSTEMD = """# ~/.config/systemd/user/newsreader.service
[Unit]
Description=newsreader daily refresh
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={workdir}
ExecStart={exe} refresh --quiet

# ~/.config/systemd/user/newsreader.timer
[Unit]
Description=Run newsreader refresh daily

[Timer]
OnCalendar=*-*-* {hour:02d}:00:00
Persistent=true
RandomizedDelaySec=10min

[Install]
WantedBy=timers.target

# Enable with: systemctl --user daemon-reload && systemctl --user enable --now newsreader.timer
"""

GITHUB_ACTIONS = """# .github/workflows/newsreader.yml
#
# The history's durable home is a release asset (tag `newsreader-history`): downloaded before the
# refresh, uploaded after it, kept as long as the repository. Trade-offs: the asset is as public as
# the repository (make it private, or publish the history anyway); one file of at most 2 GB (about
# 25 years of daily runs); a run that fails before the upload loses only that run (the previous
# history stays). The Actions cache is not used for it: it is evicted after 7 days without use.
name: newsreader daily refresh
on:
  schedule:
    - cron: "0 {hour} * * *"
  workflow_dispatch: {{}}
permissions:
  contents: write  # to upload the history to its release
concurrency: newsreader  # one refresh at a time, as on a machine
jobs:
  refresh:
    runs-on: ubuntu-latest
    env:
      GH_TOKEN: ${{{{ github.token }}}}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install .
      - name: A jail for the model's code (bubblewrap; Ubuntu 24.04 restricts user namespaces by default)
        run: |
          sudo apt-get install -y --no-install-recommends bubblewrap
          sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true
      - name: Restore the history from its release (the first run starts a new one)
        run: |
          mkdir -p data
          gh release view newsreader-history >/dev/null 2>&1 || \\
            gh release create newsreader-history --title "newsreader history" --notes "data/news.db, updated daily"
          gh release download newsreader-history --pattern news.db --dir data || echo "no history yet"
      - name: Refresh
        run: newsreader refresh --quiet
        env:
          NEWSREADER_MODEL: ${{{{ vars.NEWSREADER_MODEL || 'rules' }}}}
          ANTHROPIC_API_KEY: ${{{{ secrets.ANTHROPIC_API_KEY }}}}
          OPENAI_API_KEY: ${{{{ secrets.OPENAI_API_KEY }}}}
      - name: Save the history to its release
        if: always()
        run: |
          test -f data/news.db || exit 0
          python - <<'PY'  # only a sound file replaces the durable copy
          import sqlite3, sys
          conn = sqlite3.connect("data/news.db")
          conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
          sys.exit(conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok")
          PY
          gh release upload newsreader-history data/news.db --clobber
      # To publish the history read-only, add your host's credentials and uncomment, e.g. Cloud Run:
      # - uses: google-github-actions/auth@v2
      #   with:
      #     credentials_json: ${{{{ secrets.GCP_CREDENTIALS }}}}
      # - run: >-
      #     datasette publish cloudrun data/news.db --service newsreader --metadata metadata.yml
      #     --install datasette-atom --install datasette-dashboards
"""

TEMPLATES = dict(zip(RECIPES, (CRON, SYSTEMD, GITHUB_ACTIONS), strict=True))


def recipe(kind: str, workdir: Path, newsreader: str | None = None, hour: int = 6) -> str:
    """The text of a recipe; `workdir` holds newsreader.toml and data/."""
    if kind not in TEMPLATES:
        raise ValueError(f"unknown recipe {kind!r} (known: {', '.join(RECIPES)})")
    workdir = Path(workdir).resolve()
    exe = newsreader or str(Path(sys.executable).with_name("newsreader"))
    return TEMPLATES[kind].format(hour=hour, workdir=workdir, exe=exe, quoted_workdir=shlex.quote(str(workdir)),
                                  quoted_exe=shlex.quote(exe))
