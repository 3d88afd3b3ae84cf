"""The Gradescope kit (examples/gradescope): the zip it builds, and run_autograder in a folder laid out as
Gradescope's /autograder, with the grader of this checkout. Every outcome must leave a valid results.json."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader.render.gradescope import render_gradescope
from grader.report.schema import (
    CaseResult,
    Diagnosis,
    Environment,
    ExerciseInfo,
    Report,
    SourceLine,
    SubmissionInfo,
)
from tests.conftest import ROOT, TOY_EXERCISES, cli_env

KIT = ROOT / "examples" / "gradescope"
SCHEMA = json.loads((ROOT / "docs" / "formats" / "gradescope-results.schema.json").read_text())
CORRECT = "import numpy as np\n\n\ndef scale(factor, x):\n    return (np.asarray(x) * factor).astype(np.float32)\n"
WRONG = "import numpy as np\n\n\ndef scale(factor, x):\n    return np.asarray(x) + factor\n"
HELPER = "def helper():\n    return 1\n"


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from the source tree (no network: nothing is downloaded or compiled), for the toy exercise."""
    out = tmp_path_factory.mktemp("zip") / "autograder.zip"
    env = {**os.environ, "GRADER_EXERCISES": str(TOY_EXERCISES), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(KIT / "make_autograder.py"), "toy-scale", "--out", str(out), "--project-source"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return out


def test_zip_has_the_two_scripts_at_its_root_executable(autograder_zip: Path) -> None:
    with zipfile.ZipFile(autograder_zip) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        config = json.loads(archive.read("autograder.json"))
    for name in ("setup.sh", "run_autograder"):
        assert name in modes, sorted(modes)
        assert stat.S_ISREG(modes[name]) and modes[name] & 0o111 == 0o111, oct(modes[name])
    assert "pick_and_grade.py" in modes and "project/pyproject.toml" in modes
    # The exercise and its reference, at the relative place the spec names it.
    assert {"exercises/toy-scale/exercise.toml", "reference/toy_scale.py"} <= set(modes)
    assert config == {"exercise": "toy-scale", "entry_point": "scale", "reference": "reference/toy_scale.py",
                      "max_score": 4.0}  # fmt: skip


def test_zip_builder_refuses_an_unknown_exercise(tmp_path: Path) -> None:
    env = {**os.environ, "GRADER_EXERCISES": str(TOY_EXERCISES), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(KIT / "make_autograder.py"), "no-such", "--out", str(tmp_path / "a.zip")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "no-such" in result.stderr
    assert not (tmp_path / "a.zip").exists()


@pytest.fixture
def autograder(autograder_zip: Path, tmp_path: Path, cache_dir: Path):
    """An /autograder folder: source/ unpacked from the zip, submission/ with the given files, results/.
    Returns a function that runs source/run_autograder and gives back the results.json it left."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
        for info in archive.infolist():
            (root / "source" / info.filename).chmod(info.external_attr >> 16 & 0o777)
    (root / "results").mkdir()
    wrapper = tmp_path / "grader-command"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m grader "$@"\n')
    wrapper.chmod(0o755)

    def _run(files: dict[str, str], **extra: str) -> dict:
        (root / "submission").mkdir()
        for name, text in files.items():
            (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "submission" / name).write_text(text, encoding="utf-8")
        settings = {"AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable, "GRADER": str(wrapper)}
        env = cli_env(cache_dir)
        env.pop("GRADER_EXERCISES", None)  # unless a test sets it: run_autograder's own default, source/exercises
        env.update({**settings, **extra})
        result = subprocess.run(
            [str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        results = json.loads((root / "results" / "results.json").read_text())
        jsonschema.validate(results, SCHEMA)
        return results

    return _run


def test_a_correct_file_with_any_name_gets_full_marks(autograder) -> None:
    results = autograder({"My Solution (2).py": CORRECT})
    assert results["score"] == 4.0
    assert [t["status"] for t in results["tests"]] == ["passed"] * 3
    assert "My Solution (2).py" in results["output"]


def test_a_wrong_file_gets_the_diagnosis_and_its_hint(autograder) -> None:
    results = autograder({"answer.py": WRONG})
    assert results["score"] == 0.0 and results["output_format"] == "md"
    assert "**values-mismatch**" in results["output"]
    assert "*hint*: Compare each step with the exercise text" in results["output"]


def test_a_syntax_error_shows_the_learners_line(autograder) -> None:
    results = autograder({"answer.py": "def scale(factor, x)\n    return x\n"})
    assert results["score"] == 0.0
    assert "**syntax-error**" in results["output"] and "   1 | def scale(factor, x)" in results["output"]


def test_of_two_files_the_one_defining_the_entry_point_is_graded(autograder) -> None:
    results = autograder({"helpers.py": HELPER, "work/solution.py": CORRECT})
    assert results["score"] == 4.0
    assert "`work/solution.py`" in results["output"]


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({}, "Your submission is empty"),
        ({"notes.txt": "hi"}, "no Python file (found: `notes.txt`)"),
        ({"work.ipynb": "{}"}, "You submitted a notebook (`work.ipynb`)"),
        ({"a.py": HELPER, "b.py": HELPER}, "None of your Python files (`a.py`, `b.py`) defines `scale`"),
        ({"a.py": CORRECT, "b.py": CORRECT}, "Several of your files define `scale`"),
    ],
    ids=["empty", "no-python", "notebook", "none-defines", "several-define"],
)
def test_what_cannot_be_graded_scores_zero_with_what_to_do(autograder, files: dict[str, str], words: str) -> None:
    results = autograder(files)
    assert results["score"] == 0.0
    assert words in results["output"], results["output"]
    assert results["tests"] == [
        {"name": "Submission", "status": "failed", "score": 0.0, "max_score": 4.0, "output": results["output"],
         "output_format": "md"}
    ]  # fmt: skip


def test_a_grader_fault_scores_zero_and_says_it_is_not_the_students(autograder, tmp_path: Path) -> None:
    failing = tmp_path / "failing-grader"
    failing.write_text("#!/bin/sh\necho 'spec error: something' >&2\nexit 3\n")
    failing.chmod(0o755)
    results = autograder({"answer.py": CORRECT}, GRADER=str(failing))
    assert results["score"] == 0.0
    assert "not of your code" in results["output"]


def test_a_broken_exercise_is_a_fault_too(autograder, tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "toy-scale"
    broken.mkdir(parents=True)
    (broken / "exercise.toml").write_text('id = "toy-scale"\ntitle = 3\n')
    results = autograder({"answer.py": CORRECT}, GRADER_EXERCISES=str(broken.parent))
    assert results["score"] == 0.0 and "not of your code" in results["output"]


def test_without_any_python_to_run_the_fallback_still_writes_results(autograder, tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # what the script needs from PATH, and no python3
    bare.mkdir()
    for tool in ("bash", "mkdir", "cat"):
        (bare / tool).symlink_to(shutil.which(tool))
    results = autograder({"answer.py": CORRECT}, AUTOGRADER_PYTHON="/nonexistent/python", PATH=str(bare))
    assert results["score"] == 0.0 and "could not run" in results["output"]


def _report(**fields) -> Report:
    base = {
        "exercise": ExerciseInfo(id="toy-scale", title="Scale", entry_point="scale"),
        "submission": SubmissionInfo(path="answer.py"),
        "status": "failed",
        "score": 1.0,
        "max_score": 2.0,
        "message": "1 of 2 cases passed (score 1 of 2).",
        "environment": Environment(python="3.11", platform="linux", grader="0.1.0", isolation="process"),
    }
    return Report(**{**base, **fields})


def test_the_summary_names_the_mistake_with_lines_and_hint_but_no_hidden_detail() -> None:
    hidden = CaseResult(
        id="secret", title="t", status="failed", hidden=True, weight=1.0, score=0.0,
        inputs={"x": "f32[3] [7, 7, 7]"}, message="SECRET-DETAIL expected 21.0",
    )  # fmt: skip
    diagnosis = Diagnosis(
        code="factor-ignored",
        message="You add <factor>.",
        hint="Multiply by `factor`.",
        lines=[SourceLine(line=4, text="    return x + factor  # ``` fence", column=14)],
        cases=["secret"],
    )
    results = json.loads(render_gradescope(_report(cases=[hidden], diagnoses=[diagnosis])))
    jsonschema.validate(results, SCHEMA)
    output = results["output"]
    assert results["output_format"] == "md"
    assert "**factor-ignored**: You add &lt;factor&gt;." in output
    assert "*hint*: Multiply by `factor`." in output
    assert "````python\n   4 |     return x + factor  # ``` fence\n" in output  # a fence the line cannot close
    assert "SECRET-DETAIL" not in output and "7, 7, 7" not in output
    assert results["tests"][0]["visibility"] == "after_published"
