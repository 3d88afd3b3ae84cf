"""Re-grade latency of ``grader watch`` after a save, against a cold ``grader grade`` of the same file.

Interleaved in one run: each round times one cold ``grader grade FILE --format json`` (a fresh process)
and one save of FILE under a running watch (from the write to the finished report, debounce included).
The watch keeps a child started ahead with jax and flax imported; each grading still gets a fresh,
isolated child. Usage:

    python benchmarks/watch_latency.py [--rounds 7] [--submission submissions/correct.py]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.learner.watch import watch
from grader.pipeline.grading import GradeOptions
from grader.render.terminal import make_console

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--submission", default="submissions/correct.py")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="grader-watch-bench-"))
    cache = scratch / "cache"
    target = scratch / "submission.py"
    source = (ROOT / args.submission).read_text()
    target.write_text(source)
    # the cold grading's bytecode cached, as an installed package has it (see grade_latency.py)
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache), "PYTHONPYCACHEPREFIX": str(cache / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    grade = [sys.executable, "-m", "grader", "grade", str(target), "--format", "json"]
    subprocess.run(grade, env=env, capture_output=True, check=False)  # warm-up: fills the caches

    reports = threading.Semaphore(0)
    done_at: list[float] = []

    def on_report(_report: object, _changes: object) -> None:
        done_at.append(time.perf_counter())
        reports.release()

    options = GradeOptions(cache_dir=cache)
    console = make_console(color=False, file=io.StringIO())
    watcher = threading.Thread(
        target=watch,
        kwargs={
            "path": target,
            "exercise_id": None,
            "options": options,
            "console": console,
            "max_runs": args.rounds + 1,
            "on_report": on_report,
        },
        daemon=True,
    )
    watcher.start()
    reports.acquire()  # the first grading, when the watch starts

    cold, warm = [], []
    try:
        for round_number in range(args.rounds):
            started = time.perf_counter()
            subprocess.run(grade, env=env, capture_output=True, check=False)
            cold.append(time.perf_counter() - started)
            time.sleep(1.0)  # let the watch's next child finish starting, as between two saves
            saved = time.perf_counter()
            target.write_text(f"{source}\n# save {round_number}\n")
            reports.acquire()
            warm.append(done_at[-1] - saved)
    finally:
        watcher.join(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{'variant':40} {'median s':>9} {'min s':>7}   ({args.rounds} rounds, {os.cpu_count()} cores)")
    print(f"{'cold: grader grade':40} {statistics.median(cold):9.3f} {min(cold):7.3f}")
    print(f"{'watch: save to finished report':40} {statistics.median(warm):9.3f} {min(warm):7.3f}")
    print(f"speed-up (median cold / median watch): {statistics.median(cold) / statistics.median(warm):.2f}x")


if __name__ == "__main__":
    main()
