"""Shared fixtures: a session-wide cache, the bundled and the test exercises, and a clean terminal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader.grading import GradeOptions, grade_file
from grader.schema import Report

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "submissions"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_EXERCISES = FIXTURES / "exercises"


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "GRADER_EXERCISES"):
        monkeypatch.delenv(name, raising=False)
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
