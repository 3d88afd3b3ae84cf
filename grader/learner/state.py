"""What the grader remembers for a learner between runs: hints seen, the last result of each exercise.

A small JSON file in the user's data folder (``$GRADER_DATA_DIR``, else ``$XDG_DATA_HOME/grader``, else
``~/.local/share/grader``), never in the repository. A file that cannot be read starts afresh; a folder
that cannot be written only means nothing is remembered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.report.schema import Report

DATA_ENV = "GRADER_DATA_DIR"
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"


class LastResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    score: float
    max_score: float
    path: str
    graded_at: str


class LearnerState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hints_seen: dict[str, int] = Field(default_factory=dict)
    last_results: dict[str, LastResult] = Field(default_factory=dict)


def data_dir() -> Path:
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "grader"


def load_state(folder: Path | None = None) -> LearnerState:
    path = (folder or data_dir()) / STATE_FILE
    try:
        return LearnerState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return LearnerState()


def save_state(state: LearnerState, folder: Path | None = None) -> None:
    folder = folder or data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".state-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(state.model_dump_json(indent=2))
        os.replace(temp, folder / STATE_FILE)
    except OSError:
        pass  # nothing remembered this time


@contextlib.contextmanager
def _updating(folder: Path | None) -> Iterator[LearnerState]:
    """Loads, yields and saves the state under a lock, so that two commands at once lose nothing."""
    folder = folder or data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - held for the whole update
    except OSError:
        lock = None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        state = load_state(folder)
        yield state
        save_state(state, folder)
    finally:
        if lock is not None:
            lock.close()


def record_result(report: Report, folder: Path | None = None) -> None:
    """Remembers a grading as the learner's last result for its exercise."""
    with _updating(folder) as state:
        _record(state, report)


def _record(state: LearnerState, report: Report) -> None:
    state.last_results[report.exercise.id] = LastResult(
        status=report.status,
        score=report.score,
        max_score=report.max_score,
        path=report.submission.path,
        graded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def next_hint(exercise_id: str, hints: list[str], folder: Path | None = None) -> tuple[int, str] | None:
    """The next hint not yet seen (1-based number and text), remembered as seen; None when all are."""
    with _updating(folder) as state:
        seen = state.hints_seen.get(exercise_id, 0)
        if seen >= len(hints):
            return None
        state.hints_seen[exercise_id] = seen + 1
    return seen + 1, hints[seen]


def reset_hints(exercise_id: str, folder: Path | None = None) -> None:
    with _updating(folder) as state:
        state.hints_seen.pop(exercise_id, None)
