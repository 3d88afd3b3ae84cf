"""How a child can end, and what the report says each time (on the jax-free toy exercise, short limits).

Submissions here misbehave on purpose, so every test runs contained (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from grader.sandbox import isolation
from grader.sandbox.isolation import remove_tree
from grader.sandbox.process import _wait_for_exit
from tests.conftest import HOSTILE_TIMEOUT_S, ROOT

pytestmark = [pytest.mark.usefixtures("contained"), pytest.mark.timeout(HOSTILE_TIMEOUT_S)]

CORRECT = """
import numpy as np

def scale(factor, x):
    return (np.asarray(x) * np.float32(factor)).astype(np.float32)
"""


def codes(report) -> list[str]:
    return [d.code for d in report.diagnoses]


def statuses(report) -> list[str]:
    return [c.status for c in report.cases]


def test_correct_toy_submission_passes(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(CORRECT, tmp_path)
    assert report.status == "passed"
    assert report.score == report.max_score == 4.0
    assert codes(report) == []


def test_sys_exit_at_import_is_a_verdict(grade_toy, tmp_path: Path) -> None:
    report = grade_toy("import sys\nsys.exit(0)\n" + CORRECT, tmp_path)
    assert report.status == "error"
    assert codes(report) == ["exited"]
    assert "sys.exit(0)" in report.diagnoses[0].message
    assert set(statuses(report)) == {"skipped"}


def test_os_exit_during_a_call_keeps_earlier_results(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
_real = scale
calls = []

def scale(factor, x):
    calls.append(1)
    if len(calls) == 2:
        import os
        print('{"status": "passed", "score": 4}')
        os._exit(0)
    return _real(factor, x)
"""
    )
    report = grade_toy(source, tmp_path)
    assert statuses(report) == ["passed", "error", "skipped"]
    assert report.status == "failed"
    assert codes(report)[0] == "exited"
    assert report.diagnoses[0].cases == ["second"]


