"""Hostile submissions, under every isolation level this machine offers, each in a child started fresh and
in one forked from the fork server (as a batch's and a watch's children are).

Each attack must end in a verdict that is not a pass and leave the repository unchanged. Attacks that
only stronger isolation stops (another uid, namespaces) are skipped, with the reason, where the grader
runs without it; SECURITY.md says the same. Every test runs contained (tests/conftest.py): a wall-clock
timeout, a cap on processes, and no process left alive after it. What is asserted never depends on the
machine's speed or load: a verdict, not how long it took.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import ChildStarter, GradeOptions, grade_file
from grader.render.terminal import make_console, render_report
from grader.report.schema import Report
from grader.sandbox.forks import ForkedChild
from grader.sandbox.isolation import Isolation, choose_isolation
from tests.conftest import FIXTURES, HOSTILE_TIMEOUT_S, ROOT, TOY_EXERCISES, isolation_levels

pytestmark = pytest.mark.timeout(HOSTILE_TIMEOUT_S)

CORRECT = """
import numpy as np

def scale(factor, x):
    return (np.asarray(x) * np.float32(factor)).astype(np.float32)
"""
ZEROS = """
import numpy as np

def scale(factor, x):
    return np.zeros(np.shape(x), np.float32)
"""


@pytest.fixture(params=isolation_levels())
def isolation(request: pytest.FixtureRequest) -> Isolation:
    return choose_isolation(request.param)


def strong(iso: Isolation) -> bool:
    """Whether the child is kept from the user's files and processes: namespaces or another uid."""
    return iso.level == "bwrap" or iso.drop_to is not None


@pytest.fixture(params=["fresh", "forked"])
def start(request: pytest.FixtureRequest) -> str:
    """How the child starts: a fresh interpreter (a single grading), or forked from the fork server."""
    if request.param == "forked" and not sys.platform.startswith("linux"):
        pytest.skip("the fork server needs a subreaper (Linux)")
    return request.param


@pytest.fixture(scope="module")
def repo_digest() -> str:
    return _digest_tree(ROOT)


@pytest.fixture
def attack(tmp_path: Path, cache_dir: Path, isolation: Isolation, start: str, repo_digest: str, contained: None):
    """Grades a hostile source on the toy exercise, then checks the verdict and the repository."""

    def _attack(source: str, *, may_pass: bool = False) -> Report:
        """``may_pass``: the submission computes the right outputs and attacks on the side."""
        path = tmp_path / "hostile.py"
        path.write_text(source, encoding="utf-8")
        options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=isolation.level)
        if start == "fresh":
            report = grade_file(path, exercise_id="toy-scale", options=options)
        else:
            starter = ChildStarter(options)
            child = starter.spawn(discover_exercises([TOY_EXERCISES])["toy-scale"])
            try:
                assert isinstance(child.proc, ForkedChild)  # not a fresh interpreter in its place
                report = grade_file(path, exercise_id="toy-scale", options=options, spawned=child)
            finally:
                child.discard()  # unless the grading used it (a file that does not parse leaves it unused)
                starter.close()
        assert report.status != "passed" or may_pass
        assert _digest_tree(ROOT) == repo_digest
        return report

    return _attack


def codes(report: Report) -> list[str]:
    return [d.code for d in report.diagnoses]


def test_a_correct_submission_passes_under_the_same_limits(attack, isolation: Isolation) -> None:
    report = attack(CORRECT, may_pass=True)
    assert report.status == "passed"
    assert report.environment.isolation == isolation.level


def test_patching_numpy_comparisons_changes_nothing(attack) -> None:
    report = attack(
        ZEROS
        + """
import numpy, numpy.testing
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.isclose = lambda a, b, *r, **k: numpy.ones(numpy.shape(a), bool)
numpy.testing.assert_allclose = lambda *a, **k: None
"""
    )
    assert "values-mismatch" in codes(report)


def test_patching_modules_named_grade_or_compare_changes_nothing(attack) -> None:
    report = attack(
        ZEROS
        + """
import sys
for name, module in list(sys.modules.items()):
    if module is not None and ("grade" in name or "compare" in name):
        for attr in dir(module):
            try:
                setattr(module, attr, lambda *a, **k: True)
            except Exception:
                pass
"""
    )
    assert report.status == "failed"


def test_fake_verdict_then_exit_zero(attack) -> None:
    report = attack(
        """
import os, sys
def scale(factor, x):
    sys.stdout.write('{"status": "passed", "score": 4, "max_score": 4}\\n')
    sys.stdout.flush()
    os._exit(0)
"""
    )
    assert report.status == "error" and codes(report)[0] == "exited"


