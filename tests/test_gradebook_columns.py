"""The gradebook's ``student`` column, and faults that keep the exercise's max score."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import grader.pipeline.batch
from grader.errors import SandboxError
from grader.pipeline.batch import grade_batch
from grader.pipeline.grading import GradeOptions
from grader.render.batch import GRADEBOOK_COLUMNS, gradebook_csv, render_gradebook, student_names
from grader.report.schema import BatchEntry
from tests.conftest import TOY_EXERCISES

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"


@pytest.mark.parametrize(
    ("paths", "students"),
    [
        (["class/alice/hw1.py", "class/bob/hw1.py"], ["alice", "bob"]),
        (["class/alice/deep/hw1.py", "class/bob/hw1.py"], ["alice", "bob"]),
        (["class/alice.py", "class/bob.py"], ["alice", "bob"]),
        (["class/alice.py", "class/bob/hw1.py"], ["alice", "bob"]),
        (["/abs/carol.py", "dave.py"], ["carol", "dave"]),
        (["only/one/file.py"], ["file"]),
    ],
)
def test_student_is_the_folder_below_the_class_folder_or_the_stem(paths: list[str], students: list[str]) -> None:
    assert [student_names(paths)[p] for p in paths] == students


def test_the_student_column_comes_last_and_the_others_keep_their_places() -> None:
    assert GRADEBOOK_COLUMNS[:11] == (
        "submission",
        "exercise",
        "status",
        "score",
        "max_score",
        "percent",
        "diagnosis",
        "message",
        "duration_s",
        "sha256",
        "report_file",
    )
    assert GRADEBOOK_COLUMNS[-1] == "student"


def test_students_stay_the_same_while_the_batch_grows() -> None:
    everyone = ["class/alice/hw1.py", "class/bob/hw1.py"]
    first = BatchEntry(path=everyone[0], status="passed", message="ok")

    rows = list(csv.DictReader(gradebook_csv([first], paths=everyone).splitlines()))

    assert rows[0]["student"] == "alice"  # not "hw1", as alice's folder alone would make it


@pytest.mark.slow
def test_gradebook_of_a_class_folder_and_a_fault_with_its_max_score(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "class" / "alice" / "scale.py").write_text(CORRECT)
    (tmp_path / "class" / "bob.py").write_text(CORRECT)
    real = grader.pipeline.batch.grade_file

    def grade_file(path: Path, **kwargs):
        if path.name == "bob.py":
            raise SandboxError("the child could not be started")
        return real(path, **kwargs)

    monkeypatch.setattr(grader.pipeline.batch, "grade_file", grade_file)
    files = [tmp_path / "class" / "alice" / "scale.py", tmp_path / "class" / "bob.py"]
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES])

    batch = grade_batch(files, exercise_id="toy-scale", options=options, jobs=1)

    rows = {row["student"]: row for row in csv.DictReader(render_gradebook(batch).splitlines())}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["status"] == "passed" and rows["alice"]["max_score"] == "4"
    assert rows["bob"]["status"] == "fault"
    assert rows["bob"]["max_score"] == rows["alice"]["max_score"]  # a fault counts in the percentages
    assert rows["bob"]["score"] == "0" and rows["bob"]["percent"] == "0"
