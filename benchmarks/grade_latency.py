"""Cold-process latency of ``grader grade`` against the floor: one fresh Python that imports jax and flax,
imports the same submission and runs one forward pass.

Every variant runs in a fresh process, interleaved round by round so that machine noise falls on all of
them alike; the result is the ratio of medians. Usage:

    python benchmarks/grade_latency.py [--rounds 7] [--submission submissions/correct.py]

The grader's caches (reference outputs, compiled code) live in a temporary folder: one untimed warm-up
fills them, as any earlier grading on the machine would. ``grade (no cache)`` shows the price without them.
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

ROOT = Path(__file__).resolve().parent.parent

FLOOR = """
import importlib.util, sys
import jax, flax.linen, jax.numpy as jnp, numpy as np
spec = importlib.util.spec_from_file_location("submission", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
np.asarray(module.model_train_eval_forward(0.0, jnp.ones(4, jnp.float32), 1.0))
"""


def timed(command: list[str], env: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        sys.exit(f"{command} exited {result.returncode}:\n{result.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--submission", default="submissions/correct.py")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    grader = [sys.executable, "-m", "grader", "grade", args.submission, "--format", "json"]
    variants = {
        "floor (import + 1 forward)": ([sys.executable, "-c", FLOOR, args.submission], env),
        "grader grade": (grader, env),
        "grader grade (no cache)": ([*grader, "--no-cache"], env),
    }
    if shutil.which("bwrap"):  # the cost of isolation: each level on its own
        variants["grader grade --isolation bwrap"] = ([*grader, "--isolation", "bwrap"], env)
        variants["grader grade --isolation process"] = ([*grader, "--isolation", "process"], env)
    try:
        for warm_up in (grader, [*grader, "--isolation", "process"]):  # fills the caches each level uses
            timed(warm_up, env, 0)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (command, variant_env) in variants.items():
                times[name].append(timed(command, variant_env, 0))
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    floor = statistics.median(times["floor (import + 1 forward)"])
    print(f"{'variant':34} {'median s':>9} {'min s':>7} {'ratio':>6}   ({args.rounds} rounds, {os.cpu_count()} cores)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:34} {median:9.3f} {min(samples):7.3f} {median / floor:6.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rounds": args.rounds, "times": times}, indent=2))


if __name__ == "__main__":
    main()
