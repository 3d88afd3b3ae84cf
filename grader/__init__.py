"""A grader for JAX/Flax coding exercises: runs a learner's file in isolation, compares it with a
reference on seeded cases, and explains what is wrong.

Stages, in the one direction imports go: ``cli`` -> ``grading`` -> (``exercise``, ``cases``, ``source``,
``sandbox``, ``reference``, ``judge``, ``compare``, ``diagnose``) -> ``schema``. Renderers in ``render``
read a finished ``schema.Report`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real imports wait for the first call: ``import grader`` stays light
    from rich.console import Console

    from grader.pipeline.grading import GradeOptions
    from grader.report.schema import Report

__all__ = ["__version__", "check"]

__version__ = "0.1.0"


def check(
    exercise_id: str,
    function: Callable,
    *,
    display: bool = True,
    console: Console | None = None,
    options: GradeOptions | None = None,
    record: bool = True,
    seed: int | None = None,
) -> Report:
    """Grades a function object from a notebook and shows the report: ``check("train-eval-dropout", f)``.

    The same signature as ``grader.learner.notebook.check``, which does the work."""
    from grader.learner.notebook import check as _check

    return _check(exercise_id, function, display=display, console=console, options=options, record=record, seed=seed)
