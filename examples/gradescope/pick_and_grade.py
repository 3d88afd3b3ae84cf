"""Grades one Gradescope submission and always leaves a results.json the student can act on.

Run by ``run_autograder``. Standard library only, so that it still writes a result with the system's Python
when the grader's own environment is missing. The layout is Gradescope's, under ``$AUTOGRADER_ROOT``
(default ``/autograder``): ``submission/`` (the student's files), ``source/`` (the autograder zip, with
``autograder.json`` naming the exercise) and ``results/results.json``.

Settings from the environment: ``GRADER`` (the grader command; default ``$AUTOGRADER_ROOT/venv/bin/grader``,
else ``grader`` on PATH), ``GRADER_EXERCISES`` (default ``source/exercises``), ``GRADER_SEED`` (adds fresh
cases, as ``--seed``), ``AUTOGRADER_TIMEOUT_S`` (default 540: under Gradescope's default of ten minutes).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

SKIPPED_PARTS = ("__MACOSX", "__pycache__")
FAULT = (
    "The autograder failed on this submission: a fault of the grader or of the exercise, not of your code. "
    "The course staff can see the details; please tell them."
)


def main() -> int:
    root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    target = root / "results" / "results.json"
    try:
        results = grade(root)
    except Exception:  # noqa: BLE001 (the one place every failure becomes a result: the student must get one)
        traceback.print_exc(file=sys.stdout)
        results = verdict_only(FAULT)
    write_results(target, results)
    return 0


def grade(root: Path) -> dict:
    config = json.loads((root / "source" / "autograder.json").read_text(encoding="utf-8"))
    entry = config["entry_point"]
    chosen = pick_submission(root / "submission", entry)
    if isinstance(chosen, str):
        return verdict_only(chosen, max_score=config.get("max_score"))
    return run_grader(root, config, chosen)


def submitted_files(folder: Path) -> list[Path]:
    """Regular files under the submission, without hidden ones, macOS archive debris or links."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p in SKIPPED_PARTS for p in parts) or path.is_symlink() or not path.is_file():
            continue
        found.append(path)
    return found


def defines(path: Path, name: str) -> bool | None:
    """Whether the file defines ``name`` at top level; None when it does not parse."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
    return False


def pick_submission(folder: Path, entry: str) -> Path | str:
    """The file to grade, or a message that tells the student what to submit instead."""
    files = submitted_files(folder)
    names = ", ".join(code(str(f.relative_to(folder))) for f in files[:10])
    sources = [f for f in files if f.suffix == ".py"]
    if len(sources) == 1:
        return sources[0]
    if sources:
        return pick_among(folder, sources, entry)
    notebooks = [f for f in files if f.suffix == ".ipynb"]
    if notebooks:
        return (
            f"You submitted a notebook ({names}); this assignment grades a Python file. Export it as a script "
            f"(in Jupyter: *File > Save and Export Notebook As > Executable Script*, or "
            f"`jupyter nbconvert --to script {notebooks[0].name}`), check that it defines {code(entry)}, "
            f"and submit that `.py` file."
        )
    if files:
        return f"Your submission has no Python file (found: {names}). Submit the `.py` file that defines {code(entry)}."
    return f"Your submission is empty. Submit the `.py` file that defines {code(entry)}."


def pick_among(folder: Path, sources: list[Path], entry: str) -> Path | str:
    found = {f: defines(f, entry) for f in sources}
    listed = ", ".join(code(str(f.relative_to(folder))) for f in sources[:10])
    defining = [f for f, yes in found.items() if yes]
    if len(defining) == 1:
        return defining[0]
    if defining:
        names = ", ".join(code(str(f.relative_to(folder))) for f in defining)
        return f"Several of your files define {code(entry)} ({names}). Submit only the one to be graded."
    unreadable = [f for f, yes in found.items() if yes is None]
    if len(unreadable) == 1:
        return unreadable[0]  # the grader shows its syntax error, at the line
    return (
        f"None of your Python files ({listed}) defines {code(entry)} at top level. Submit the file that "
        f"defines it (`def {entry}(...):`)."
    )


def run_grader(root: Path, config: dict, submission: Path) -> dict:
    grader = os.environ.get("GRADER") or str(root / "venv" / "bin" / "grader")
    if not os.path.isfile(grader):
        grader = shutil.which("grader") or grader
    env = dict(os.environ)
    env.setdefault("GRADER_EXERCISES", str(root / "source" / "exercises"))
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "results.json"
        command = [grader, "grade", str(submission), "--exercise", config["exercise"], "--format", "gradescope"]
        command += ["--output", str(output)]
        if os.environ.get("GRADER_SEED"):
            command += ["--seed", os.environ["GRADER_SEED"]]
        timeout = float(os.environ.get("AUTOGRADER_TIMEOUT_S", "540"))
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return verdict_only(
                f"Grading took longer than {timeout:.0f} s and was stopped. Look for a loop that does not end.",
                max_score=config.get("max_score"),
            )
        except OSError as exc:
            print(f"cannot run the grader {grader!r}: {exc}")
            return verdict_only(FAULT, max_score=config.get("max_score"))
        print(done.stdout + done.stderr)  # /autograder/results/stdout: for the staff only
        results = read_results(output) if done.returncode in (0, 1) else None
    if results is None:
        print(f"the grader exited with status {done.returncode} and no usable results")
        return verdict_only(FAULT, max_score=config.get("max_score"))
    graded = str(submission.relative_to(root / "submission"))
    results["output"] = f"Graded {code(graded)}.\n\n" + results.get("output", "")
    return results


def read_results(path: Path) -> dict | None:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and "score" in results else None


def verdict_only(message: str, *, max_score: float | None = None) -> dict:
    """A result that grades nothing: score 0 and what to do about it, at the top and as a failed check."""
    check = {"name": "Submission", "status": "failed", "score": 0.0, "output": message, "output_format": "md"}
    if max_score is not None:
        check["max_score"] = float(max_score)
    return {
        "score": 0.0,
        "output": message,
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [check],
    }


def code(text: str) -> str:
    """A Markdown code span around text from the student (a file name), whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def write_results(target: Path, results: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target)


if __name__ == "__main__":
    sys.exit(main())
