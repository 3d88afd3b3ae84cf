"""The fork server: children forked from a process that imported the preloads once grade as fresh ones do,
are the grader's own children, and leave nothing behind; under bubblewrap each is in a sandbox of its
own, as a fresh child is; a server that fails costs only its head start.

On the jax-free toy exercise (a server preloads numpy), and once on the bundled exercise (jax and flax).
The hostile submissions of tests/test_hostile.py run in forked children too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.errors import SandboxError
from grader.exercise.spec import discover_exercises, get_exercise
from grader.pipeline.grading import ChildStarter, GradeOptions, _ahead_job, grade_file
from grader.sandbox import forks
from grader.sandbox.forks import ForkedChild, ForkServer
from grader.sandbox.isolation import choose_isolation
from tests.conftest import HOSTILE_TIMEOUT_S, ROOT, TOY_EXERCISES, isolation_levels

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server needs a subreaper (Linux)"),
    pytest.mark.usefixtures("contained"),
    pytest.mark.timeout(HOSTILE_TIMEOUT_S),
]

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"
WRONG = "import numpy as np\n\ndef scale(factor, x):\n    return np.asarray(x, np.float32)\n"
# Leaves a daemon behind (its own session, the parent gone): the grading's end must still take it away.
DAEMON = CORRECT + "\nimport os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(600)\n"


def _toy(cache_dir: Path, level: str = "process") -> tuple[GradeOptions, object]:
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], isolation=level)
    return options, discover_exercises([TOY_EXERCISES])["toy-scale"]


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def _threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.parametrize("level", isolation_levels())
@pytest.mark.parametrize(("source", "status"), [(CORRECT, "passed"), (WRONG, "failed"), (DAEMON, "passed")])
def test_a_forked_child_is_the_graders_own_and_grades_as_a_fresh_one(
    cache_dir: Path, tmp_path: Path, source: str, status: str, level: str
) -> None:
    options, exercise = _toy(cache_dir, level)
    path = tmp_path / "toy.py"
    path.write_text(source)
    starter = ChildStarter(options)
    try:
        child = starter.spawn(exercise)  # type: ignore[arg-type]
        assert isinstance(child.proc, ForkedChild)
        assert _parent_of(child.proc.pid) == os.getpid()  # handed over: supervised like a child started here
        forked = grade_file(path, exercise_id="toy-scale", options=options, spawned=child)
    finally:
        starter.close()
    fresh = grade_file(path, exercise_id="toy-scale", options=options)
    assert forked.status == fresh.status == status
    assert [(c.id, c.status) for c in forked.cases] == [(c.id, c.status) for c in fresh.cases]
    assert [d.code for d in forked.diagnoses] == [d.code for d in fresh.diagnoses]
    assert forked.environment.isolation == fresh.environment.isolation == level


# What a child can see of the machine, printed as one line of JSON when the submission is imported.
PROBE = (
    CORRECT
    + """
import json, os


def changeable(path):
    try:
        os.chmod(path, os.stat(path).st_mode & 0o7777)  # the same mode: nothing changes if it works
    except OSError:
        return False
    return True


