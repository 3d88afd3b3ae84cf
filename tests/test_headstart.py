"""``grader grade FILE``'s head start: the child starts before the grading pipeline is imported, from a first
look at the specs; grading uses it only where it was made exactly as grading would make it, and the command
leaves none behind, whatever the grading comes to.

Mostly on the jax-free toy exercise; every bundled exercise is checked for a child made as grading makes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import GradeOptions, _submission_job, grade_file
from grader.pipeline.headstart import HEAD_START_ENV, head_start
from grader.pipeline.recipe import usable_cache_dir
from grader.sandbox.start import SpawnedChild
from tests.conftest import HOSTILE_TIMEOUT_S, ROOT, TOY_EXERCISES, cli_env, copy_toy_exercise, isolation_levels

pytestmark = [pytest.mark.usefixtures("contained"), pytest.mark.timeout(HOSTILE_TIMEOUT_S)]

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"


def _file(tmp_path: Path, text: str, name: str = "submission.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _made_as_grading_makes(child: SpawnedChild, exercise_id: str, options: GradeOptions) -> bool:
    exercise = discover_exercises(options.exercise_roots)[exercise_id]
    options = GradeOptions(cache_dir=usable_cache_dir(options.cache_dir)[0], exercise_roots=options.exercise_roots)
    return child.fits(_submission_job(exercise, "", "", [], child.isolation, options), child.isolation)


@pytest.mark.parametrize(
    ("modules", "heavy"),
    [
        # what runs before the child starts: the launcher's first look and the head start
        ("grader.cli.launch, grader.pipeline.headstart", "numpy, pydantic, rich, jax, typer"),
        # what grade imports before it hands the child its job
        ("grader.cli.app, grader.cli.runs, grader.cli.outputs, grader.pipeline.shard", "numpy, pydantic, rich, jax"),
    ],
)
def test_the_command_line_and_the_head_start_import_nothing_heavy(modules: str, heavy: str) -> None:
    """What runs before the child starts stays light: the point of the head start."""
    code = f"import sys, {modules}; print(sorted(set({heavy.split(', ')!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("level", isolation_levels())
def test_every_exercise_gets_a_child_made_as_grading_makes_it(level: str, tmp_path: Path, cache_dir: Path) -> None:
    roots = {None: discover_exercises(), (TOY_EXERCISES,): discover_exercises([TOY_EXERCISES])}
    for root, exercises in roots.items():
        options = GradeOptions(cache_dir=cache_dir, exercise_roots=list(root) if root else None)
        for exercise in exercises.values():
            path = _file(tmp_path, f"def {exercise.spec.entry_point.name}(*args):\n    return None\n")
            child = head_start(
                path, exercise_id=None, cache_dir=cache_dir, isolation=level, roots=options.exercise_roots
            )
            assert child is not None, exercise.id
            try:
                assert child.isolation.level == level
                assert _made_as_grading_makes(child, exercise.id, options), exercise.id
            finally:
                child.discard()


@pytest.mark.parametrize("level", isolation_levels())
def test_grading_runs_in_the_head_start_child(level: str, tmp_path: Path, cache_dir: Path) -> None:
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
    path = _file(tmp_path, CORRECT)
    child = head_start(path, exercise_id=None, cache_dir=cache_dir, isolation=level, roots=[TOY_EXERCISES])
    assert child is not None
    try:
        report = grade_file(path, options=options, spawned=child)
        # its grading ran in it to the end (a child found not to fit is discarded: killed by a signal)
        assert child.used and child.proc.returncode == 0
    finally:
        child.discard()  # does nothing to a child its grading used
    assert report.status == "passed" and report.environment.isolation == level
    alone = grade_file(path, options=options)
    assert [(c.id, c.status) for c in report.cases] == [(c.id, c.status) for c in alone.cases]


def test_a_child_made_otherwise_is_left_unused(tmp_path: Path, cache_dir: Path) -> None:
    """A guess that turns out wrong (here: made without the compilation cache grading gives the child) is
    ended, and grading starts a child of its own."""
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation="process")
    path = _file(tmp_path, CORRECT)
    child = head_start(path, exercise_id="toy-scale", cache_dir=None, isolation="process", roots=[TOY_EXERCISES])
    assert child is not None
    try:
        assert not _made_as_grading_makes(child, "toy-scale", options)
        report = grade_file(path, options=options, spawned=child)
        # ended as soon as it was found not to fit: used up, its process collected, its folder gone
        assert child.used and child.proc.returncode is not None and not os.path.exists(child.run_dir)
    finally:
        child.discard()  # what a caller does with a child left unused: here it does nothing
    assert report.status == "passed"


@pytest.mark.parametrize(
    ("started", "asked"), [(a, b) for a in isolation_levels() for b in isolation_levels() if a != b]
)
def test_a_child_at_another_isolation_level_is_never_used(
    started: str, asked: str, tmp_path: Path, cache_dir: Path
) -> None:
    """However it came to be started, a child sandboxed otherwise than the grading asks is ended, and the
    file is graded at the level asked (a weaker sandbox must never stand in for a stronger one)."""
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=asked)
    path = _file(tmp_path, CORRECT)
    child = head_start(path, exercise_id="toy-scale", cache_dir=cache_dir, isolation=started, roots=[TOY_EXERCISES])
    assert child is not None and child.isolation.level == started
    try:
        report = grade_file(path, options=options, spawned=child)
        assert child.used and child.proc.returncode is not None and child.proc.returncode != 0  # ended unused
    finally:
        child.discard()
    assert report.status == "passed" and report.environment.isolation == asked


@pytest.mark.parametrize(
    ("text", "exercise_id", "made_for"),
    [
        ("def scale(:\n", None, None),  # does not parse: graded without a child
        (CORRECT, "no-such-exercise", None),  # refused
        ("def other():\n    pass\n", None, "scale"),  # no known entry point, the toy the only exercise: graded
    ],
)
def test_a_head_start_only_where_grading_will_start_a_child(
    text: str, exercise_id: str | None, made_for: str | None, tmp_path: Path, cache_dir: Path
) -> None:
    path = _file(tmp_path, text)
    child = head_start(path, exercise_id=exercise_id, cache_dir=cache_dir, isolation="process", roots=[TOY_EXERCISES])
    try:
        assert (child.template.entry_point if child and child.template else None) == made_for
    finally:
        if child is not None:
            child.discard()


def test_the_head_start_can_be_turned_off(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HEAD_START_ENV, "0")
    path = _file(tmp_path, CORRECT)
    assert head_start(path, exercise_id=None, cache_dir=cache_dir, isolation="process", roots=[TOY_EXERCISES]) is None


@pytest.mark.parametrize(
    ("case", "expected_exit"),
    [("passes", 0), ("fails", 1), ("does-not-parse", 1), ("spec-invalid", 3), ("unknown-exercise", 2)],
)
def test_the_command_leaves_no_child_and_no_folder_behind(
    case: str, expected_exit: int, tmp_path: Path, cache_dir: Path
) -> None:
    """Whatever the grading comes to, the child started ahead is used or ended, its folders removed (the
    ``contained`` fixture checks that no process is left)."""
    spec_folder = copy_toy_exercise(tmp_path / "course")
    if case == "spec-invalid":  # a spec the first look reads, that loading refuses: the child is already started
        spec = spec_folder / "exercise.toml"
        spec.write_text(spec.read_text(encoding="utf-8") + "\nunknown_field = 1\n", encoding="utf-8")
    text = {"fails": CORRECT.replace("factor)", "factor + 1)"), "does-not-parse": "def scale(:\n"}.get(case, CORRECT)
    path = _file(tmp_path, text)
    temp = tmp_path / "temp"
    temp.mkdir()
    command = [sys.executable, "-m", "grader", "grade", str(path), "--format", "json", "--isolation", "process"]
    if case == "unknown-exercise":
        command += ["--exercise", "no-such-exercise"]
    env = cli_env(cache_dir, GRADER_EXERCISES=str(spec_folder.parent), TMPDIR=str(temp))
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == expected_exit, result.stderr[-2000:]
    if expected_exit in (0, 1):
        assert json.loads(result.stdout)["exercise"]["id"] == "toy-scale"
    assert sorted(p.name for p in temp.iterdir() if p.name.startswith("grader-")) == []


def test_a_head_start_gives_the_same_report_as_none(tmp_path: Path, cache_dir: Path) -> None:
    """The bundled example through the command, with and without a head start: the same verdicts."""
    shutil.copy(ROOT / "submissions" / "correct.py", tmp_path / "correct.py")
    reports = []
    for setting in ("1", "0"):
        env = cli_env(cache_dir, **{HEAD_START_ENV: setting})
        command = [sys.executable, "-m", "grader", "grade", "correct.py", "--format", "json"]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(result.stdout)
        reports.append((report["status"], report["score"], [(c["id"], c["status"]) for c in report["cases"]]))
    assert reports[0] == reports[1]
