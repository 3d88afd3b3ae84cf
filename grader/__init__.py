"""A grader for JAX/Flax coding exercises: runs a learner's file in isolation, compares it with a
reference on seeded cases, and explains what is wrong.

Stages, in the one direction imports go: ``cli`` -> ``grading`` -> (``exercise``, ``cases``, ``source``,
``sandbox``, ``reference``, ``judge``, ``compare``, ``diagnose``) -> ``schema``. Renderers in ``render``
read a finished ``schema.Report`` and nothing else.
"""

__all__ = ["__version__", "check"]

__version__ = "0.1.0"


def check(exercise_id: str, function: object, **options: object) -> object:
    """Grades a function object from a notebook and shows the report: ``check("train-eval-dropout", f)``."""
    from grader.learner.notebook import check as _check

    return _check(exercise_id, function, **options)
