"""What an exercise's own analysis receives and returns: plain data, no grading machinery.

An exercise may ship ``analysis.py`` with ``analyze(observations, *, rtol, atol) -> list[Finding]``:
numpy-only checks of properties that need no exact RNG (see ``exercises/train-eval-dropout/analysis.py``).
It runs in the grader's process, on outputs the grader has already validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One case: what the reference gave and what the submission gave."""

    case_id: str
    group: str  # the spec's case id; the cases of one group differ only in expanded parameters
    labels: dict[str, str]  # expanded parameter -> label, e.g. {"train": "eval"}
    args: tuple[object, ...]
    # An array, or for an exercise whose entry point returns a tree, the same tree of arrays (tuples,
    # lists, dicts with string keys).
    expected: np.ndarray | tuple | list | dict
    actual: np.ndarray | tuple | list | dict | None  # None when the submission gave nothing comparable
    passed: bool


@dataclass(frozen=True)
class Finding:
    """A mistake the evidence supports: its catalog code, the cases, and what it rests on."""

    code: str
    cases: list[str]
    evidence: str
    details: dict[str, str] = field(default_factory=dict)  # fills {placeholders} in the catalog's text
