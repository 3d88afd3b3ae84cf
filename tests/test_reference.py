"""Expected outputs: computed by the reference in its own process, cached by everything they depend on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.exercise.cases import build_cases
from grader.exercise.spec import load_exercise
from grader.pipeline.grading import GradeOptions, grade_file
from grader.pipeline.reference import cache_key
from tests.conftest import FIXTURES, ROOT, SUBMISSIONS, cli_env, copy_toy_exercise, isolation_levels

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    copy_toy_exercise(tmp_path)
    (tmp_path / "s.py").write_text(CORRECT)
    return tmp_path


def _grade(toy: Path, cache: Path | None):
    options = GradeOptions(cache_dir=cache, exercise_roots=[toy / "exercises"])
    return grade_file(toy / "s.py", options=options)


def test_second_run_hits_the_cache(toy: Path) -> None:
    cache = toy / "cache"
    assert _grade(toy, cache).environment.reference_cache == "miss"
    assert _grade(toy, cache).environment.reference_cache == "hit"
    assert _grade(toy, None).environment.reference_cache == "off"


def test_corrupt_entries_are_recomputed(toy: Path) -> None:
    cache = toy / "cache"
    _grade(toy, cache)
    (entry,) = (cache / "reference").glob("*.json")
    entry.write_text("{not json")
    report = _grade(toy, cache)
    assert report.environment.reference_cache == "miss" and report.status == "passed"


def test_a_forged_entry_with_another_key_is_not_used(toy: Path) -> None:
    cache = toy / "cache"
    _grade(toy, cache)
    (entry,) = (cache / "reference").glob("*.json")
    entry.write_text(entry.read_text().replace('"key":"', '"key":"0', 1))
    assert _grade(toy, cache).environment.reference_cache == "miss"


def test_key_follows_reference_source_and_cases(toy: Path) -> None:
    exercise = load_exercise(toy / "exercises" / "toy-scale")
    before = cache_key(exercise, build_cases(exercise))
    reference = toy / "reference" / "toy_scale.py"
    reference.write_text(reference.read_text() + "\n# changed\n")
    assert cache_key(exercise, build_cases(exercise)) != before
    spec = toy / "exercises" / "toy-scale" / "exercise.toml"
    spec.write_text(spec.read_text().replace("factor = 2.0", "factor = 2.5"))
    changed = load_exercise(toy / "exercises" / "toy-scale")
    assert cache_key(changed, build_cases(changed)) != cache_key(exercise, build_cases(exercise))


def test_bundled_reference_gives_full_marks_and_its_worked_example(grade) -> None:
    report = grade(Path(__file__).resolve().parent.parent / "reference" / "train_eval_dropout.py")
    assert report.status == "passed" and report.score == report.max_score
    train = next(c for c in report.cases if c.id == "worked-example/train")
    evaluation = next(c for c in report.cases if c.id == "worked-example/eval")
    assert train.comparison and evaluation.comparison
    kept = [r for r in train.comparison.rows if r.expected != 0]
    assert 0 < len(kept) < 4  # dropout is active: some units dropped, some kept
    for row in kept:
        partner = evaluation.comparison.rows[row.index]
        assert np.isclose(row.expected, 2 * partner.expected)


def test_bundled_correct_example_is_not_the_reference() -> None:
    assert (SUBMISSIONS / "correct.py").read_text() != (
        FIXTURES.parent.parent / "reference" / "train_eval_dropout.py"
    ).read_text()


@pytest.mark.parametrize(
    ("body", "runs"),
    [
        ("    raise RuntimeError('broken')\n", 1),  # fails the same way every time: run once
        ("    import os\n    os._exit(3)\n", 2),  # ended early, which load can cause: tried again
    ],
)
def test_a_failing_reference_runs_again_only_when_it_ended_early(
    toy: Path, monkeypatch: pytest.MonkeyPatch, body: str, runs: int
) -> None:
    import grader.pipeline.reference as reference
    from grader.errors import ReferenceSolutionError
    from grader.pipeline.grading import wire_cases

    (toy / "reference" / "toy_scale.py").write_text("def scale(factor, x):\n" + body)
    exercise = load_exercise(toy / "exercises" / "toy-scale")
    cases = build_cases(exercise)
    started = []
    real_run_child = reference.run_child
    monkeypatch.setattr(reference, "run_child", lambda *a, **k: started.append(1) or real_run_child(*a, **k))
    runner = reference.TrustedRunner()  # as a batch holds one
    for _ in range(2):
        with pytest.raises(ReferenceSolutionError):
            reference.run_reference(
                exercise, cases, wire_cases(exercise, cases), env={}, cache_dir=toy / "cache", runner=runner
            )
    assert len(started) == runs
    # A runner of its own (the next save under watch, another check() in a notebook) runs it again.
    with pytest.raises(ReferenceSolutionError):
        reference.run_reference(exercise, cases, wire_cases(exercise, cases), env={}, cache_dir=toy / "cache")
    assert len(started) == runs + 1


@pytest.mark.parametrize("level", isolation_levels())
def test_a_cache_folder_that_cannot_be_made_is_graded_without(toy: Path, level: str) -> None:
    """A cache only saves time: one that cannot be created (below a file, so even root cannot) is left off,
    alone or in a batch, and the report says so instead of every submission becoming a fault."""
    (toy / "file").write_text("not a folder")
    unusable = toy / "file" / "cache"
    (toy / "class").mkdir()
    for name in ("a.py", "b.py"):
        (toy / "class" / name).write_text(CORRECT)
    env = cli_env(toy / "unused", GRADER_CACHE_DIR=str(unusable), GRADER_EXERCISES=str(toy / "exercises"))
    for target in (toy / "s.py", toy / "class"):
        command = [sys.executable, "-m", "grader", "grade", str(target), "-f", "json", "--isolation", level]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        reports = [e["report"] for e in document["submissions"]] if document.get("kind") == "batch" else [document]
        assert len(reports) == (2 if target.name == "class" else 1)
        for report in reports:
            assert report["status"] == "passed"
            assert report["environment"]["reference_cache"] == "off"
            assert "graded without the cache" in report["environment"]["cache_detail"]
            assert str(unusable) in report["environment"]["cache_detail"]
    assert (toy / "file").read_text() == "not a folder"


def test_a_usable_cache_leaves_no_note(toy: Path) -> None:
    report = _grade(toy, toy / "cache")
    assert report.environment.reference_cache == "miss" and report.environment.cache_detail == ""
    assert not [p for p in (toy / "cache").iterdir() if p.is_file()]  # the probe left nothing behind
