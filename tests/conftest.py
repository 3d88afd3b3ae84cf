"""Shared fixtures: a session-wide cache, the bundled and the test exercises, a clean terminal, and the
containment of tests that run hostile code."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.pipeline.batch import BatchEvents, grade_batch
from grader.pipeline.grading import GradeOptions, grade_file
from grader.report.schema import Report
from grader.sandbox.isolation import choose_isolation

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "submissions"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_EXERCISES = FIXTURES / "exercises"
# A hostile test is stopped after this long (pytest-timeout): many times the longest grading its limits
# allow, so that it trips only on a hang, which would otherwise hold CI until its own time runs out.
HOSTILE_TIMEOUT_S = 300
PROCESS_HEADROOM = 4096  # processes and threads a hostile test's children may add to their user's count


def isolation_levels() -> list[str]:
    """The isolation levels this machine offers, strongest first: bwrap where it works, and process."""
    try:
        return ["bwrap", "process"] if choose_isolation("bwrap").level == "bwrap" else ["process"]
    except Exception:  # noqa: BLE001 - bubblewrap missing or refused: only the process level here
        return ["process"]


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_reaches_children() -> None:
    """A suite started in the background by a shell without job control inherits Ctrl-C ignored, and so
    would every grader it starts: the tests that stop a grader with Ctrl-C would see it carry on. A
    handled (not ignored) SIGINT here is reset to the default in every program the tests execute."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    # The grader's settings, and JAX's and XLA's (the reference cache's key follows them), are the tests' own.
    for name in [n for n in os.environ if n.startswith(("GRADER_", "JAX_", "XLA_"))]:
        monkeypatch.delenv(name)
    # The learner's state (hints, last results) goes to a temporary folder, never the tester's home.
    monkeypatch.setenv("GRADER_DATA_DIR", str(tmp_path_factory.mktemp("grader-data")))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole run: reference outputs and compiled code are reused across tests."""
    return tmp_path_factory.mktemp("grader-cache")


@pytest.fixture(scope="session")
def grade(cache_dir: Path):
    """Grades a file against the bundled exercises with the session cache."""

    def _grade(path: Path, exercise: str | None = None) -> Report:
        return grade_file(path, exercise_id=exercise, options=GradeOptions(cache_dir=cache_dir))

    return _grade


@pytest.fixture(scope="session")
def grade_toy(cache_dir: Path):
    """Grades source text against the jax-free toy exercise, whose time limits are short."""

    def _grade(source: str, tmp_path: Path, name: str = "submission.py") -> Report:
        path = tmp_path / name
        path.write_text(source, encoding="utf-8")
        options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES])
        return grade_file(path, exercise_id="toy-scale", options=options)

    return _grade


def copy_toy_exercise(target: Path) -> Path:
    """Copies the toy exercise and its reference under ``target``; returns the spec's folder."""
    shutil.copytree(FIXTURES / "exercises", target / "exercises")
    shutil.copytree(FIXTURES / "reference", target / "reference")
    return target / "exercises" / "toy-scale"


@pytest.fixture
def scratch_copy(tmp_path: Path):
    """Copies a bundled submission into a temporary folder (for tests that edit or hash it)."""

    def _copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copy(SUBMISSIONS / name, target)
        return target

    return _copy


def cli_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env["GRADER_CACHE_DIR"] = str(cache_dir)
    env.setdefault("GRADER_DATA_DIR", str(cache_dir.parent / "grader-data-cli"))
    env.update(extra)
    return env


@pytest.fixture
def contained() -> Iterator[None]:
    """Limits around a test that runs hostile code, so that a regression of the sandbox cannot take the
    machine down with it.

    While it runs, the processes it starts inherit a soft cap on their user's processes (a fork bomb stops
    there even if the child's own limits were lost; the sandbox's tighter limits replace it as usual; the
    kernel exempts root, whose children the grader moves to other uids). Afterwards every process it left
    alive below this one is killed, and the test fails. The wall time is pytest-timeout's:
    ``pytest.mark.timeout(HOSTILE_TIMEOUT_S)``.
    """
    before = _descendants()
    limit = resource.getrlimit(resource.RLIMIT_NPROC)
    cap = _tasks_of(os.getuid()) + PROCESS_HEADROOM
    if limit[0] == resource.RLIM_INFINITY or limit[0] > cap:
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NPROC, limit)
        left = sorted(_descendants() - before)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert left == [], f"the test left processes alive (now killed): {left}"


def _descendants() -> set[int]:
    """Live processes below this one (the grader makes itself their subreaper: a daemon stays below)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields and fields[0] not in ("Z", "X"):  # a zombie holds nothing but its id
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _tasks_of(uid: int) -> int:
    """The processes and threads ``uid`` runs: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


def grade_as_batch(paths: list[Path], options: GradeOptions, exercise_id: str | None = None) -> dict[Path, Report]:
    """Grades the files as one batch (two at a time on two cores) and returns each one's full report; every
    file must get one."""
    reports: dict[Path, Report] = {}
    lock = threading.Lock()

    def keep(path: Path, report: Report) -> None:
        with lock:
            reports[path] = report

    events = BatchEvents(save=keep)
    batch = grade_batch(paths, exercise_id=exercise_id, options=options, events=events)
    assert events.failures == []
    missing = [str(p) for p in paths if p not in reports]
    assert missing == [], f"no report for {missing}: {[(e.path, e.status, e.message) for e in batch.submissions]}"
    return reports
