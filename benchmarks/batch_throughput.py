"""A class graded in one batch against the baseline a course would otherwise write.

Forty submissions (copies of the bundled examples, correct and wrong and broken, each in a folder of its
own as a class's repositories would be) are graded:

- baseline: one fresh ``pytest`` process per submission, one after another, importing the submission and
  the reference in-process and comparing them on the same cases (``benchmarks/baseline/``);
- ``grader grade FOLDER`` as one batch, with the caches it keeps between runs filled (an earlier batch,
  untimed, filled them), and again with an empty cache each time (``cold``); its children are forked
  from a fork server (the default), each into a sandbox of its own under bubblewrap;
- the same batch with each child started fresh (``GRADER_FORK_SERVER=0``), and both again at
  ``--isolation process``.

Interleaved round by round in one run, so that machine noise falls on every variant alike. Reported: the
wall time of each, the ratio baseline / batch, and the peak memory of the whole process tree (the sum of
the proportional set sizes of every process under the command, sampled every 50 ms: a page several
processes share counts once in all). The verdicts of each batch and the baseline are checked to agree
(pass or not, per submission). Usage:

    python benchmarks/batch_throughput.py [--rounds 2] [--count 40] [--jobs N]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_TEST = ROOT / "benchmarks" / "baseline" / "test_submission.py"
REFERENCE = ROOT / "reference" / "train_eval_dropout.py"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _proportional_size(pid: str) -> int:
    """A process's proportional set size (PSS): its resident memory, each page shared with others (a fork
    server's children share its pages) counted as its share. The resident size where PSS is not readable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE


class TreeMemory:
    """Samples the summed memory (PSS) of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._sample())

    def _sample(self) -> int:
        parents: dict[int, int] = {}
        sizes: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                resident = _proportional_size(entry)
            except (OSError, IndexError, ValueError):
                continue
            parents[int(entry)] = int(fields[1])
            sizes[int(entry)] = resident
        total = 0
        for pid, size in sizes.items():
            ancestor = pid
            while ancestor > 1 and ancestor != self.pid:
                ancestor = parents.get(ancestor, 0)
            total += size if ancestor == self.pid else 0
        return total

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(command: list[str], env: dict[str, str], expect: set[int]) -> tuple[float, int]:
    """Wall seconds and peak tree memory of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    memory = TreeMemory(proc.pid)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    peak = memory.stop()
    if proc.returncode not in expect:
        sys.exit(f"{command} exited {proc.returncode}:\n{out.decode()[-2000:]}\n{err.decode()[-2000:]}")
    return elapsed, peak


def make_class(folder: Path, count: int) -> list[Path]:
    examples = sorted((ROOT / "submissions").glob("*.py"))
    files = []
    for number in range(count):
        example = examples[number % len(examples)]
        target = folder / f"student-{number:02d}" / example.name
        target.parent.mkdir(parents=True)
        shutil.copy(example, target)
        files.append(target)
    return files


def write_cases(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from grader.exercise.cases import build_cases
    from grader.exercise.spec import get_exercise

    cases = build_cases(get_exercise("train-eval-dropout"))
    rows = [{"id": c.id, "seed": c.args[0], "x": c.args[1].tolist(), "train": c.args[2]} for c in cases]
    path.write_text(json.dumps(rows))


def baseline(files: list[Path], cases: Path, env: dict[str, str]) -> tuple[float, int, dict[str, bool]]:
    total, peak, verdicts = 0.0, 0, {}
    for file in files:
        started = time.perf_counter()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(BASELINE_TEST)]
        proc = subprocess.Popen(
            command,
            env={**env, "SUBMISSION": str(file), "REFERENCE": str(REFERENCE), "BASELINE_CASES": str(cases)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        memory = TreeMemory(proc.pid)
        proc.wait()
        peak = max(peak, memory.stop())
        total += time.perf_counter() - started
        verdicts[str(file)] = proc.returncode == 0
    return total, peak, verdicts


def batch_verdicts(gradebook: Path) -> dict[str, bool]:
    with gradebook.open(encoding="utf-8") as handle:
        return {row["submission"]: row["status"] == "passed" for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--jobs", type=int, help="--jobs for the batch (default: the grader's, one per core)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="grader-batch-bench-"))
    try:
        files = make_class(work / "class", args.count)
        cases = work / "cases.json"
        write_cases(cases)
        warm_cache = work / "cache"
        gradebook = work / "grades.csv"
        env = {**os.environ, "GRADER_CACHE_DIR": str(warm_cache)}
        batch = [sys.executable, "-m", "grader", "grade", str(work / "class"), "--gradebook", str(gradebook)]
        batch += ["--format", "json", "--output", str(work / "batch.json")]
        if args.jobs:
            batch += ["--jobs", str(args.jobs)]
        run(batch, env, {0, 1})  # untimed: fills the caches a course's machine keeps between batches

        # At either level, children forked from a server (the default) or each started fresh: what the
        # fork server saves. "batch" is the default level: bwrap where it works.
        fresh = {**env, "GRADER_FORK_SERVER": "0"}
        warm = {
            "batch": (batch, env),
            "batch, fresh children": (batch, fresh),
            "batch, process, forked": ([*batch, "--isolation", "process"], env),
            "batch, process, fresh": ([*batch, "--isolation", "process"], fresh),
        }
        times: dict[str, list[float]] = {"baseline": [], **{name: [] for name in warm}, "batch (cold cache)": []}
        peaks: dict[str, int] = dict.fromkeys(times, 0)
        for round_number in range(args.rounds):
            elapsed, peak, expected = baseline(files, cases, os.environ.copy())
            times["baseline"].append(elapsed)
            peaks["baseline"] = max(peaks["baseline"], peak)

            for name, (command, variant_env) in warm.items():
                elapsed, peak = run(command, variant_env, {0, 1})
                times[name].append(elapsed)
                peaks[name] = max(peaks[name], peak)
                graded = batch_verdicts(gradebook)
                if graded != expected:
                    differ = sorted(k for k in expected if graded.get(k) != expected[k])
                    sys.exit(f"{name} and the baseline disagree on: {differ}")

            cold = work / f"cold-{round_number}"
            elapsed, peak = run(batch, {**os.environ, "GRADER_CACHE_DIR": str(cold)}, {0, 1})
            times["batch (cold cache)"].append(elapsed)
            peaks["batch (cold cache)"] = max(peaks["batch (cold cache)"], peak)
            shutil.rmtree(cold, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(times["baseline"])
    print(f"{args.count} submissions, {args.rounds} rounds interleaved, {os.cpu_count()} cores")
    print(f"{'variant':26} {'median s':>9} {'s/submission':>13} {'ratio':>6} {'peak MiB':>9}")
    for name, samples in times.items():
        median = statistics.median(samples)
        per = median / args.count
        print(f"{name:26} {median:9.1f} {per:13.2f} {base / median:6.2f} {peaks[name] / 2**20:9.0f}")
    if args.json:
        results = {name: {"median_s": statistics.median(s), "samples": s} for name, s in times.items()}
        args.json.write_text(json.dumps({"results": results, "peak_bytes": peaks}, indent=2))


if __name__ == "__main__":
    main()
