"""What the judge is told: the system prompt's template, the task, and the basis of a judgment.

- The system prompt (how to answer, the tool, the rules the database enforces) is the
  template file `judge_prompt.yaml`, rendered by smolagents' prompt-template mechanism
  (agent.JudgeAgent fills in the run's facts).
- The task (`build_task`): the reader's profile, the vocabulary and the candidate table.
  `parse_task` is what the built-in models read of it; one module holds both directions so
  they cannot drift apart (tests/test_prompt.py round-trips them).
- `basis`: a digest of everything a judgment rests on. A story whose basis is unchanged
  since an earlier run is not sent to the model again (refresh.py carries the judgment over).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import sites

TEMPLATES_PATH = Path(__file__).with_name("judge_prompt.yaml")
TASK_VERSION = 2  # bump when build_task changes what the model is told (judgments rest on it)


@functools.cache
def template_text() -> str:
    return TEMPLATES_PATH.read_text(encoding="utf-8")


def templates() -> dict:
    """smolagents' prompt templates for the judge (system prompt and the unused planning/final keys)."""
    return yaml.safe_load(template_text())


def basis(model: str, profile: str, vocabulary: dict[str, str], story) -> str:
    """SHA-256 of what a judgment of `story` rests on: prompt, model, reader, vocabulary and the story's
    own words (title, link, kind, site tags; not its points, which change every run)."""
    facts = [TASK_VERSION, template_text(), model, " ".join(profile.split()),
             sorted(vocabulary.items()), story.title, story.domain, story.kind, story.tags, story.url]
    return hashlib.sha256(json.dumps(facts, ensure_ascii=False).encode("utf-8")).hexdigest()


CANDIDATES_MARKER = "CANDIDATES (JSON lines: id, title, domain, site_tags, points, comments, kind):"


@dataclass
class Candidate:
    """One row of the candidate table in the task prompt."""

    id: int
    title: str
    domain: str | None
    site_tags: list[str]
    points: int | None
    comments: int | None
    kind: str
    lead: str = ""  # the start of its article text, once read (the rules model's reading step)
    comment: str = ""  # the start of its first comment, once read


READING_MARKER = "ARTICLES:"


def build_task(source: str, run_id: int, profile: str, vocabulary: dict[str, str], candidates: dict,
               read: tuple[int, int] | None = None, votes: int = 0) -> str:
    """The task: profile, vocabulary and the candidates (id -> Story) as JSON lines (the rules: the system prompt)."""
    site = sites.name(source)
    lines = [
        f"Judge today's {site} front page for this reader.",
        "",
        f"READER'S INTERESTS: {' '.join(profile.split())}",
        "",
        "TAG VOCABULARY (use only these slugs):",
        *(f"- {slug}: {meaning}" for slug, meaning in vocabulary.items()),
        "",
        f"run_id: {run_id}",
        f"site: {source}",
        "",
        *([f"{READING_MARKER} story_articles has the text of {read[0]} candidates (read it before judging them: "
           "sql('SELECT description, text FROM story_articles WHERE story_id = ?', [id])); comments has the first "
           f"comments of {read[1]}.", ""] if read else []),
        *([f"READER'S VOTES: reader_votes (title, domain, tags, vote up/down) holds {votes} of this reader's recent "
           "votes: examples of their taste, to weigh with the interests above.", ""] if votes else []),
        CANDIDATES_MARKER,
    ]
    for story_id, s in candidates.items():
        row = [story_id, s.title, s.domain, s.tags, s.points, s.comments, s.kind]
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines)


def parse_task(task: str) -> tuple[int, str, set[str], list[Candidate], str]:
    """(run_id, site, vocabulary, candidates, profile) from the task prompt the agent receives."""
    run_id = int(re.search(r"^run_id: (\d+)$", task, re.MULTILINE).group(1))
    profile_line = re.search(r"^READER'S INTERESTS: (.*)$", task, re.MULTILINE)
    site = re.search(r"^site: (\w+)$", task, re.MULTILINE).group(1)
    # Only the vocabulary block: the instructions below it also have "- name: ..." lines.
    block = re.search(r"^TAG VOCABULARY.*?\n(.*?)\n\n", task, re.MULTILINE | re.DOTALL)
    vocabulary = set(re.findall(r"^- ([a-z][a-z0-9-]*): ", block.group(1) if block else "", re.MULTILINE))
    candidates = []
    body = task.split(CANDIDATES_MARKER, 1)[1]
    for line in body.splitlines():
        line = line.strip()
        if not line.startswith("["):
            if candidates and line:
                break
            continue
        cid, title, domain, site_tags, points, comments, kind = json.loads(line)
        candidates.append(Candidate(cid, title, domain, site_tags, points, comments, kind))
    return run_id, site, vocabulary, candidates, profile_line.group(1) if profile_line else ""
