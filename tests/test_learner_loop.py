"""The learner's loop: start, hint, grade an untouched starter, watch, and the notebook check."""

from __future__ import annotations

import io
import json
import os
import pty
import runpy
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.learner.state import load_state, next_hint, record_result, reset_hints
from grader.learner.watch import compare_runs, watch
from grader.pipeline.grading import GradeOptions, grade_file
from grader.render.terminal import make_console
from grader.report.schema import Report
from tests.conftest import ROOT, TOY_EXERCISES, cli_env

BUNDLED = sorted(p.parent.name for p in (ROOT / "exercises").glob("*/exercise.toml"))

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"
WRONG = "import numpy as np\n\ndef scale(factor, x):\n    return np.asarray(x, np.float32)\n"


def run_cli(cache_dir: Path, cwd: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(cache_dir, GRADER_DATA_DIR=str(data))
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_start_writes_a_starter_that_grades_as_not_attempted(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run_cli(cache_dir, tmp_path, data, "start", "train-eval-dropout")
    assert first.returncode == 0, first.stderr
    starter = tmp_path / "submissions" / "train_eval_dropout.py"
    assert "raise NotImplementedError" in starter.read_text()
    again = run_cli(cache_dir, tmp_path, data, "start", "train-eval-dropout")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert "raise NotImplementedError" in starter.read_text()
    # The JSON report and listing: rich text would wrap with the length of the folder it runs in.
    graded = run_cli(cache_dir, tmp_path, data, "grade", str(starter), "--format", "json")
    assert graded.returncode == 1, graded.stderr
    report = json.loads(graded.stdout)
    assert [d["code"] for d in report["diagnoses"]] == ["not-attempted"]
    assert report["message"].startswith("Not attempted yet") and "Traceback" not in graded.stdout
    listed = run_cli(cache_dir, tmp_path, data, "exercises", "--format", "json")
    last = {row["id"]: row["last_result"] for row in json.loads(listed.stdout)}["train-eval-dropout"]
    assert (last["status"], last["score"], last["max_score"]) == ("failed", 0, 22)


def test_hints_come_in_order_and_are_remembered(tmp_path: Path) -> None:
    hints = ["first", "second", "third"]
    assert next_hint("ex", hints, tmp_path) == (1, "first")
    assert next_hint("ex", hints, tmp_path) == (2, "second")
    assert load_state(tmp_path).hints_seen == {"ex": 2}
    assert next_hint("ex", hints, tmp_path) == (3, "third")
    assert next_hint("ex", hints, tmp_path) is None
    reset_hints("ex", tmp_path)
    assert next_hint("ex", hints, tmp_path) == (1, "first")


def test_hint_command_remembers_between_runs(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    outputs = [run_cli(cache_dir, tmp_path, data, "hint", "train-eval-dropout").stdout for _ in range(5)]
    assert [o.splitlines()[0] for o in outputs[:4]] == [f"Hint {i} of 4" for i in range(1, 5)]
    assert "seen all 4 hints" in outputs[4]
    assert (data / "state.json").exists()
    assert not list(tmp_path.glob("*.json")) and not (ROOT / "state.json").exists()  # nothing where it ran


def test_default_data_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from grader.learner.state import data_dir

    monkeypatch.delenv("GRADER_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data_dir() == tmp_path / "grader"


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    hints = [str(i) for i in range(200)]

    def take(n: int) -> None:
        for _ in range(n):
            next_hint("ex", hints, tmp_path)

    threads = [threading.Thread(target=take, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert load_state(tmp_path).hints_seen == {"ex": 100}


def test_a_partial_solution_is_not_called_not_attempted(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace(
        "def scale(factor, x):\n", "def scale(factor, x):\n    if factor > 2.5:\n        raise NotImplementedError\n"
    )
    report = grade_toy(source, tmp_path)
    assert [c.status for c in report.cases] == ["passed", "error", "passed"]  # factors 2, 3 and -1
    assert "not-attempted" not in [d.code for d in report.diagnoses]


def test_a_corrupt_state_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{broken")
    assert next_hint("ex", ["a"], tmp_path) == (1, "a")


def test_watch_regrades_on_save_and_reports_what_changed(cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "toy.py"
    path.write_text(WRONG)
    seen = []

    def on_report(report, changes) -> None:
        seen.append((report.status, changes))
        if len(seen) == 1:
            path.write_text(CORRECT)  # the watch is in place before the first grading: this save counts

    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES])
    console = make_console(color=False, file=io.StringIO())
    last = watch(path, exercise_id=None, options=options, console=console, max_runs=2, on_report=on_report)
    assert [status for status, _ in seen] == ["failed", "passed"]
    assert seen[1][1].newly_passing == ["first", "second", "third"] and seen[1][1].newly_failing == []
    assert last is not None and last.status == "passed"
    assert "Now passing: first, second, third" in console.file.getvalue()


def test_compare_runs_names_both_directions(cache_dir: Path, tmp_path: Path) -> None:
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES])
    path = tmp_path / "toy.py"
    path.write_text(CORRECT)
    good = grade_file(path, options=options)
    path.write_text(WRONG)
    bad = grade_file(path, options=options)
    assert compare_runs(good, bad).newly_failing == ["first", "second", "third"]
    assert compare_runs(bad, good).newly_passing == ["first", "second", "third"]
    assert compare_runs(None, good).empty


def test_results_are_remembered_per_exercise(cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "toy.py"
    path.write_text(CORRECT)
    report = grade_file(path, options=GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES]))
    record_result(report, tmp_path / "data")
    last = load_state(tmp_path / "data").last_results["toy-scale"]
    assert last.status == "passed" and last.score == last.max_score == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal end to end")
def test_watch_in_a_terminal(cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "toy.py"
    path.write_text(WRONG)
    env = cli_env(
        cache_dir,
        GRADER_EXERCISES=str(TOY_EXERCISES),
        GRADER_DATA_DIR=str(tmp_path / "data"),
        COLUMNS="100",
        TERM="xterm",
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "watch", str(path)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(follower)
    screen = b""

    def read_until(text: bytes, timeout: float = 90) -> bytes:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while text not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(leader, 65536)
                except OSError:
                    break
        assert text in screen, screen[-2000:]
        return screen

    try:
        read_until(b"Watching")
        assert b"FAILED" in screen and b"\x1b[" in screen  # colored: a real terminal
        screen = b""
        path.write_text(CORRECT)
        read_until(b"Now passing")
        assert b"PASSED" in screen
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # interrupted, as the exit codes say
        read_until(b"Stopped watching")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(leader)


def _notebook_correct(seed, x, train):
    import flax.linen as nn
    import jax

    class TrainEvalModel(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return nn.Dropout(0.5, deterministic=not train)(nn.Dense(x.shape[-1])(x))

    model, s = TrainEvalModel(), int(seed)
    variables = model.init({"params": jax.random.PRNGKey(s), "dropout": jax.random.PRNGKey(s + 1)}, x, train=False)
    print("called with", seed)
    return model.apply(variables, x, train=train >= 0.5, rngs={"dropout": jax.random.PRNGKey(s + 1)})


def _notebook_inverted(seed, x, train):
    import flax.linen as nn
    import jax

    class TrainEvalModel(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return nn.Dropout(0.5, deterministic=train)(nn.Dense(x.shape[-1])(x))

    model, s = TrainEvalModel(), int(seed)
    variables = model.init({"params": jax.random.PRNGKey(s), "dropout": jax.random.PRNGKey(s + 1)}, x, train=False)
    return model.apply(variables, x, train=train >= 0.5, rngs={"dropout": jax.random.PRNGKey(s + 1)})


def test_notebook_check_on_a_correct_and_a_wrong_function(cache_dir: Path) -> None:
    from grader import check

    out = io.StringIO()
    good = check(
        "train-eval-dropout",
        _notebook_correct,
        console=make_console(color=False, file=out),
        options=GradeOptions(cache_dir=cache_dir),
    )
    assert good.status == "passed" and good.environment.isolation == "in-process"
    assert good.cases[0].output.stdout.text == "called with 0.0\n"
    assert "PASSED" in out.getvalue()
    bad = check("train-eval-dropout", _notebook_inverted, display=False, options=GradeOptions(cache_dir=cache_dir))
    assert bad.status == "failed"
    assert bad.diagnoses[0].code == "deterministic-inverted"
    assert any("deterministic=train" in line.text for line in bad.diagnoses[0].lines)


def test_children_started_ahead_grade_like_fresh_ones(cache_dir: Path) -> None:
    """A warmed child (watch) must give the same verdicts and diagnoses as a cold one."""
    from grader.exercise.spec import get_exercise
    from grader.pipeline.grading import spawn_for

    options = GradeOptions(cache_dir=cache_dir)
    exercise = get_exercise("train-eval-dropout")
    for name, status, codes in (
        ("correct.py", "passed", []),
        ("wrong_inverted_flag.py", "failed", ["deterministic-inverted"]),
    ):
        spawned = spawn_for(exercise, options)
        report = grade_file(ROOT / "submissions" / name, options=options, spawned=spawned)
        assert spawned.used
        assert report.status == status and [d.code for d in report.diagnoses] == codes


def test_the_warm_up_runs_in_children_started_ahead(cache_dir: Path) -> None:
    from grader.exercise.spec import get_exercise
    from grader.pipeline.grading import _limits, _submission_job, spawn_for, wire_cases
    from grader.sandbox.process import run_child

    options = GradeOptions(cache_dir=cache_dir)
    exercise = get_exercise("train-eval-dropout")
    spawned = spawn_for(exercise, options)
    source = (ROOT / "submissions" / "correct.py").read_text()
    from grader.exercise.cases import build_cases

    job = _submission_job(
        exercise, source, "correct.py", wire_cases(exercise, build_cases(exercise)), spawned.isolation, options
    )
    run = run_child(job, _limits(exercise), spawned=spawned)
    assert run.hello is not None and run.hello.warmed is True
    assert run.ending == "completed" and len(run.results) == 20


CELL_MODEL = """
import flax.linen as nn

class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dropout(0.5, deterministic=train)(nn.Dense(x.shape[-1])(x))
"""
CELL_FUNCTION = """
import jax

def model_train_eval_forward(seed, x, train):
    model, s = TrainEvalModel(), int(seed)
    variables = model.init({"params": jax.random.PRNGKey(s), "dropout": jax.random.PRNGKey(s + 1)}, x, train=False)
    return model.apply(variables, x, train=train >= 0.5, rngs={"dropout": jax.random.PRNGKey(s + 1)})
"""


def test_check_points_at_a_model_defined_in_another_cell(cache_dir: Path) -> None:
    """As in Jupyter: each cell is a file of its own (in linecache), sharing one namespace."""
    import linecache

    from grader import check

    namespace: dict = {"__name__": "__main__"}
    for number, cell in enumerate((CELL_MODEL, CELL_FUNCTION)):
        filename = f"/tmp/ipykernel_0/cell-{number}-{id(namespace)}.py"
        linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
        exec(compile(cell, filename, "exec"), namespace)
    function = namespace["model_train_eval_forward"]
    report = check("train-eval-dropout", function, display=False, options=GradeOptions(cache_dir=cache_dir))
    assert report.diagnoses[0].code == "deterministic-inverted"
    assert any("deterministic=train" in line.text for line in report.diagnoses[0].lines)  # from the other cell
    assert report.submission.path == "model_train_eval_forward() (in this session)"
    expected = f"Report(exercise='train-eval-dropout', status='failed', score={report.score:g}/{report.max_score:g})"
    assert repr(report) == expected  # one line, not the whole model


# --- every bundled exercise: the learner's watch and check() -----------------------------------------------


def _exercise_functions(exercise_id: str) -> tuple[Callable, Callable, str]:
    """The exercise's reference entry point, one of its variants, and that variant's code, as functions
    defined in this session (the way a notebook holds them)."""
    from grader.exercise.spec import get_exercise

    exercise = get_exercise(exercise_id)
    reference = runpy.run_path(str(exercise.reference_path))[exercise.spec.entry_point.name]
    variants_file = exercise.catalog_file(exercise.catalog.variants)
    assert variants_file is not None
    mistake = exercise.catalog.mistake[0]
    variant = runpy.run_path(str(variants_file))[mistake.variants[0]]
    return reference, variant, mistake.code


@pytest.mark.parametrize("exercise_id", BUNDLED)
def test_check_grades_every_exercise_in_the_session(cache_dir: Path, exercise_id: str) -> None:
    from grader import check

    reference, variant, code = _exercise_functions(exercise_id)
    options = GradeOptions(cache_dir=cache_dir)
    good = check(exercise_id, reference, display=False, record=False, options=options)
    assert good.status == "passed" and good.score == good.max_score > 0, good.message
    assert good.environment.isolation == "in-process"
    bad = check(exercise_id, variant, display=False, record=False, options=options)
    assert bad.status == "failed", bad.message
    assert code in [d.code for d in bad.diagnoses]


@pytest.mark.parametrize("exercise_id", BUNDLED)
def test_watch_takes_every_exercise_from_starter_to_solution(cache_dir: Path, tmp_path: Path, exercise_id: str) -> None:
    """The learner's path: ``grader start``'s file is not attempted yet; saving a solution passes."""
    from grader.exercise.spec import get_exercise

    exercise = get_exercise(exercise_id)
    path = tmp_path / "solution.py"
    path.write_text(exercise.starter_text(), encoding="utf-8")
    seen: list[Report] = []

    def on_report(report: Report, _changes: object) -> None:
        seen.append(report)
        if len(seen) == 1:
            path.write_text(exercise.reference_path.read_text(encoding="utf-8"), encoding="utf-8")

    console = make_console(color=False, file=io.StringIO())
    options = GradeOptions(cache_dir=cache_dir)
    watch(path, exercise_id=None, options=options, console=console, max_runs=2, on_report=on_report)
    assert [r.exercise.id for r in seen] == [exercise_id] * 2
    assert seen[0].status != "passed" and "not-attempted" in [d.code for d in seen[0].diagnoses]
    assert seen[1].status == "passed", seen[1].message
    assert f"Now passing: {seen[1].cases[0].id}" in console.file.getvalue()