def test_sleeping_times_out(attack) -> None:
    report = attack("import time\n\ndef scale(factor, x):\n    time.sleep(1000)\n")
    assert codes(report)[0] == "timeout"


def test_memory_without_end_is_a_memory_verdict(attack) -> None:
    # Steps of 4 GiB: the first is past the toy's 1 GiB limit, so it fails at once, however loaded the
    # machine (steps of 100 MB, each filled with zeros, can meet the case's deadline first under load).
    report = attack(
        "def scale(factor, x):\n    hoard = []\n    while True:\n        hoard.append(bytearray(4 << 30))\n"
    )
    assert codes(report)[0] in ("memory-limit", "crashed")


def test_memory_errors_caught_forever_time_out(attack) -> None:
    report = attack(
        """
def scale(factor, x):
    hoard = []
    while True:
        try:
            hoard.append(bytearray(10**8))
        except MemoryError:
            pass
"""
    )
    assert codes(report)[0] in ("timeout", "crashed", "memory-limit")


def test_fork_bomb_is_contained(attack, isolation: Isolation) -> None:
    if not strong(isolation) and os.geteuid() == 0:
        pytest.skip("as root without bwrap or another uid, no process limit applies (see SECURITY.md)")
    report = attack(
        """
import os
def scale(factor, x):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
    )
    assert codes(report)[0] in ("timeout", "crashed", "memory-limit")
    assert _processes_with("grader-run-") == []


def test_double_forked_daemon_does_not_survive(attack, isolation: Isolation) -> None:
    if not strong(isolation):
        pytest.skip("a daemon that leaves the session outlives a plain process (see SECURITY.md)")
    marker = "987.654"
    attack(
        CORRECT
        + f"""
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
""",
        may_pass=True,
    )
    assert _processes_with(marker) == []


def test_files_outside_the_workdir_stay_untouched(attack, isolation: Isolation, tmp_path: Path) -> None:
    if not strong(isolation):
        pytest.skip("the same user can write the user's files (see SECURITY.md)")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o666)
    report = attack(
        CORRECT
        + f"""
import os, sys
for folder in sys.path + [os.getcwd()]:
    for name in ("evil.py", "sitecustomize.py"):
        try:
            with open(os.path.join(folder, name), "w") as f:
                f.write("raise SystemExit")
        except OSError:
            pass
for target in ({str(victim)!r}, {str(ROOT / "README.md")!r}):
    try:
        open(target, "w").write("gone")
    except OSError:
        pass
    try:
        os.remove(target)
    except OSError:
        pass
print("done")
""",
        may_pass=True,
    )
    assert report.status == "passed"
    assert victim.read_text() == "precious"
    for folder in (Path(p) for p in sys.path if p):
        assert not (folder / "evil.py").exists()


def test_the_reference_cannot_be_found_on_disk(attack, isolation: Isolation) -> None:
    if isolation.level != "bwrap":
        pytest.skip("without bwrap the reference file is readable by path (see SECURITY.md)")
    known = [str(FIXTURES / "reference" / "toy_scale.py")]  # where the toy exercise's spec points
    # Where the reference can be: where the host keeps it, any installed data folder (share/jax-grader
    # under a prefix), or anywhere outside the system's and Python's libraries, which the walk leaves out
    # so that it ends well within a case's deadline. Walking more than the budget is a finding in itself.
    report = attack(
        f"""
import os, sys

KNOWN = {known!r}
PREFIXES = ["/usr", "/usr/local", sys.prefix, sys.base_prefix, sys.exec_prefix]
PRUNED = ("/proc", "/sys", "/dev", "/usr")
LIBRARIES = ("site-packages", "dist-packages", "__pycache__")

def _run(path, factor, x):
    namespace = {{}}
    exec(open(path).read(), namespace)
    return namespace["scale"](factor, x)

def _kept(root, name):
    path = os.path.join(root, name)
    library = name.startswith("python3") and os.path.basename(root) in ("lib", "lib64")
    return path not in PRUNED and name not in LIBRARIES and not library

def scale(factor, x):
    installed = [os.path.join(p, "share", "jax-grader", "reference", "toy_scale.py") for p in PREFIXES]
    for path in KNOWN + installed:
        if os.path.isfile(path):
            return _run(path, factor, x)
    budget = 5000
    for top in ("/", os.path.expanduser("~")):
        for root, dirs, files in os.walk(top):
            budget -= 1
            if budget < 0:
                raise OverflowError("the sandbox shows more than 5000 folders outside the libraries")
            if "toy_scale.py" in files:
                return _run(os.path.join(root, "toy_scale.py"), factor, x)
            dirs[:] = [d for d in dirs if _kept(root, d)]
    raise FileNotFoundError("no reference anywhere")
"""
    )
    assert report.status == "failed"
    assert "FileNotFoundError" in report.diagnoses[0].message


def test_expected_values_are_not_in_the_child(attack) -> None:
    report = attack(
        """
import gc, sys
import numpy as np

def scale(factor, x):
    for obj in gc.get_objects():
        if isinstance(obj, np.ndarray) and obj.shape == np.shape(x) and obj is not x:
            return obj.astype(np.float32)
    frame = sys._getframe()
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, dict) and "expected" in value:
                return value["expected"]
        frame = frame.f_back
    return np.zeros(np.shape(x), np.float32)