status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "root": sorted(os.listdir("/")),
    "tmp": os.listdir("/tmp"),
    "processes": len([name for name in os.listdir("/proc") if name.isdigit()]),
    "mnt": os.stat("/proc/self/ns/mnt").st_ino,
    "net": os.stat("/proc/self/ns/net").st_ino,
    "uid": os.getuid(),
    "caps": [status[key].strip() for key in ("CapEff", "CapPrm", "CapBnd")],
    "no_new_privs": status["NoNewPrivs"].strip(),
    "descriptors": len(os.listdir("/proc/self/fd")),
    "checkout": os.path.exists({checkout!r}),
    "exe_changeable": changeable("/proc/self/exe"),
}))
"""
)


def _own_run(seen: dict) -> list[str]:
    return [name for name in seen["tmp"] if name.startswith("grader-run-")]


@pytest.mark.skipif("bwrap" not in isolation_levels(), reason="bubblewrap does not work here")
def test_children_forked_under_bubblewrap_get_sandboxes_of_their_own(cache_dir: Path, tmp_path: Path) -> None:
    """Two children forked at once, each into its own sandbox, see what a fresh child sees: the sandbox's
    root and /tmp, a PID namespace with only the sandbox in it, no capabilities, no new privileges, no
    descriptor of the server's, not the grader's checkout; and not each other."""
    options, exercise = _toy(cache_dir, "bwrap")
    path = tmp_path / "probe.py"
    path.write_text(PROBE.replace("{checkout!r}", repr(str(ROOT / "grader"))))

    def seen(report) -> dict:
        assert report.status == "passed", report.output.stderr.text
        return json.loads(report.output.stdout.text)

    starter = ChildStarter(options)
    try:
        first, second = starter.spawn(exercise), starter.spawn(exercise)  # type: ignore[arg-type]
        assert isinstance(first.proc, ForkedChild) and isinstance(second.proc, ForkedChild)
        one = seen(grade_file(path, exercise_id="toy-scale", options=options, spawned=first))
        two = seen(grade_file(path, exercise_id="toy-scale", options=options, spawned=second))
    finally:
        starter.close()
    fresh = seen(grade_file(path, exercise_id="toy-scale", options=options))
    for forked in (one, two):
        for key in ("root", "caps", "no_new_privs", "descriptors", "checkout", "exe_changeable"):
            assert forked[key] == fresh[key], key
        assert (forked["uid"] == os.getuid()) == (fresh["uid"] == os.getuid())  # a leased uid, where root
        assert forked["processes"] <= 3  # the sandbox's init, what holds the sandbox, itself
        assert sorted(forked["tmp"]) == sorted(_own_run(forked) + [n for n in fresh["tmp"] if n not in _own_run(fresh)])
    assert fresh["checkout"] is False and fresh["no_new_privs"] == "1" and fresh["exe_changeable"] is False
    assert len(_own_run(one)) == len(_own_run(two)) == 1 and _own_run(one) != _own_run(two)  # not each other's
    ours = {key: os.stat(f"/proc/self/ns/{key}").st_ino for key in ("mnt", "net")}
    assert len({one["mnt"], two["mnt"], ours["mnt"]}) == 3 and len({one["net"], two["net"], ours["net"]}) == 3


def test_the_server_only_imports_and_ends_with_its_socket(cache_dir: Path) -> None:
    """Nothing is computed in the server before a fork (a fork after XLA has started threads deadlocks):
    with jax and flax imported it runs the threads a fresh interpreter that imported them runs (numpy's
    BLAS pool, which is fork-safe), and no more after a child computed. Closed, it is gone."""
    options = GradeOptions(cache_dir=cache_dir, isolation="process")
    exercise = get_exercise("train-eval-dropout")
    iso = choose_isolation("process")
    job = _ahead_job(exercise, options, iso)
    imports = "; ".join(f"import {name}" for name in job.preload)
    fresh = subprocess.run(
        [sys.executable, "-I", "-c", f"{imports}; import os; print(len(os.listdir('/proc/self/task')))"],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath},
        timeout=120,
        check=True,
    )
    server = ForkServer(job, iso, start_timeout_s=120)
    try:
        assert _threads_of(server.proc.pid) == int(fresh.stdout)
        child = server.spawn(job, iso)
        report = grade_file(ROOT / "submissions" / "wrong_inverted_flag.py", options=options, spawned=child)
        assert report.status == "failed" and report.diagnoses[0].code == "deterministic-inverted"
        # The child computed; the server did not (BLAS stops its pool for a fork and starts it when used).
        assert _threads_of(server.proc.pid) <= int(fresh.stdout)
    finally:
        server.close()
    assert server.proc.returncode == 0


def test_a_server_that_cannot_start_says_why(cache_dir: Path) -> None:
    options, exercise = _toy(cache_dir)
    iso = choose_isolation("process")
    job = _ahead_job(exercise, options, iso)  # type: ignore[arg-type]
    broken = dataclasses.replace(job, preload=["no_module_of_this_name"])
    with pytest.raises(SandboxError, match=r"did not start.*no_module_of_this_name"):
        ForkServer(broken, iso, start_timeout_s=60)


def test_a_server_that_fails_to_fork_leaves_children_to_start_fresh(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise SandboxError("the fork server could not start a child")

    monkeypatch.setattr(ForkServer, "spawn", refuse)
    options, exercise = _toy(cache_dir)
    path = tmp_path / "toy.py"
    path.write_text(CORRECT)
    starter = ChildStarter(options)
    try:
        child = starter.spawn(exercise)  # type: ignore[arg-type]
        assert isinstance(child.proc, subprocess.Popen)  # a fresh interpreter instead
        assert grade_file(path, exercise_id="toy-scale", options=options, spawned=child).status == "passed"
        again = starter.spawn(exercise)  # type: ignore[arg-type]
        assert isinstance(again.proc, subprocess.Popen)  # the server was given up
        again.discard()
    finally:
        starter.close()


@pytest.mark.skipif("bwrap" not in isolation_levels(), reason="bubblewrap does not work here")
def test_a_child_whose_sandbox_is_not_the_one_bwrap_made_is_never_born(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the namespaces the grader opened are not the ones bwrap said it made (as when the sandbox's
    init died and its pid went to another process), no child is born from the server, and children start
    fresh."""
    started = forks._start_sandbox

    def another_mount_namespace(*args: object) -> tuple[subprocess.Popen, int, dict]:
        holder, init, info = started(*args)  # type: ignore[arg-type]
        return holder, init, {**info, "mnt-namespace": os.stat("/proc/self/ns/mnt").st_ino}

    monkeypatch.setattr(forks, "_start_sandbox", another_mount_namespace)
    options, exercise = _toy(cache_dir, "bwrap")
    path = tmp_path / "toy.py"
    path.write_text(CORRECT)
    iso = choose_isolation("bwrap")
    job = _ahead_job(exercise, options, iso)  # type: ignore[arg-type]
    server = ForkServer(job, iso, start_timeout_s=60)
    try:
        with pytest.raises(SandboxError, match="not the one bwrap made"):
            server.spawn(job, iso)
    finally:
        server.close()
    starter = ChildStarter(options)
    try:
        child = starter.spawn(exercise)  # type: ignore[arg-type]
        assert isinstance(child.proc, subprocess.Popen)  # a fresh interpreter, in a sandbox bwrap made
        assert grade_file(path, exercise_id="toy-scale", options=options, spawned=child).status == "passed"
    finally:
        starter.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the interpreter's file another owner")
