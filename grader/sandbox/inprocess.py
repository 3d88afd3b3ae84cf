"""Running a function object in the grader's own process (``check()`` in a notebook), with the child's
encoding and validation: the outcome is the same typed ``ChildRun`` a child's run gives.

The function is the learner's own, in the learner's own session: no isolation applies (the report says
so). Arguments are decoded and outputs encoded by the harness itself, loaded here as a module, so that a
function's outputs take exactly the way a child's do, and each message is validated like a frame.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
from collections.abc import Callable
from types import ModuleType

from grader.sandbox.isolation import HARNESS
from grader.sandbox.outcome import ChildRun
from grader.sandbox.protocol import Hello, Imported, Result, WireCapture


def _harness() -> ModuleType:
    """The child's harness, loaded as a module: the same argument decoding and output encoding."""
    spec = importlib.util.spec_from_file_location("grader_harness_inprocess", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _captured(buffer: io.StringIO, limit: int) -> WireCapture:
    text = buffer.getvalue()
    return WireCapture(text=text[:limit], size=len(text.encode()), truncated=len(text) > limit)


def run_in_process(function: Callable, calls: list[dict], *, max_elements: int, capture_bytes: int) -> ChildRun:
    """Calls ``function`` on every wire call, in this process, and returns the run as a child's would be."""
    harness = _harness()
    results = []
    for call in calls:
        out, err = io.StringIO(), io.StringIO()
        message: dict = {"type": "result", "case": call["id"], "value": None, "error": None}
        started = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                args = [harness.decode_arg(arg) for arg in call["args"]]
                message["value"] = harness.encode_value(function(*args), max_elements)
            except Exception as exc:  # noqa: BLE001 - the learner's function may raise anything
                message["error"] = harness.describe_error(exc)
        message["duration_s"] = time.perf_counter() - started
        captures = {"stdout": _captured(out, capture_bytes), "stderr": _captured(err, capture_bytes)}
        results.append(Result.model_validate({**message, **captures}))
    return ChildRun(
        hello=Hello(type="hello", python=sys.version.split()[0]),
        imported=Imported(type="imported", entry_point_found=True),
        results=results,
        phase="finish",
    )
