"""Every installed exercise, checked as a whole: its reference, graded as a learner's file, gets full marks,
and each variant of its catalog, graded as a learner's file, fails with the code of its mistake.

A variant is graded from the variants file itself with the entry point bound to it
(``ENTRY = variant``), so a variants file must be self-contained, like a learner's. Each exercise's files
are graded together, as one batch, the first time one of them is asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.exercise.spec import Exercise, discover_exercises
from grader.pipeline.grading import GradeOptions
from grader.report.schema import Report
from tests.conftest import grade_as_batch

EXERCISES = discover_exercises()
REFERENCE = "reference"


def _variants(exercise: Exercise) -> dict[str, set[str]]:
    """Each variant, and the codes of the mistakes that name it."""
    named: dict[str, set[str]] = {}
    for mistake in exercise.catalog.mistake:
        for variant in mistake.variants:
            named.setdefault(variant, set()).add(mistake.code)
    return named


CHECKS = [(e.id, REFERENCE) for e in EXERCISES.values()] + [
    (e.id, variant) for e in EXERCISES.values() for variant in sorted(_variants(e))
]


class _Graded:
    def __init__(self, cache_dir: Path, folder: Path) -> None:
        self._cache_dir, self._folder = cache_dir, folder
        self._reports: dict[str, dict[str, Report]] = {}

    def report(self, exercise_id: str, name: str) -> Report:
        if exercise_id not in self._reports:
            self._reports[exercise_id] = self._grade(EXERCISES[exercise_id])
        return self._reports[exercise_id][name]

    def _grade(self, exercise: Exercise) -> dict[str, Report]:
        folder = self._folder / exercise.id
        folder.mkdir()
        files = {REFERENCE: folder / f"{REFERENCE}.py"}
        files[REFERENCE].write_text(exercise.reference_path.read_text(encoding="utf-8"), encoding="utf-8")
        variants_file = exercise.catalog_file(exercise.catalog.variants)
        for variant in _variants(exercise):
            assert variants_file is not None
            files[variant] = folder / f"{variant}.py"
            text = variants_file.read_text(encoding="utf-8")
            files[variant].write_text(f"{text}\n\n{exercise.spec.entry_point.name} = {variant}\n", encoding="utf-8")
        by_path = grade_as_batch(list(files.values()), GradeOptions(cache_dir=self._cache_dir), exercise.id)
        return {name: by_path[path] for name, path in files.items()}


@pytest.fixture(scope="session")
def graded(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> _Graded:
    return _Graded(cache_dir, tmp_path_factory.mktemp("exercise-checks"))


@pytest.mark.parametrize(("exercise_id", "name"), CHECKS, ids=[f"{e}/{n}" for e, n in CHECKS])
def test_reference_passes_and_each_variant_fails_with_its_code(exercise_id: str, name: str, graded: _Graded) -> None:
    report = graded.report(exercise_id, name)
    if name == REFERENCE:
        assert report.status == "passed", report.message
        assert report.score == report.max_score > 0
        return
    codes = _variants(EXERCISES[exercise_id])[name]
    assert report.status == "failed", report.message
    assert report.score < report.max_score
    assert codes & {d.code for d in report.diagnoses}, ([d.code for d in report.diagnoses], codes)


def test_every_exercise_has_a_catalog_with_variants() -> None:
    """The bundled family teaches by naming mistakes: each exercise ships a catalog whose variants it checks."""
    assert {e.id: bool(_variants(e)) for e in EXERCISES.values()} == {e: True for e in EXERCISES}
