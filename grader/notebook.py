"""``check(exercise_id, function)``: grade a function object from a notebook, and show the report there.

The function is the learner's own and runs in the notebook's own process, on the exercise's cases. The
expected outputs, the comparison, the diagnoses and the verdict are the grader's, exactly as for a file:
the outputs go through the same encoding and validation as a child's, then the same judging.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from rich.console import Console

from grader.cases import build_cases
from grader.environment import describe_environment
from grader.exercise import discover_exercises, get_exercise
from grader.grading import GradeOptions, build_report, judge_outputs, trusted_env, wire_cases
from grader.reference import run_reference
from grader.render.terminal import render_report
from grader.sandbox.process import HARNESS, ChildRun
from grader.sandbox.protocol import Hello, Imported, Result, WireCapture
from grader.schema import Report
from grader.source import Source, parse_source
from grader.state import record_result

IN_PROCESS = "in-process (check() runs the function in the notebook's own process)"
CAPTURE_BYTES = 8192


def _harness() -> ModuleType:
    """The child's harness, loaded as a module: the same argument decoding and output encoding."""
    spec = importlib.util.spec_from_file_location("grader_harness_inprocess", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function_source(function: Callable) -> Source:
    """The function's own source, for pointing at lines; its file as Python names it (a cell, often)."""
    filename = getattr(getattr(function, "__code__", None), "co_filename", "<function>")
    try:
        lines, first = inspect.getsourcelines(function)
        text = "\n" * (first - 1) + "".join(lines)
    except (OSError, TypeError):
        text = ""
    return parse_source(Path(filename), text)


def _captured(buffer: io.StringIO) -> WireCapture:
    text = buffer.getvalue()
    return WireCapture(text=text[:CAPTURE_BYTES], size=len(text.encode()), truncated=len(text) > CAPTURE_BYTES)


def _call_all(function: Callable, wire: list[dict], harness: ModuleType, max_elements: int) -> list[Result]:
    results = []
    for case in wire:
        out, err = io.StringIO(), io.StringIO()
        message: dict = {"type": "result", "case": case["id"], "value": None, "error": None}
        started = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                args = [harness._decode_arg(arg) for arg in case["args"]]
                message["value"] = harness._encode_value(function(*args), max_elements)
            except Exception as exc:  # noqa: BLE001 - the learner's function may raise anything
                message["error"] = harness._describe_error(exc)
        message["duration_s"] = time.perf_counter() - started
        results.append(Result.model_validate({**message, "stdout": _captured(out), "stderr": _captured(err)}))
    return results


def check(
    exercise_id: str,
    function: Callable,
    *,
    display: bool = True,
    console: Console | None = None,
    options: GradeOptions | None = None,
    record: bool = True,
    seed: int | None = None,
) -> Report:
    """Grades ``function`` on the exercise's cases and shows the report (rich renders in Jupyter).

    ``record``: remember the result as the learner's last for the exercise (``grader exercises`` shows it).
    ``seed``: add the fresh cases the exercise's generators make for it, as ``grader grade --seed`` does.
    """
    options = options or GradeOptions()
    if seed is not None:
        options = dataclasses.replace(options, seed=seed)
    started = time.monotonic()
    exercise = (
        discover_exercises(options.exercise_roots)[exercise_id] if options.exercise_roots else get_exercise(exercise_id)
    )
    for module in exercise.spec.preload:
        importlib.import_module(module)  # what the child would have imported first
    cases = build_cases(exercise, options.seed)
    wire = wire_cases(exercise, cases)
    source = _function_source(function)
    run = ChildRun(
        hello=Hello(type="hello", python=sys.version.split()[0]),
        imported=Imported(type="imported", entry_point_found=True),
        results=_call_all(function, wire, _harness(), exercise.spec.limits.max_output_elements),
        phase="finish",
    )
    expected = run_reference(exercise, cases, wire, env=trusted_env(options), cache_dir=options.cache_dir)
    results, diagnoses, notes = judge_outputs(exercise, source, cases, wire, run, expected, options)
    environment = describe_environment(backend=expected.backend, isolation=None, reference_cache=expected.cache)
    environment = environment.model_copy(update={"isolation": "in-process", "isolation_detail": IN_PROCESS})
    report = build_report(
        exercise,
        source,
        results,
        diagnoses,
        environment=environment,
        started=started,
        import_output=None,
        seed=options.seed,
        notes=notes,
    )
    if display:
        render_report(report, console or Console())
    if record:
        record_result(report)
    return report
