"""``check(exercise_id, function)``: grade a function object from a notebook, and show the report there.

The function is the learner's own and runs in the notebook's own process, on the exercise's cases. The
expected outputs, the comparison, the diagnoses and the verdict are the grader's, exactly as for a file:
the outputs go through the same encoding and validation as a child's, then the same judging.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from grader.exercise.cases import build_cases
from grader.exercise.spec import discover_exercises, get_exercise
from grader.learner.state import record_result
from grader.pipeline.environment import describe_environment
from grader.pipeline.grading import GradeOptions, build_report, judge_outputs, trusted_env, wire_cases
from grader.pipeline.reference import run_reference
from grader.pipeline.source import Source, parse_source
from grader.render.terminal import render_report
from grader.report.schema import Report
from grader.sandbox.inprocess import run_in_process

IN_PROCESS = "in-process (check() runs the function in the notebook's own process)"
CAPTURE_BYTES = 8192


def _function_source(function: Callable) -> Source:
    """The source to point at lines in: the function's own, and that of the functions and classes (their
    methods) of its module that it names, such as a model class defined in another cell. Lines of the
    function's own file keep their numbers; those of other cells follow, each under a comment naming it."""
    filename = getattr(getattr(function, "__code__", None), "co_filename", "<function>")
    by_file: dict[str, dict[int, str]] = {}
    for part in [function, *_named_parts(function)]:
        try:
            lines, first = inspect.getsourcelines(part)
        except (OSError, TypeError):
            continue
        part_file = part.__code__.co_filename
        by_file.setdefault(part_file, {}).update({first + i: line for i, line in enumerate(lines)})
    own = by_file.pop(filename, {})
    text = "".join(own.get(n, "\n") for n in range(1, max(own, default=0) + 1))
    for other, numbered in by_file.items():
        text += f"\n# --- from {other}\n" + "".join(numbered[n] for n in sorted(numbered))
    return parse_source(Path(filename), text)


def _named_parts(function: Callable) -> list[Callable]:
    """The functions, and the methods of the classes, of the function's module that its code names."""
    code = getattr(function, "__code__", None)
    module = getattr(function, "__module__", None)
    if code is None:
        return []
    names: set[str] = set()
    pending = [code]
    while pending:  # nested functions and comprehensions name things too
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(c for c in current.co_consts if inspect.iscode(c))
    parts: list[Callable] = []
    for name in sorted(names):
        value = getattr(function, "__globals__", {}).get(name)
        if value is function or getattr(value, "__module__", None) != module:
            continue
        if inspect.isfunction(value):
            parts.append(value)
        elif inspect.isclass(value):
            parts += [inspect.unwrap(v) for v in vars(value).values() if inspect.isfunction(inspect.unwrap(v))]
    return parts


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
    limits = exercise.spec.limits
    run = run_in_process(function, wire, max_elements=limits.max_output_elements, capture_bytes=CAPTURE_BYTES)
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
    # The header names the function, not the temporary file a notebook cell lives in.
    name = getattr(function, "__qualname__", getattr(function, "__name__", "function"))
    report = report.model_copy(
        update={"submission": report.submission.model_copy(update={"path": f"{name}() (in this session)"})}
    )
    if display:
        render_report(report, console or Console())
    if record:
        record_result(report)
    return report
