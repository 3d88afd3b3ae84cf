"""Builds a Gradescope autograder zip for one exercise.

    python examples/gradescope/make_autograder.py EXERCISE_ID --out autograder.zip

The zip holds, at its root: ``setup.sh`` and ``run_autograder`` (Gradescope's two required files),
``pick_and_grade.py``, ``autograder.json`` (the exercise to grade), ``exercises/ID/`` with the files its
spec names (reference, catalog of mistakes), and the grader itself: a wheel built with
``pip wheel . --no-deps`` (``dist/``), the one given with ``--wheel``, or with ``--project-source`` this
project's source tree (``project/``; built on Gradescope by ``setup.sh``, no build needed here).
The exercise is found as ``grader`` finds it: under ``$GRADER_EXERCISES``, else the bundled ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from grader.errors import GraderError
from grader.exercise.spec import Exercise, get_exercise, load_exercise

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
SCRIPTS = {"setup.sh": 0o755, "run_autograder": 0o755, "pick_and_grade.py": 0o644}
PROJECT_PARTS = ("pyproject.toml", "README.md", "LICENSE", "grader", "exercises", "reference")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercise", help="the exercise's id, as `grader exercises` lists it")
    parser.add_argument("--out", type=Path, default=Path("autograder.zip"), help="the zip to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", type=Path, help="a wheel of this project to ship, instead of building one")
    source.add_argument("--project-source", action="store_true", help="ship the source tree, not a wheel")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            stage = Path(scratch) / "autograder"
            build_stage(stage, args.exercise, wheel=args.wheel, project_source=args.project_source)
            write_zip(stage, args.out)
    except (GraderError, OSError, subprocess.CalledProcessError) as exc:
        print(f"make_autograder: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: upload it on the assignment's Configure Autograder page")
    return 0


def build_stage(stage: Path, exercise_id: str, *, wheel: Path | None, project_source: bool) -> None:
    exercise = get_exercise(exercise_id)
    if exercise.spec.reference is None:
        raise GraderError(
            f"{exercise.folder} is a learner pack (expected outputs, no reference): build the autograder from "
            "the full exercise, which grades the hidden cases too"
        )
    stage.mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(HERE / name, stage / name)
    staged = stage_exercise(exercise, stage)
    config = {
        "exercise": exercise.id,
        "entry_point": exercise.spec.entry_point.name,
        "reference": os.path.relpath(staged.reference_path, stage.resolve()),
        "max_score": sum(case.weight for case in exercise.spec.cases),
    }
    (stage / "autograder.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if project_source:
        stage_project(stage / "project")
    else:
        stage_wheel(stage / "dist", wheel)


def stage_exercise(exercise: Exercise, stage: Path) -> Exercise:
    """Copies the exercise folder to ``exercises/ID``, and every file its spec names from outside it to the
    same relative place; then loads the copy, so that a spec that does not resolve there fails here."""
    folder = stage / "exercises" / exercise.id
    shutil.copytree(exercise.folder, folder, ignore=IGNORED)
    spec = exercise.spec
    named = [(exercise.folder, n) for n in (spec.reference, spec.prompt, spec.mistakes, spec.starter, spec.warmup)]
    if exercise.catalog_folder is not None:
        named += [(exercise.catalog_folder, n) for n in (exercise.catalog.analysis, exercise.catalog.variants)]
    for base, name in named:
        if name:
            copy_beside(base / name, folder / os.path.relpath(base, exercise.folder) / name, stage)
    return load_exercise(folder)


def copy_beside(original: Path, target: Path, stage: Path) -> None:
    target = Path(os.path.normpath(target))
    if not target.resolve().is_relative_to(stage.resolve()):
        raise GraderError(f"{original} lies outside what the zip can hold at its relative path ({target})")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original.resolve(), target)


def stage_project(target: Path) -> None:
    target.mkdir()
    for name in PROJECT_PARTS:
        path = PROJECT / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=IGNORED)
        elif path.is_file():
            shutil.copy2(path, target / name)


def stage_wheel(target: Path, wheel: Path | None) -> None:
    target.mkdir()
    if wheel is not None:
        shutil.copy2(wheel, target / wheel.name)
        return
    command = [sys.executable, "-m", "pip", "wheel", str(PROJECT), "--no-deps", "--wheel-dir", str(target)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    if not list(target.glob("*.whl")):
        raise GraderError(f"`pip wheel` made no wheel in {target}")


def write_zip(stage: Path, out: Path) -> None:
    """Files at the zip's root (not under a folder), the scripts executable: Gradescope runs them as they are."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(stage.rglob("*")):
            if not path.is_file():
                continue
            name = path.relative_to(stage).as_posix()
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = SCRIPTS.get(name, 0o755 if os.access(path, os.X_OK) else 0o644)
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, path.read_bytes())


if __name__ == "__main__":
    sys.exit(main())
