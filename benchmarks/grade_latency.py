"""Cold-process latency of ``grader grade`` against the floor: one fresh Python that imports jax and flax,
imports the same submission and calls its entry point once, on the exercise's first case.

Every variant runs in a fresh process, interleaved round by round so that machine noise falls on all of
them alike; the result is the ratio of medians. Every bundled exercise with a correct example is measured
(``submissions/correct.py`` for train-eval-dropout, ``submissions/<exercise>/correct.py`` for the others),
each against its own floor; the isolation levels are compared on the first. Usage:

    python benchmarks/grade_latency.py [--rounds 7] [--exercise ID ...]

The grader's caches (reference outputs, compiled code) live in a temporary folder: one untimed warm-up
fills them, as any earlier grading on the machine would. ``grade (no cache)`` shows the price without them.
So does Python's bytecode cache, for every variant alike (``PYTHONPYCACHEPREFIX``): an installed package
has its modules compiled, and a ``PYTHONDONTWRITEBYTECODE`` in the calling environment would otherwise
have each run compile the grader's own modules again (jax's and flax's were compiled when pip installed
them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

FLOOR = """
import importlib.util, json, sys
import jax, flax.linen, jax.numpy as jnp, numpy as np
spec = importlib.util.spec_from_file_location("submission", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
call = json.loads(open(sys.argv[3]).read())
args = [jnp.asarray(np.load(a["npy"])) if "npy" in a else a["value"] for a in call]
jax.block_until_ready(getattr(module, sys.argv[2])(*args))
"""


def correct_example(exercise_id: str, entry_point: str) -> Path | None:
    """``submissions/<exercise>/correct.py``, else ``submissions/correct.py`` where it defines the entry point."""
    own, top = ROOT / "submissions" / exercise_id / "correct.py", ROOT / "submissions" / "correct.py"
    if own.is_file():
        return own
    return top if top.is_file() and f"def {entry_point}(" in top.read_text(encoding="utf-8") else None


def first_call(exercise_id: str, folder: Path) -> tuple[str, Path]:
    """The exercise's entry point, and its first case's arguments written for the floor to read."""
    from grader.exercise.cases import build_cases
    from grader.exercise.spec import get_exercise

    exercise = get_exercise(exercise_id)
    call = []
    for n, value in enumerate(build_cases(exercise)[0].args):
        if isinstance(value, np.ndarray):
            np.save(folder / f"arg{n}.npy", value)
            call.append({"npy": str(folder / f"arg{n}.npy")})
        else:
            call.append({"value": value})
    (folder / "call.json").write_text(json.dumps(call))
    return exercise.spec.entry_point.name, folder / "call.json"


def timed(command: list[str], env: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        sys.exit(f"{command} exited {result.returncode}:\n{result.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    from grader.exercise.spec import discover_exercises

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--exercise", action="append", help="measure this exercise (default: every bundled one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    exercises = args.exercise or sorted(discover_exercises())
    cache = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache), "PYTHONPYCACHEPREFIX": str(cache / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # name -> (command, the floor it is measured against, environment variables of its own)
    variants: dict[str, tuple[list[str], str, dict[str, str]]] = {}
    for n, exercise_id in enumerate(exercises):
        entry, call = first_call(exercise_id, Path(tempfile.mkdtemp(dir=cache)))
        submission = correct_example(exercise_id, entry)
        if submission is None:
            continue
        floor = f"{exercise_id}: floor (import + 1 call)"
        grader = [sys.executable, "-m", "grader", "grade", str(submission), "--format", "json"]
        variants[floor] = ([sys.executable, "-c", FLOOR, str(submission), entry, str(call)], floor, {})
        variants[f"{exercise_id}: grader grade"] = (grader, floor, {})
        if n == 0:
            variants[f"{exercise_id}: grader grade (no cache)"] = ([*grader, "--no-cache"], floor, {})
            # the child started only once the grading pipeline is loaded, as before the head start
            variants[f"{exercise_id}: no head start"] = (grader, floor, {"GRADER_HEAD_START": "0"})
            if shutil.which("bwrap"):  # the cost of isolation: each level on its own
                variants[f"{exercise_id}: --isolation bwrap"] = ([*grader, "--isolation", "bwrap"], floor, {})
                variants[f"{exercise_id}: --isolation process"] = ([*grader, "--isolation", "process"], floor, {})
    try:
        for command, _, own in variants.values():  # fills the caches each command uses (an untimed warm-up)
            timed(command, {**env, **own}, 0)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (command, _, own) in variants.items():
                times[name].append(timed(command, {**env, **own}, 0))
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    width = max(len(name) for name in variants) + 1
    heading = f"{'variant':{width}} {'median s':>9} {'min s':>7} {'ratio':>6}"
    print(f"{heading}   ({args.rounds} rounds, {os.cpu_count()} cores)")
    for name, samples in times.items():
        floor = statistics.median(times[variants[name][1]])
        median = statistics.median(samples)
        print(f"{name:{width}} {median:9.3f} {min(samples):7.3f} {median / floor:6.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rounds": args.rounds, "times": times}, indent=2))


if __name__ == "__main__":
    main()