"""
    )
    assert report.status == "failed"


def test_a_gigabyte_to_stdout_is_cut_off(attack) -> None:
    report = attack("import sys\n\ndef scale(factor, x):\n    sys.stdout.write('x' * 10**9)\n")
    assert codes(report)[0] in ("output-limit", "memory-limit", "crashed")


def test_no_network(attack, isolation: Isolation) -> None:
    if isolation.level != "bwrap":
        pytest.skip("without bwrap the child shares the network (see SECURITY.md)")
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(15)
    port = server.getsockname()[1]

    def accept() -> None:
        try:
            connection, _ = server.accept()
            received.append(connection.recv(100))
        except OSError:
            pass

    listener = threading.Thread(target=accept, daemon=True)
    listener.start()
    report = attack(
        ZEROS
        + f"""
import socket
import tempfile
import sys
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
    print("connected")
except OSError as exc:
    print("refused", type(exc).__name__)
"""
    )
    server.close()
    listener.join(timeout=20)
    assert received == []
    assert report.output.stdout.text.startswith("refused")


def test_signalling_the_parent_does_not_stop_the_grader(attack, isolation: Isolation) -> None:
    if not strong(isolation):
        pytest.skip("the same user can signal the grader (see SECURITY.md)")
    report = attack(
        ZEROS
        + """
import os, signal
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):
    try:
        os.kill(os.getppid(), sig)
    except OSError:
        pass
"""
    )
    assert report.status in ("failed", "error")


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if marker.encode() in cmdline.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _digest_tree(root: Path) -> str:
    digest = hashlib.sha256()
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv"}
    for path in sorted(root.rglob("*")):
        if set(path.relative_to(root).parts) & skip or not path.is_file():
            continue
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_escape_sequences_in_names_never_reach_the_report(attack) -> None:
    report = attack(
        """
class T:
    pass

T.__qualname__ = "\\x1b[2J\\x1b[32m PASSED \\x1b]8;;http://x/\\x1b\\\\"
globals()["\\x1b[31mEVIL"] = print

def scale(factor, x):
    exec(compile("raise ValueError('x')", "\\x1b[41mBAD_FILE", "exec")) if factor > 2.5 else None
    return T()
"""
    )
    assert report.status == "failed"
    text = report.model_dump_json()
    assert "\\u001b" not in text and "\x1b" not in text  # JSON would write a raw ESC as \u001b
    assert "\\\\x1b[2J" in text  # shown escaped instead
    rendered = io.StringIO()
    render_report(report, make_console(color=False, file=rendered))
    assert "\x1b" not in rendered.getvalue()


def test_forged_frames_with_huge_numbers_give_a_verdict(attack) -> None:
    report = attack(
        """
import os, sys, json

def _frame(message):
    payload = json.dumps(message).encode()
    return len(payload).to_bytes(4, "big") + payload

def scale(factor, x):
    forged = {"type": "result", "case": "first", "output_limit": True, "error": {"type": "OSError", "message": "x"},
              "stdout": {"text": "", "size": 10**400, "truncated": True}}
    os.write(int(sys.argv[2]), _frame(forged) + _frame({"type": "done"}))
    os._exit(0)
"""
    )
    assert codes(report)[0] == "protocol-error"


def test_a_deep_directory_tree_is_cleaned_up(attack) -> None:
    report = attack(
        CORRECT
        + """
import os
here = os.getcwd()
print(here)
for _ in range(1200):
    os.mkdir("d")
    os.chdir("d")
os.chdir(here)
os.symlink("/", "root-link")
""",
        may_pass=True,
    )
    assert report.status == "passed"
    workdir = report.output.stdout.text.strip()
    assert workdir.startswith(tempfile.gettempdir()) and not os.path.lexists(workdir)
