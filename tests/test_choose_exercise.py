"""Which exercise a file is graded against when none is named: the one whose entry point it defines, else the
one whose entry point it spells most nearly, else a usage error that lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.errors import UsageError
from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import resolve_exercise
from grader.pipeline.source import Source, parse_source

EXERCISES = discover_exercises()


def _source(body: str) -> Source:
    return parse_source(Path("submission.py"), body)


@pytest.mark.parametrize(
    ("defined", "chosen"),
    [
        ("model_train_eval_forward", "train-eval-dropout"),
        ("model_train_eval_fwd", "train-eval-dropout"),
        ("Model_Train_Eval_Forward", "train-eval-dropout"),
        ("batchnorm_train_eval_forwrd", "train-eval-batchnorm"),
        ("stochastic_depth_fwd", "stochastic-depth"),
    ],
)
def test_an_entry_point_or_a_near_spelling_chooses_the_exercise(defined: str, chosen: str) -> None:
    if chosen not in EXERCISES:
        pytest.skip(f"{chosen} is not installed")
    assert resolve_exercise(_source(f"def {defined}(seed, x, train):\n    pass\n"), None, EXERCISES).id == chosen


@pytest.mark.parametrize("defined", ["forward", "solve", "train_eval"])
def test_a_name_near_none_or_several_is_a_usage_error_listing_the_exercises(defined: str) -> None:
    if len(EXERCISES) < 2:
        pytest.skip("one exercise: every file is graded against it")
    with pytest.raises(UsageError, match="choose one with --exercise"):
        resolve_exercise(_source(f"def {defined}(seed, x, train):\n    pass\n"), None, EXERCISES)
