"""What a grading leaves behind and what it reads, under every isolation level this machine offers:
links are never read through, a submission never runs as root, and nothing it started outlives it,
whether the grading ends, is interrupted, or the grader is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.errors import SandboxError
from grader.pipeline.grading import GradeOptions, grade_file
from grader.sandbox import isolation as isolation_module
from grader.sandbox.isolation import ALLOW_ROOT_ENV, SANDBOX_UID, UidLease, choose_isolation
from tests.conftest import ROOT, TOY_EXERCISES, cli_env, isolation_levels
from tests.test_hostile import CORRECT, _processes_with

SECRET = "TOP-SECRET-LINE-4711 = ("  # a syntax error, so that a diagnosis would quote the line


def _grader(cache_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "grader", "grade", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=cli_env(cache_dir), timeout=300)


def _toy(level: str) -> list[str]:
    return ["--exercise", "toy-scale", "--isolation", level, "-f", "json"]


@pytest.fixture(autouse=True)
def _toy_exercises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_EXERCISES", str(TOY_EXERCISES))


@pytest.mark.parametrize("level", isolation_levels())
def test_links_are_refused_and_never_read(tmp_path: Path, cache_dir: Path, level: str) -> None:
    reference = ROOT / "tests" / "fixtures" / "reference" / "toy_scale.py"
    secret = tmp_path / "secrets.txt"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "solution.py").write_text(CORRECT, encoding="utf-8")
    (tmp_path / "solution.py").symlink_to(reference)
    (tmp_path / "leak.py").symlink_to(secret)
    (tmp_path / "mallory").symlink_to(tmp_path / "alice")
    os.mkfifo(tmp_path / "pipe.py")  # opening it must not hang

    for name in ("solution.py", "leak.py", "mallory/solution.py", "pipe.py"):
        result = _grader(cache_dir, name, *_toy(level), cwd=tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == ""  # no report: nothing was graded
        assert "TOP-SECRET" not in result.stderr and "def scale" not in result.stderr
    assert "symbolic link" in _grader(cache_dir, "mallory/solution.py", *_toy(level), cwd=tmp_path).stderr

    graded = _grader(cache_dir, "alice/solution.py", *_toy(level), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr  # the file itself, where it lies, is graded


@pytest.mark.parametrize("level", isolation_levels())
def test_a_shell_expanded_batch_skips_linked_folders(tmp_path: Path, cache_dir: Path, level: str) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "solution.py").write_text(CORRECT, encoding="utf-8")
    (tmp_path / "trudy").mkdir()
    (tmp_path / "trudy" / "src").symlink_to(ROOT / "tests" / "fixtures" / "reference")
    (tmp_path / "mallory").symlink_to(tmp_path / "alice")
    gradebook = tmp_path / "grades.csv"
    paths = ["alice/solution.py", "mallory/solution.py", "trudy/src/toy_scale.py"]
    result = _grader(cache_dir, *paths, *_toy(level), "--gradebook", str(gradebook), cwd=tmp_path)
    import json

    batch = json.loads(result.stdout)
    status = {entry["path"]: entry["status"] for entry in batch["submissions"]}
    assert status == {
        "alice/solution.py": "passed",
        "mallory/solution.py": "skipped",
        "trudy/src/toy_scale.py": "skipped",
    }


def test_a_submission_never_runs_as_root(tmp_path: Path, cache_dir: Path) -> None:
    """As root at the process level, even with the Python environment under a folder others cannot enter
    (as with a pyenv under /root here), the child runs as a uid of its own."""
    if os.geteuid() != 0:
        pytest.skip("the grader is not root here: children keep the grader's own user")
    path = tmp_path / "whoami.py"
    path.write_text(CORRECT + "\nimport os\nprint('uid', os.getuid(), os.geteuid())\n", encoding="utf-8")
    for level in isolation_levels():
        options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
        report = grade_file(path, exercise_id="toy-scale", options=options)
        assert report.status == "passed"
        printed = report.output.stdout.text.split()
        assert printed[0] == "uid" and int(printed[1]) != 0 and int(printed[2]) != 0, printed


def test_root_children_are_refused_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the environment cannot be opened up to another uid, the grader stops with a fault that says
    how to fix it; running as root needs an explicit opt-in, which the report states."""
    monkeypatch.setattr(isolation_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(isolation_module, "world_readable", lambda _path: False)
    monkeypatch.setattr(isolation_module, "_can_open_up", lambda _paths: False)
    monkeypatch.delenv(ALLOW_ROOT_ENV, raising=False)
    with pytest.raises(SandboxError, match=f"refusing to run a submission as root.*{ALLOW_ROOT_ENV}=1"):
        choose_isolation("process")
    monkeypatch.setenv(ALLOW_ROOT_ENV, "1")
    iso = choose_isolation("process")
    assert iso.drop_to is None and "RUNS AS ROOT" in iso.description
    monkeypatch.setattr(isolation_module, "_can_open_up", lambda _paths: True)
    opened = choose_isolation("process")
    assert opened.drop_to is not None and opened.reach


def test_uid_leases_are_exclusive_and_reused() -> None:
    first = UidLease.take()
    second = UidLease.take()
    try:
        assert first.uid != second.uid
        assert {first.uid, second.uid} <= set(range(SANDBOX_UID - 64, SANDBOX_UID + 1))
    finally:
        second.release()
        first.release()
    again = UidLease.take()
    again.release()
    assert again.uid == first.uid  # the first free uid is taken again


DAEMON = (
    CORRECT
    + """
import os, time
for folder in ("/tmp", "/dev/shm"):  # under bwrap both are the sandbox's own (or not writable)
    try:
        open(f"{folder}/grader-left-{tag}", "w").write("x")
    except OSError:
        pass
if os.fork() == 0:
    os.setsid()
    while True:  # a new pid every few milliseconds, each in a session of its own
        if os.fork():
            os._exit(0)
        os.setsid()
        time.sleep(0.005)
        os.kill(-1, 0)
"""
)


def _uid_processes(uid: int) -> list[int]:
    return [pid for pid, _parent in isolation_module._processes_of(uid)]


@pytest.mark.parametrize("level", isolation_levels())
def test_a_daemon_that_changes_pid_dies_with_its_grading(tmp_path: Path, cache_dir: Path, level: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("without root, children keep the grader's user: no uid of their own to clear (see SECURITY.md)")
    tag = f"{level}-{os.getpid()}"
    path = tmp_path / "daemon.py"
    path.write_text(DAEMON.replace("{tag}", tag), encoding="utf-8")
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
    report = grade_file(path, exercise_id="toy-scale", options=options)
    assert report.status == "passed"  # it computes the right outputs; the daemon is on the side
    uid = int(report.environment.isolation_detail.split("uid ")[1].split(";")[0])
    assert _uid_processes(uid) == []
    assert not Path(f"/tmp/grader-left-{tag}").exists()
    assert not Path(f"/dev/shm/grader-left-{tag}").exists()
    # The next grading, on the same uid, is not disturbed by anything the first one left.
    correct = tmp_path / "correct.py"
    correct.write_text(CORRECT, encoding="utf-8")
    assert grade_file(correct, exercise_id="toy-scale", options=options).status == "passed"


HANG = """
import subprocess
subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
def scale(factor, x):
    while True:
        pass
"""


def _wait_for(predicate, limit_s: float = 60.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("target", "how"),
    [("file", signal.SIGINT), ("file", signal.SIGTERM), ("file", signal.SIGKILL), ("batch", signal.SIGKILL)],
)
@pytest.mark.parametrize("level", isolation_levels())
def test_nothing_outlives_a_stopped_or_killed_grader(
    tmp_path: Path, cache_dir: Path, level: str, target: str, how: int
) -> None:
    """A file's child starts fresh; a batch's are forked from the fork server (under bubblewrap, each into a
    sandbox that a process of the grader's holds open)."""
    if level == "process" and os.geteuid() != 0:
        pytest.skip("as the grader's own user a process in a session of its own can outlive it (see SECURITY.md)")
    marker = f"{1000 + os.getpid() % 1000}.{int(how)}{len(level)}{len(target)}"
    path = tmp_path / "class" / "hang.py" if target == "batch" else tmp_path / "hang.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(HANG.replace("{marker}", marker), encoding="utf-8")
    graded = path.parent if target == "batch" else path
    command = [sys.executable, "-m", "grader", "grade", str(graded), *_toy(level), "--no-cache"]
    temp = tmp_path / "temp"  # the grader's temporary folder: the children's run folders go here
    temp.mkdir()
    env = cli_env(cache_dir, TMPDIR=str(temp))
    grader = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: bool(_processes_with(marker))), "the submission never started"
        grader.send_signal(how)
        grader.wait(timeout=60)
        assert _wait_for(lambda: not _processes_with(marker), 20.0), "a process of the submission outlived the grader"
        if target == "file" and how != signal.SIGKILL:  # stopped, not killed: as Ctrl-C, and cleaned up
            assert grader.returncode == 130
            assert [p.name for p in temp.iterdir() if p.name.startswith("grader-")] == []
        if level == "bwrap":  # the next grading clears what bwrap itself left (a sandbox init without parent)
            correct = tmp_path / "correct.py"
            correct.write_text(CORRECT, encoding="utf-8")
            options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
            assert grade_file(correct, exercise_id="toy-scale", options=options).status == "passed"
            assert isolation_module.clear_orphaned_sandboxes() == []
    finally:
        if grader.poll() is None:
            grader.kill()
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("level", isolation_levels())
def test_a_classmates_file_is_out_of_reach_under_bwrap(tmp_path: Path, cache_dir: Path, level: str) -> None:
    if level != "bwrap":
        pytest.skip("at the process level a world-readable file of a classmate can be read (see SECURITY.md)")
    classmate = tmp_path / "bob" / "solution.py"
    classmate.parent.mkdir()
    classmate.write_text("CLASSMATE-SECRET = 1\n", encoding="utf-8")
    classmate.chmod(0o644)
    snoop = CORRECT + (
        f"\ntry:\n    print(open({str(classmate)!r}).read())\n"
        "except OSError as exc:\n    print('no', type(exc).__name__)\n"
    )
    path = tmp_path / "alice.py"
    path.write_text(snoop, encoding="utf-8")
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
    report = grade_file(path, exercise_id="toy-scale", options=options)
    assert report.status == "passed"
    assert "CLASSMATE-SECRET" not in report.output.stdout.text and "no " in report.output.stdout.text


def test_several_folders_under_one_closed_folder_are_opened_up(tmp_path: Path) -> None:
    """The environment and the trusted compilation cache can both lie under /root: each is reached."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only a root grader drops the child to another uid")
    closed = tmp_path / "closed"
    for inner in ("env/lib", "cache/grader/xla"):
        (closed / inner).mkdir(parents=True)
    closed.chmod(0o700)
    probe = [sys.executable, "-I", str(isolation_module.HARNESS), "--probe-reach", str(SANDBOX_UID), "65534"]
    # The interpreter's own closed folders too: the probe checks it can still run Python afterwards.
    probe += [str(p) for p in isolation_module.environment_paths() if not isolation_module.world_readable(p)]
    if subprocess.run([*probe, str(closed / "env/lib")], capture_output=True).returncode != 0:
        pytest.skip("this kernel refuses a mount namespace here")
    result = subprocess.run([*probe, str(closed / "env/lib"), str(closed / "cache/grader/xla")], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


def test_leases_are_shared_whatever_the_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two graders with other TMPDIRs (a test's, a CI step's) must not hand out the same uid."""
    import tempfile

    first = UidLease.take()
    try:
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        monkeypatch.setattr(tempfile, "tempdir", None)
        second = UidLease.take()
        second.release()
        assert second.uid != first.uid
    finally:
        first.release()
