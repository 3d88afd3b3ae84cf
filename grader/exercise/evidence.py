"""What an exercise's own analysis receives and returns: plain data, no grading machinery.

An exercise may ship ``analysis.py`` with ``analyze(observations, *, rtol, atol) -> list[Finding]``:
numpy-only checks of properties that need no exact RNG (see ``exercises/train-eval-dropout/analysis.py``).
It runs in the grader's process, on outputs the grader has already validated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np


class OpaqueLeaf(Protocol):
    """A leaf that is not a usable array: the grader's description of what came back instead."""

    @property
    def value(self) -> object: ...

    @property
    def problem(self) -> str: ...


# An output: an array, or a tree of them (tuples, lists, dicts with string keys, nested). The grader's own
# tree type (with its opaque leaves) is one of these; this module stays below the grading machinery.
Tree = Union[np.ndarray, OpaqueLeaf, Sequence["Tree"], Mapping[str, "Tree"]]  # noqa: UP007


@dataclass(frozen=True)
class Observation:
    """One case: what the reference gave and what the submission gave."""

    case_id: str
    group: str  # the spec's case id; the cases of one group differ only in expanded parameters
    labels: dict[str, str]  # expanded parameter -> label, e.g. {"train": "eval"}
    args: tuple[object, ...]
    # An array, or for an exercise whose entry point returns a tree, the same tree of arrays (tuples,
    # lists, dicts with string keys).
    expected: Tree
    actual: Tree | None  # None when the submission gave nothing comparable
    passed: bool


def in_both_modes(
    observations: Sequence[Observation], *, parameter: str = "train", modes: tuple[str, str] = ("train", "eval")
) -> list[tuple[str, Observation, Observation]]:
    """Each case group seen in both modes of an expanded parameter: ``(group, first, second)`` with the
    observations labelled ``modes[0]`` and ``modes[1]``, in the order the groups first appear. A group
    missing either mode is left out. (The train/eval exercises compare each input's two runs.)"""
    by_group: dict[str, dict[str, Observation]] = {}
    for obs in observations:
        by_group.setdefault(obs.group, {})[obs.labels.get(parameter, "")] = obs
    found = []
    for group, labelled in by_group.items():
        first, second = labelled.get(modes[0]), labelled.get(modes[1])
        if first is not None and second is not None:
            found.append((group, first, second))
    return found


@dataclass(frozen=True)
class Finding:
    """A mistake the evidence supports: its catalog code, the cases, and what it rests on."""

    code: str
    cases: list[str]
    evidence: str
    details: dict[str, str] = field(default_factory=dict)  # fills {placeholders} in the catalog's text
