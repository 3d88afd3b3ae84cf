"""A head start for ``grader grade FILE``: the submission's child starts before the grading pipeline is
imported, so that its imports of jax and flax, most of a cold grading, run while the grader's own imports,
the exercise's loading and the reference's outputs take their turn.

Nothing here imports numpy or pydantic. The exercise comes from a first look at the specs
(``exercise.roots``), not from validated ones, so the child is a guess: ``grade_file`` uses it only where it
was made exactly as grading would make it (``SpawnedChild.fits``), and its caller discards it otherwise.
Whatever fails here only costs the head start. No submission code runs in the child before its job.
"""

from __future__ import annotations

import os
from pathlib import Path

from grader.exercise.roots import glance_at_exercises
from grader.pipeline.recipe import hidden_paths, submission_job, usable_cache_dir
from grader.pipeline.source import pick_exercise, read_source
from grader.sandbox.isolation import choose_isolation
from grader.sandbox.start import SpawnedChild, spawn_child

HEAD_START_ENV = "GRADER_HEAD_START"  # "0": no head start (each grading starts its child when it needs it)


def head_start(
    path: Path,
    *,
    exercise_id: str | None,
    cache_dir: Path | None,
    isolation: str | None,
    roots: list[Path] | None = None,
) -> SpawnedChild | None:
    """A child started now for grading ``path`` (``exercise_id``, or the exercise its entry point names),
    as ``grade_file`` would start it with these options; None where the file or the exercise cannot be
    told yet, or the child cannot start. The caller owns it: ``discard()`` it unless a grading used it."""
    if os.environ.get(HEAD_START_ENV, "1") == "0":
        return None
    try:
        source = read_source(path)
        if source.problem is not None:
            return None  # graded without a child
        glances = {glance.id: glance for glance in glance_at_exercises(roots)}
        glance = glances[pick_exercise(source, exercise_id, {g.id: g.entry_point for g in glances.values()})]
        iso = choose_isolation(isolation)
        job = submission_job(
            entry_point=glance.entry_point,
            preload=list(glance.preload),
            hidden=hidden_paths(glance.folder, glance.reference_path),
            iso=iso,
            cache_dir=usable_cache_dir(cache_dir)[0],
        )
        return spawn_child(job, iso)
    except Exception:  # noqa: BLE001 - any failure (a spec this cannot read, a link loop) only costs the head start
        return None