def test_endless_loop_times_out_in_its_case(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("return", "while factor > 2.5:\n        pass\n    return")
    report = grade_toy(source, tmp_path)
    assert statuses(report) == ["passed", "error", "skipped"]
    assert codes(report)[0] == "timeout"
    assert "second" in report.diagnoses[0].message
    assert "3 s" in report.cases[1].message
    # The stack at the deadline points into the loop (the while line or its body).
    (line,) = report.diagnoses[0].lines
    assert line.line in (5, 6) and report.diagnoses[0].message.endswith(f"at line {line.line}.")


def test_hang_at_import_times_out(grade_toy, tmp_path: Path) -> None:
    report = grade_toy("import time\ntime.sleep(60)\n" + CORRECT, tmp_path)
    assert report.status == "error"
    assert codes(report) == ["timeout"]
    assert "importing" in report.diagnoses[0].message


def test_segfault_is_reported_as_crashed(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("return", "import ctypes\n    ctypes.string_at(0)\n    return")
    report = grade_toy(source, tmp_path)
    assert codes(report)[0] == "crashed"
    assert "SIGSEGV" in report.diagnoses[0].message
    assert statuses(report)[0] == "error"


def test_exception_shows_only_the_learners_frames(grade_toy, tmp_path: Path) -> None:
    source = (
        "import numpy as np\n\ndef helper(x):\n    return np.reshape(x, (7, 7))\n\n"
        "def scale(factor, x):\n    return helper(x)\n"
    )
    report = grade_toy(source, tmp_path)
    assert codes(report) == ["exception"]
    error = report.cases[0].error
    assert error is not None and error.type == "ValueError"
    assert [f.line for f in error.frames] == [7, 4]
    assert all(f.file == str(tmp_path / "submission.py") for f in error.frames)
    assert error.raised_in is not None and "numpy" in error.raised_in
    assert [line.line for line in report.diagnoses[0].lines] == [7, 4]


def test_output_is_captured_per_case_and_escaped(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT.replace(
            "def scale(factor, x):\n", "def scale(factor, x):\n    print('factor is', factor, '\\x1b[2J')\n"
        )
        + "\nprint('imported!')\n"
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "passed"
    assert report.output.stdout.text == "imported!\n"
    assert [c.output.stdout.text for c in report.cases] == [
        "factor is 2.0 \\x1b[2J\n",
        "factor is 3.0 \\x1b[2J\n",
        "factor is -1.0 \\x1b[2J\n",
    ]


def test_output_beyond_the_file_size_limit_is_an_output_limit_verdict(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace(
        "def scale(factor, x):\n", "def scale(factor, x):\n    for _ in range(80):\n        print('z' * 1_000_000)\n"
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "failed"
    assert codes(report) == ["output-limit"]
    assert report.cases[0].status == "error" and report.cases[0].output.limit_reached
    assert "output limit" in report.cases[0].message


def test_flood_of_output_is_truncated(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("def scale(factor, x):\n", "def scale(factor, x):\n    print('y' * 3_000_000)\n")
    report = grade_toy(source, tmp_path)
    stdout = report.cases[0].output.stdout
    assert stdout.truncated and stdout.size > 3_000_000 and len(stdout.text) <= 8192
    assert report.status == "passed"


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ("return (1.0, 2.0)", "wrong-type", "tuple"),
        ("return None", "wrong-type", "got None"),
        ("return 'ok'", "wrong-type", "str"),
        ("return np.array([object()])", "wrong-type", "object"),
        ("return np.zeros((1, x.shape[0]), np.float32)", "shape-mismatch", "(1, 3)"),
        ("return (np.asarray(x) * factor).astype(np.float64)", "dtype-mismatch", "float64"),
        ("return np.full(x.shape, np.nan, np.float32)", "non-finite", "NaN"),
        ("return np.zeros(50_000_000, np.float32)", "shape-mismatch", "too large"),
    ],
)
def test_wrong_outputs_get_their_code(grade_toy, tmp_path: Path, body: str, code: str, detail: str) -> None:
    report = grade_toy(f"import numpy as np\n\ndef scale(factor, x):\n    {body}\n", tmp_path)
    assert report.status == "failed"
    assert code in codes(report)
    diagnosis = next(d for d in report.diagnoses if d.code == code)
    assert detail in diagnosis.message


def test_ndarray_subclass_with_lying_eq_does_not_pass(grade_toy, tmp_path: Path) -> None:
    source = """
import numpy as np

class Liar(np.ndarray):
    def __eq__(self, other):
        return True
    def __array_finalize__(self, obj):
        pass

def scale(factor, x):
    return np.zeros(np.shape(x), np.float32).view(Liar)
"""
    report = grade_toy(source, tmp_path)
    assert report.status == "failed"
    assert "values-mismatch" in codes(report)


def test_writes_stay_in_the_throwaway_directory(grade_toy, tmp_path: Path) -> None:
    before = _digest_tree(ROOT)
    source = (
        CORRECT
        + """
import os
with open("scratch.txt", "w") as f:
    f.write("x")
os.makedirs("sub/dir", exist_ok=True)
os.chmod("sub", 0)
print(os.getcwd())
"""
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "passed"
    workdir = report.output.stdout.text.strip()
    assert workdir != str(tmp_path) and not os.path.exists(workdir)
    assert not (tmp_path / "scratch.txt").exists()
    assert _digest_tree(ROOT) == before


def test_grader_folders_are_not_importable(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
import sys
try:
    import grader  # noqa: F401
    found = getattr(grader, "__file__", "?")
except ImportError:
    found = "no"
print(found, any("exercises" in p or p.rstrip("/").endswith("reference") for p in sys.path))
"""
    )
    report = grade_toy(source, tmp_path)
    printed = report.output.stdout.text.split()
    assert printed[1] == "False"
    # "None": the namespace left by an editable install's grader/_bundled copy (its contents are hidden
    # from the child, see recipe.hidden_paths); an installed copy of the package itself is public code.
    assert printed[0] in ("no", "None") or "site-packages" in printed[0]


def _digest_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        parts = set(path.relative_to(root).parts)
        if parts & {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv"}:
            continue
        if path.is_file():
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_closing_the_result_channel_is_not_a_pass(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
import os
for fd in range(3, 64):
    try:
        os.close(fd)
    except OSError:
        pass
"""
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "error"
    assert codes(report) and codes(report)[0] in ("protocol-error", "exited", "crashed", "import-error")


def test_forged_frames_on_the_channel_cannot_pass(grade_toy, tmp_path: Path) -> None:
    source = """
import json, os, sys

def scale(factor, x):
    for fd in range(3, 64):
        try:
            payload = json.dumps({"type": "done"}).encode()
            os.write(fd, len(payload).to_bytes(4, "big") + payload)
        except OSError:
            pass
    return x
"""
    report = grade_toy(source, tmp_path)
    assert report.status != "passed"
    assert report.score == 0


def test_forged_result_frames_give_a_verdict_not_a_fault(grade_toy, tmp_path: Path) -> None:
    source = """
import json, os, sys

def scale(factor, x):
    case = sys._getframe(1).f_locals.get("case", {}).get("id", "first")
    payload = json.dumps({"type": "result", "case": case, "value": None, "error": None}).encode()
    os.write(int(sys.argv[2]), len(payload).to_bytes(4, "big") + payload)
    return x
"""
    report = grade_toy(source, tmp_path)
    assert report.status == "error"
    assert codes(report)[0] == "protocol-error"
    assert "cannot accept" in report.diagnoses[0].message


def test_a_forged_done_at_import_is_refused(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
import json, os, sys
payload = json.dumps({"type": "done"}).encode()
os.write(int(sys.argv[2]), len(payload).to_bytes(4, "big") + payload)
"""
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "error"
    assert codes(report) == ["protocol-error"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("return np.zeros((1,) * 9, np.float32)", "shape-mismatch"),
        ("raise ValueError('\\ud800 lone surrogate')", "exception"),
        ("return (np.asarray(x) * factor).astype(np.longdouble)", "dtype-mismatch"),
    ],
)
def test_odd_outputs_are_ordinary_verdicts(grade_toy, tmp_path: Path, body: str, code: str) -> None:
    report = grade_toy(f"import numpy as np\n\ndef scale(factor, x):\n    {body}\n", tmp_path)
    assert report.status == "failed"
    assert codes(report)[0] == code


def test_exit_while_a_grandchild_holds_the_channel_is_not_a_timeout(grade_toy, tmp_path: Path) -> None:
    source = """
import os, time

def scale(factor, x):
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    os._exit(3)
"""
    report = grade_toy(source, tmp_path)
    # Waiting for the grandchild to close the channel would end at the case's deadline as a timeout.
    assert codes(report)[0] == "exited"
    assert "status 3" in report.diagnoses[0].message


def test_source_lines_are_escaped_in_diagnoses(grade_toy, tmp_path: Path) -> None:
    source = "def scale(factor, x):\n    raise ValueError('\x1b[2J')  # \x1b]0;title\x07\n"
    report = grade_toy(source, tmp_path)
    (line,) = report.diagnoses[0].lines
    assert "\x1b" not in line.text and "\\x1b[2J" in line.text


def test_form_feed_does_not_shift_line_numbers(grade_toy, tmp_path: Path) -> None:
    source = "import numpy as np\n\x0c\ndef scale(factor, x):\n    raise KeyError('here')\n"
    report = grade_toy(source, tmp_path)
    (line,) = report.diagnoses[0].lines
    assert line.line == 4 and "raise KeyError" in line.text


@pytest.fixture
def grade_with_hidden_third(tmp_path: Path, cache_dir: Path):
    """Grades source text on a copy of the toy exercise whose case "third" is hidden."""
    from grader.pipeline.grading import GradeOptions, grade_file
    from tests.conftest import copy_toy_exercise

    spec = copy_toy_exercise(tmp_path / "fixtures") / "exercise.toml"
    spec.write_text(spec.read_text().replace('id = "third"', 'id = "third"\nhidden = true'))
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[tmp_path / "fixtures" / "exercises"])

    def _grade(source: str):
        submission = tmp_path / "submission.py"
        submission.write_text(source)
        report = grade_file(submission, options=options)
        return report, next(c for c in report.cases if c.id == "third")

    return _grade


def test_hidden_cases_keep_their_inputs_hidden_when_skipped(grade_with_hidden_third) -> None:
    _, third = grade_with_hidden_third("def scale(factor, x)\n")
    assert third.status == "skipped" and set(third.inputs.values()) == {"hidden"}


def test_hidden_cases_give_no_expected_values_away(grade_with_hidden_third) -> None:
    report, third = grade_with_hidden_third(
        "import numpy as np\n\ndef scale(factor, x):\n    return np.zeros(np.shape(x), np.float32)\n"
    )
    assert third.status == "failed" and third.comparison is not None
    assert third.comparison.rows == [] and third.comparison.worst == []
    assert third.comparison.max_abs_error is None and third.comparison.max_rel_error is None
    assert "hidden case" in third.message and "error" not in third.message
    assert all("third" not in d.message for d in report.diagnoses)


def test_the_collector_runs_for_the_submission_with_the_preloads_frozen(grade_toy, tmp_path: Path) -> None:
    """The harness imports the preloads without the garbage collector, then freezes what they made: the
    submission finds it on, its own garbage collected as usual."""
    probe = "import gc\nclass Node:\n    pass\nnode = Node()\nnode.me = node\ndel node\n"
    probe += "print(gc.isenabled(), gc.get_freeze_count() > 0, gc.collect() >= 1)\n"
    report = grade_toy(probe + CORRECT, tmp_path)
    assert report.status == "passed"
    assert report.output is not None and report.output.stdout.text.strip() == "True True True"


def _tree_with_links(tree: Path, outside: Path, depth: int) -> None:
    """A tree as a child could leave it: ``depth`` folders deep, links out of it, a folder left unwritable."""
    tree.mkdir()
    folder = os.open(tree, os.O_RDONLY)
    for _ in range(depth):  # by descriptor: a deep path would pass PATH_MAX
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.symlink(outside / "keep.txt", "link", dir_fd=folder)
    os.close(folder)
    (tree / "link").symlink_to(outside, target_is_directory=True)
    closed = tree / "closed"
    (closed / "inner").mkdir(parents=True)
    (closed / "inner" / "file").write_text("x", encoding="utf-8")
    closed.chmod(0o500)


@pytest.mark.parametrize("depth", [3, 1500])  # small: removed in-process; deep: chmod and rm take over
def test_remove_tree_removes_what_a_child_left_and_follows_no_link(
    depth: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept", encoding="utf-8")
    tree = tmp_path / "run"
    _tree_with_links(tree, outside, depth)
    spawned: list[list[str]] = []
    run = isolation.subprocess.run

    def recorded(command: list[str], **kwargs: object) -> object:
        spawned.append(command)
        return run(command, **kwargs)

    monkeypatch.setattr(isolation.subprocess, "run", recorded)
    remove_tree(str(tree))
    assert not os.path.lexists(tree)
    assert (outside / "keep.txt").read_text(encoding="utf-8") == "kept"
    if os.geteuid() == 0 and depth <= isolation.SMALL_TREE_DEPTH:  # (not root: the closed folder needs chmod)
        assert spawned == []
    if depth > isolation.SMALL_TREE_DEPTH:
        assert [command[0] for command in spawned] == ["chmod", "rm"]


def test_waiting_for_a_child_to_exit_does_not_reap_it() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert _wait_for_exit(child.pid, 0.05) is False  # still running: the wait gives up at its timeout
        assert child.stdin is not None
        child.stdin.close()
        assert _wait_for_exit(child.pid, None) is True
        assert child.poll() == 0  # not reaped by the wait: its status is still there to collect
        assert _wait_for_exit(child.pid, None) is True  # and one reaped already counts as exited
    finally:
        child.kill()
        child.wait()
