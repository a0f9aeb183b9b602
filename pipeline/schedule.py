"""Ready-to-use recipes for a daily refresh: cron, systemd (service + timer), GitHub Actions."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

RECIPES = ("cron", "systemd", "github-actions")


def recipe(kind: str, workdir: Path, newsreader: str | None = None, hour: int = 6) -> str:
    """The text of a recipe; `workdir` holds newsreader.toml and data/."""
    workdir = Path(workdir).resolve()
    exe = newsreader or str(Path(sys.executable).with_name("newsreader"))
    if kind == "cron":
        return (
            "# Daily newsreader refresh (add with `crontab -e`); errors only, so cron mails only on failure.\n"
            f"0 {hour} * * * cd {shlex.quote(str(workdir))} && {shlex.quote(exe)} refresh --quiet\n"
        )
    if kind == "systemd":
        return f"""# ~/.config/systemd/user/newsreader.service
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
    if kind == "github-actions":
        return f"""# .github/workflows/newsreader.yml
name: newsreader daily refresh
on:
  schedule:
    - cron: "0 {hour} * * *"
  workflow_dispatch: {{}}
permissions:
  contents: read
jobs:
  refresh:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Restore the history database
        uses: actions/cache/restore@v4
        with:
          path: data/news.db
          key: newsreader-db-${{{{ github.run_id }}}}
          restore-keys: newsreader-db-
      - run: pip install .
      - name: A jail for the model's code (bubblewrap; Ubuntu 24.04 restricts user namespaces by default)
        run: |
          sudo apt-get install -y --no-install-recommends bubblewrap
          sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true
      - name: Refresh
        run: newsreader refresh --quiet
        env:
          NEWSREADER_MODEL: ${{{{ vars.NEWSREADER_MODEL || 'rules' }}}}
          ANTHROPIC_API_KEY: ${{{{ secrets.ANTHROPIC_API_KEY }}}}
          OPENAI_API_KEY: ${{{{ secrets.OPENAI_API_KEY }}}}
      - name: Save the history database
        if: always()
        uses: actions/cache/save@v4
        with:
          path: data/news.db
          key: newsreader-db-${{{{ github.run_id }}}}
      # To publish the history read-only, add your host's credentials and uncomment, e.g. Cloud Run:
      # - uses: google-github-actions/auth@v2
      #   with:
      #     credentials_json: ${{{{ secrets.GCP_CREDENTIALS }}}}
      # - run: >-
      #     datasette publish cloudrun data/news.db --service newsreader --metadata metadata.yml
      #     --install datasette-atom --install datasette-dashboards
"""
    raise ValueError(f"unknown recipe {kind!r} (known: {', '.join(RECIPES)})")
