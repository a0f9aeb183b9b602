"""Reliability suite: fast variants run in `make test`; `make soak` sets NEWSREADER_SOAK=1 for the long ones.

Each test records the figures it reached (inputs tried, faults survived, rows lost,
malformed rows landed); they are printed and written to test-output/reliability.json,
from which `make soak` writes RELIABILITY.md.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

SOAK = os.environ.get("NEWSREADER_SOAK") == "1"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "reliability.json"
FIGURES: list[dict] = []


def scale(fast: int, soak: int) -> int:
    """How many trials: `fast` in make test, `soak` in make soak."""
    return soak if SOAK else fast


def record(test: str, inputs: int, faults: int, rows_lost: int = 0, malformed_landed: int = 0, note: str = ""):
    row = dict(test=test, inputs=inputs, faults=faults, rows_lost=rows_lost, malformed_landed=malformed_landed,
               note=note, soak=SOAK)
    FIGURES.append(row)
    print(f"\n[reliability] {test}: {inputs} inputs, {faults} faults survived, {rows_lost} rows lost, "
          f"{malformed_landed} malformed rows landed. {note}")


def write_figures() -> None:
    if not FIGURES:
        return
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(FIGURES, indent=2))


def after_module(ran: Callable[[], object]):
    """Decorates the function that records a module's figures: it runs once the module's tests did (whichever
    of them ran, when `ran()` says any did), as a module fixture, not a test: every test passes alone and in
    any order."""
    def wrap(write: Callable[[], None]):
        @pytest.fixture(scope="module", autouse=True, name=write.__name__)
        def figures():
            yield
            if ran():
                write()
        return figures
    return wrap