def test_no_forking_into_sandboxes_where_a_child_could_change_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child forked into a sandbox still reaches the server's interpreter file through /proc/self/exe. As
    a grader that is not root (here: uid 12345), forking is only for an interpreter it does not own."""
    interpreter = tmp_path / "python3"
    interpreter.write_bytes(b"")
    interpreter.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(interpreter))
    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    assert forks.exe_out_of_reach()  # root's file, not writable by others: out of the child's reach
    os.chown(interpreter, 12345, 12345)
    assert not forks.exe_out_of_reach()  # the grader's own file (a pyenv of the user's)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert forks.exe_out_of_reach()  # as root, the child runs as another uid


def test_no_fork_server_when_asked_for_none(cache_dir: Path) -> None:
    options, exercise = _toy(cache_dir)
    starter = ChildStarter(dataclasses.replace(options, fork_server=False))
    child = starter.spawn(exercise)  # type: ignore[arg-type]
    assert isinstance(child.proc, subprocess.Popen)
    child.discard()
    starter.close()


GRADER_KILLED = """
import json, os, signal, sys
from pathlib import Path
from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import GradeOptions, _ahead_job
from grader.sandbox.forks import ForkServer
from grader.sandbox.isolation import choose_isolation

options = GradeOptions(cache_dir=Path(sys.argv[1]), exercise_roots=[Path(sys.argv[2])], isolation="process")
exercise = discover_exercises([Path(sys.argv[2])])["toy-scale"]
iso = choose_isolation("process")
server = ForkServer(_ahead_job(exercise, options, iso), iso, start_timeout_s=60)
print(json.dumps({"server": server.proc.pid}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_server_ends_when_the_grader_is_killed(cache_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "grader_killed.py"
    script.write_text(GRADER_KILLED)
    done = subprocess.run(
        [sys.executable, str(script), str(cache_dir), str(TOY_EXERCISES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == -9, done.stderr
    server = json.loads(done.stdout)["server"]
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{server}") and _state(server) not in ("Z", "X", ""):
        assert time.monotonic() < deadline, "the fork server outlived its grader"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return ""
