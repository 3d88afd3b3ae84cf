"""Which submissions one shard of a class grades (``grader grade CLASS --shard I/N``).

A submission's shard is a function of its path below the folder the submissions share and of N alone:
``1 + (the first 8 bytes of sha256(path), big-endian) mod N``. So every file is in exactly one shard, the
machines that grade the shards need not talk to each other, and a file added to the class leaves every
other file in its shard.

The index counts from 1. ``auto/N`` takes it from the environment of the engine that runs the shards: a
Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` (from 0), else a Slurm job array's ``SLURM_ARRAY_TASK_ID``
(its position in the array, from ``SLURM_ARRAY_TASK_MIN`` in steps of ``SLURM_ARRAY_TASK_STEP``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TypeVar

from grader.errors import UsageError

MAX_SHARDS = 10_000
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"  # 0 to completions - 1
SLURM_TASK_ID = "SLURM_ARRAY_TASK_ID"
SLURM_TASK_MIN, SLURM_TASK_STEP, SLURM_TASK_COUNT = (
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
)
_SHARD = re.compile(r"(\d+|auto)/(\d+)", re.ASCII)
_USAGE = (
    "--shard takes I/N, shard I of N counted from 1 (1/4 to 4/4), or auto/N to take I from "
    f"{KUBERNETES_INDEX} (a Kubernetes Indexed Job) or {SLURM_TASK_ID} (a Slurm job array)"
)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``count``; ``source`` says where the index came from, when not the option."""

    index: int
    count: int
    source: str = ""

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" + (f" (from {self.source})" if self.source else "")


def parse_shard(value: str, environ: Mapping[str, str] | None = None) -> Shard:
    """``--shard``'s value: ``I/N`` or ``auto/N`` (the index from ``environ``, by default the process's).
    Anything else, an index outside 1 to N or N outside 1 to ``MAX_SHARDS``, is a ``UsageError``."""
    match = _SHARD.fullmatch(value.strip())
    if match is None:
        raise UsageError(f"{_USAGE}: got {value!r}")
    count = int(match[2])
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"--shard {value}: the number of shards N must be 1 to {MAX_SHARDS}")
    if match[1] == "auto":
        index, source = index_from_environment(count, os.environ if environ is None else environ)
        return Shard(index, count, source)
    index = int(match[1])
    if not 1 <= index <= count:
        first = " (shards are counted from 1)" if index == 0 else ""
        raise UsageError(f"--shard {value}: the index I must be 1 to {count}{first}")
    return Shard(index, count)


def index_from_environment(count: int, environ: Mapping[str, str]) -> tuple[int, str]:
    """The shard's index (from 1) as the engine running it says, and the variable that said it."""
    if environ.get(KUBERNETES_INDEX, "").strip():
        raw = environ[KUBERNETES_INDEX]
        index = _whole(KUBERNETES_INDEX, raw) + 1
        source = f"{KUBERNETES_INDEX}={raw.strip()}"
        hint = f"give the Job `completions: {count}`"
    elif environ.get(SLURM_TASK_ID, "").strip():
        index, source = _slurm_index(count, environ)
        hint = f"give the array {count} tasks, as --array=1-{count}"
    else:
        raise UsageError(
            f"--shard auto/{count} takes the index from {KUBERNETES_INDEX} (a Kubernetes Indexed Job) or "
            f"{SLURM_TASK_ID} (a Slurm job array), and neither is set: give it as --shard I/{count}"
        )
    if not 1 <= index <= count:
        raise UsageError(f"{source} is shard {index}, but --shard auto/{count} has {count} shards: {hint}")
    return index, source


def _slurm_index(count: int, environ: Mapping[str, str]) -> tuple[int, str]:
    """A Slurm array task's position in its array, from 1: ``--array=0-3``, ``1-4`` and ``0-30:10`` all give
    1 to 4. The array must have exactly ``count`` tasks where Slurm says how many."""
    task = _whole(SLURM_TASK_ID, environ[SLURM_TASK_ID])
    first = _whole(SLURM_TASK_MIN, environ.get(SLURM_TASK_MIN) or "0")
    step = _whole(SLURM_TASK_STEP, environ.get(SLURM_TASK_STEP) or "1") or 1
    source = f"{SLURM_TASK_ID}={task}"
    if environ.get(SLURM_TASK_COUNT, "").strip():
        tasks = _whole(SLURM_TASK_COUNT, environ[SLURM_TASK_COUNT])
        if tasks != count:
            raise UsageError(
                f"{SLURM_TASK_COUNT}={tasks}, but --shard auto/{count} has {count} shards: "
                f"give the array {count} tasks, or --shard auto/{tasks}"
            )
    if task < first or (task - first) % step:
        array = f"{first}, {first + step}, ... ({SLURM_TASK_MIN}, {SLURM_TASK_STEP})"
        raise UsageError(f"{source} is not a task of the array {array}")
    return (task - first) // step + 1, source


def _whole(name: str, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        raise UsageError(f"{name}={raw!r}: expected a whole number of 0 or more")
    return int(text)


def shard_of(name: PurePath | str, count: int) -> int:
    """The shard (from 1) of the submission at ``name``, its path below the folder the submissions share."""
    key = os.fsencode(PurePath(name).as_posix())
    return 1 + int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count


def take_share(names: Mapping[T, PurePath], shard: Shard) -> list[T]:
    """The items whose names fall in ``shard``, in their order."""
    return [item for item, name in names.items() if shard_of(name, shard.count) == shard.index]


def share_out(names: Sequence[PurePath | str], count: int) -> dict[int, list[PurePath | str]]:
    """Every shard's names, 1 to ``count`` (empty ones included): how a class is shared out."""
    shares: dict[int, list[PurePath | str]] = {index: [] for index in range(1, count + 1)}
    for name in names:
        shares[shard_of(name, count)].append(name)
    return shares


__all__ = ["MAX_SHARDS", "Shard", "index_from_environment", "parse_shard", "shard_of", "share_out", "take_share"]
