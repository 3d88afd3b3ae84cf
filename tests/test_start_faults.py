"""A child that cannot start is a fault of the grader (exit 3, with the cause), never the learner's verdict;
a submission that ends its own process is still the learner's (``exited``, exit 1).

The harness says hello before it reads its job, so a child without a hello ran no submission code: only
then is its failure the grader's.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from grader.errors import SandboxError
from grader.pipeline.grading import GradeOptions, grade_file
from grader.sandbox.isolation import choose_isolation
from tests.conftest import HOSTILE_TIMEOUT_S, ROOT, TOY_EXERCISES, cli_env

pytestmark = [pytest.mark.usefixtures("contained"), pytest.mark.timeout(HOSTILE_TIMEOUT_S)]

CORRECT = """
import numpy as np

def scale(factor, x):
    return (np.asarray(x) * np.float32(factor)).astype(np.float32)
"""
# A bubblewrap that works for the grader's probe (``bwrap ... -- /bin/true``) and cannot start anything else,
# as bwrap does when the interpreter's path does not exist inside the sandbox. Its message carries an
# escape sequence, which must reach the terminal escaped.
FAKE_BWRAP = """#!/bin/sh
for last; do :; done
if [ "$last" = /bin/true ]; then exit 0; fi
printf 'bwrap: execvp /opt/py/../bin/python: No such file or directory\\033[31m\\n' >&2
exit 1
"""


def grade_cli(cache_dir: Path, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), **env),
        timeout=HOSTILE_TIMEOUT_S,
        cwd=ROOT,
    )


def test_a_sandbox_that_cannot_start_is_a_fault_with_its_cause(cache_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bwrap = bin_dir / "bwrap"
    bwrap.write_text(FAKE_BWRAP)
    bwrap.chmod(bwrap.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    submission = tmp_path / "submission.py"
    submission.write_text(CORRECT)

    result = grade_cli(
        cache_dir, submission, GRADER_ISOLATION="bwrap", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    )

    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout == ""
    assert "the child process did not start (exited" in result.stderr
    assert "bwrap: execvp /opt/py/../bin/python: No such file or directory" in result.stderr
    assert "\x1b" not in result.stderr and "\\x1b[31m" in result.stderr
    assert "submission ended the process" not in result.stderr


def test_os_exit_at_import_is_still_the_learners(cache_dir: Path, tmp_path: Path) -> None:
    submission = tmp_path / "submission.py"
    submission.write_text("import os\nos._exit(3)\n" + CORRECT)

    result = grade_cli(cache_dir, submission)

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "error"
    assert [d["code"] for d in report["diagnoses"]] == ["exited"]
    assert "while importing the submission (exit status 3)" in report["diagnoses"][0]["message"]


@pytest.mark.skipif(choose_isolation("auto").level != "bwrap", reason="bubblewrap does not work here")
def test_an_interpreter_path_bwrap_cannot_exec_is_a_sandbox_error(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same interpreter through a folder the sandbox does not hold: the kernel resolves the ``..`` out
    # here (the reference runs), bwrap cannot inside.
    outside = tmp_path / "not-in-the-sandbox"
    outside.mkdir()
    monkeypatch.setattr(sys, "executable", str(outside) + "/.." * (len(outside.parts) - 1) + sys.executable)
    submission = tmp_path / "submission.py"
    submission.write_text(CORRECT)
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation="bwrap")

    with pytest.raises(SandboxError, match=r"did not start \(exited.*bwrap: execvp .*/not-in-the-sandbox/\.\./"):
        grade_file(submission, exercise_id="toy-scale", options=options)
