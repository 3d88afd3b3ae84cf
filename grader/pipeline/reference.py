"""Expected outputs: the reference solution run in a trusted child of its own, cached on disk.

A cached entry is keyed by everything the outputs depend on: the exercise spec, the reference's source,
every case's arguments, the versions of Python, jax, jaxlib, flax, numpy and any backend plugin, and
the JAX/XLA settings in the environment. Changing any of them misses the cache and runs the reference.
A learner pack has no reference: its stored outputs (``stored.py``) stand in for both runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from grader.errors import ReferenceSolutionError, SandboxError
from grader.exercise.cases import Case, cases_fingerprint
from grader.exercise.catalog import Catalog
from grader.exercise.pack import Stamp
from grader.exercise.spec import Exercise
from grader.pipeline.environment import ReferenceCache, numeric_fingerprint
from grader.pipeline.stored import load_stored, stored_trees
from grader.pipeline.tree import Opaque, Tree, decode, leaves, path_text
from grader.sandbox.isolation import Isolation
from grader.sandbox.process import ChildLimits, ChildRun, run_child
from grader.sandbox.protocol import ArrayValue, TreeValue, WireValue, encode_arg
from grader.sandbox.start import ChildJob

CACHE_FORMAT = 2  # 2: outputs as trees
# The reference and its variants are the grader's own code: a plain process, free to write the caches.
TRUSTED = Isolation("process", None)
MAX_ELEMENTS = 50_000_000


class TrustedRunner:
    """What runs of the grader's own programs (the reference, the variants) share while it lives: a lock per
    cache entry, so that threads asking for one entry at once (a batch) compute it once, and the entries
    whose run failed other than by ending early, so that such a failure is not run again for every
    submission. A batch holds one for its whole run; a single grading (a save under ``watch``, a ``check()``)
    gets a fresh one, so nothing is remembered past it.
    """

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._failed: dict[str, str] = {}

    def entry_lock(self, key: str) -> threading.Lock | contextlib.nullcontext[None]:
        """The lock of one cache entry; none without a cache (nothing is shared then)."""
        if not key:
            return contextlib.nullcontext()
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def failure(self, key: str) -> str | None:
        return self._failed.get(key)

    def remember_failure(self, key: str, message: str) -> None:
        if key:
            self._failed[key] = message


class _CacheEntry(BaseModel):
    format: int
    key: str
    backend: str | None
    outputs: dict[str, WireValue]


@dataclass(frozen=True)
class Expected:
    outputs: dict[str, Tree]  # an array per call, or a tree of arrays
    backend: str | None
    cache: ReferenceCache
    stamp: Stamp | None = None  # a learner pack's: the versions its stored outputs were computed with


@dataclass(frozen=True)
class TrustedProgram:
    """A trusted file the grader runs over calls: the reference solution, or an exercise's variants of it."""

    kind: str  # names the cache folder: "reference" or "variants"
    path: Path
    entry_point: str


def wire_cases(exercise: Exercise, cases: list[Case]) -> list[dict]:
    """The cases as a child's job (and the trusted runs) take them: each argument encoded."""
    params = exercise.spec.entry_point.parameters
    return [
        {"id": c.id, "args": [encode_arg(v, array_type=p.array_type) for p, v in zip(params, c.args, strict=True)]}
        for c in cases
    ]


def reference_program(exercise: Exercise) -> TrustedProgram:
    return TrustedProgram("reference", exercise.reference_path, exercise.spec.entry_point.name)


def cache_key(
    exercise: Exercise, cases: list[Case], program: TrustedProgram | None = None, calls: list[dict] | None = None
) -> str:
    program = program or reference_program(exercise)
    digest = hashlib.sha256()
    digest.update(f"format={CACHE_FORMAT}\nkind={program.kind}\n".encode())
    digest.update(exercise.spec.model_dump_json().encode())
    digest.update(exercise.reference_path.read_bytes())
    digest.update(program.path.read_bytes())
    digest.update(cases_fingerprint(cases).encode())
    digest.update(json.dumps([(c["id"], c.get("entry")) for c in calls or []]).encode())
    digest.update(json.dumps(numeric_fingerprint(), sort_keys=True).encode())
    return digest.hexdigest()


def _cache_file(cache_dir: Path, kind: str, exercise: Exercise, key: str) -> Path:
    return cache_dir / kind / f"{exercise.id}-{key[:40]}.json"


def _load_cached(path: Path, key: str) -> Expected | None:
    try:
        entry = _CacheEntry.model_validate_json(path.read_bytes())
        if entry.format != CACHE_FORMAT or entry.key != key:
            return None
        outputs = {case_id: _decoded(value) for case_id, value in entry.outputs.items()}
    except (OSError, ValidationError, ValueError):
        return None  # absent, corrupt or stale: computed again
    return Expected(outputs, entry.backend, "hit")


def _store(path: Path, entry: _CacheEntry) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(entry.model_dump_json())
        os.replace(temp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def run_trusted(
    exercise: Exercise,
    program: TrustedProgram,
    cases: list[Case],
    calls: list[dict],
    *,
    env: dict[str, str],
    cache_dir: Path | None,
    cancel: threading.Event | None = None,
    runner: TrustedRunner | None = None,
) -> Expected:
    """The output of every call of a trusted program: from the cache when it holds them, else from a run
    (which setting ``cancel`` stops, as a ``ReferenceSolutionError``).

    Threads asking for the same entry at once (a batch) wait for the first one's run, then read the cache;
    a run that failed other than by ending early fails again at once.
    """
    runner = runner or TrustedRunner()
    key = cache_key(exercise, cases, program, calls) if cache_dir else ""
    with runner.entry_lock(key):
        failed = runner.failure(key)
        if failed is not None:
            raise ReferenceSolutionError(failed)
        cache_file = _cache_file(cache_dir, program.kind, exercise, key) if cache_dir else None
        cached = _load_cached(cache_file, key) if cache_file else None
        if cached is not None and set(cached.outputs) == {c["id"] for c in calls}:
            return cached
        run = run_child(
            _trusted_job(exercise, program, calls, env),
            _trusted_limits(exercise),
            isolation=TRUSTED,
            cancel=cancel,
        )
        try:
            values = _check_trusted_run(exercise, program, run, [c["id"] for c in calls])
        except ReferenceSolutionError as exc:
            if not exc.transient:
                runner.remember_failure(key, str(exc))
            raise
    backend = run.hello.backend if run.hello else None
    if cache_file:
        _store(cache_file, _CacheEntry(format=CACHE_FORMAT, key=key, backend=backend, outputs=values))
    outputs = {call_id: _decoded(value) for call_id, value in values.items()}
    return Expected(outputs, backend, "miss" if cache_dir else "off")


def _decoded(value: WireValue) -> Tree:
    """A trusted output, every leaf an array (``ValueError`` otherwise: a cache entry then is recomputed)."""
    tree = decode(value, MAX_ELEMENTS)
    bad = [path_text(path) for path, leaf in leaves(tree) if isinstance(leaf, Opaque)]
    if bad:
        raise ValueError(f"not an array at {', '.join(bad[:3])}")
    return tree


def _trusted_job(exercise: Exercise, program: TrustedProgram, calls: list[dict], env: dict[str, str]) -> ChildJob:
    return ChildJob(
        source=program.path.read_text(encoding="utf-8"),
        filename=str(program.path),
        entry_point=program.entry_point,
        cases=calls,
        preload=list(exercise.spec.preload),
        env=env,
    )


def _trusted_limits(exercise: Exercise) -> ChildLimits:
    """The exercise's limits, raised: the grader's own code is not what they guard against."""
    limits = exercise.spec.limits
    return ChildLimits(
        import_timeout_s=max(limits.import_timeout_s, 120.0),
        case_timeout_s=max(limits.case_timeout_s, 60.0),
        memory_mb=max(limits.memory_mb, 8192),
        capture_bytes=limits.capture_bytes,
        max_output_elements=MAX_ELEMENTS,
    )


def run_reference(
    exercise: Exercise,
    cases: list[Case],
    wire_cases: list[dict],
    *,
    env: dict[str, str],
    cache_dir: Path | None,
    cancel: threading.Event | None = None,
    runner: TrustedRunner | None = None,
) -> Expected:
    """The expected output of every case: a learner pack's stored outputs, else the reference's."""
    if exercise.expected_path is not None:
        stored = load_stored(exercise, cases)
        outputs = stored_trees(exercise, stored.outputs, [case.id for case in cases], "outputs")
        expected = Expected(outputs, stored.stamp.backend, "hit", stored.stamp)
    else:
        program = reference_program(exercise)
        expected = run_trusted(
            exercise, program, cases, wire_cases, env=env, cache_dir=cache_dir, cancel=cancel, runner=runner
        )
    problems = [
        f"case {case.id!r}: {problem}" for case in cases for problem in returns_problems(exercise, case, expected)
    ]
    if problems:
        raise ReferenceSolutionError(
            f"the reference of {exercise.id!r} does not return what the spec's returns says: {'; '.join(problems[:3])}"
        )
    return expected


def returns_problems(exercise: Exercise, case: Case, expected: Expected) -> list[str]:
    """Where the reference's output for ``case`` breaks the spec's structured ``returns`` (its leaves' paths,
    dtypes and shape rules): an exercise whose reference and spec disagree is a fault of the exercise."""
    returns = exercise.spec.entry_point.returns
    if isinstance(returns, str) or not returns.leaves:
        return []
    output = expected.outputs.get(case.id)
    found = {path_text(path): leaf for path, leaf in leaves(output)} if output is not None else {}
    declared = {leaf.path or "output": leaf for leaf in returns.leaves}
    problems = []
    if set(found) != set(declared):
        problems.append(f"leaves {sorted(found)} where the spec declares {sorted(declared)}")
    args = {p.name: value for p, value in zip(case.params, case.args, strict=True)}
    for path, leaf in declared.items():
        array = found.get(path)
        if not isinstance(array, np.ndarray):
            continue
        if leaf.dtype and array.dtype.name != leaf.dtype:
            problems.append(f"{path} is {array.dtype.name}, the spec says {leaf.dtype}")
        shape = leaf.expected_shape(args)
        if shape is not None and tuple(array.shape) != shape:
            problems.append(f"{path} has shape {tuple(array.shape)}, the spec's rule {leaf.shape!r} gives {shape}")
    return problems


def _check_trusted_run(
    exercise: Exercise, program: TrustedProgram, run: ChildRun, call_ids: list[str]
) -> dict[str, WireValue]:
    where = f"{program.kind} of {exercise.id!r} ({program.path})"
    if run.hello and run.hello.preload_error:
        error = run.hello.preload_error
        raise ReferenceSolutionError(f"{where}: cannot import {exercise.spec.preload}: {error.type}: {error.message}")
    if run.imported and run.imported.error:
        error = run.imported.error
        raise ReferenceSolutionError(f"{where}: failed to import: {error.type}: {error.message}")
    if run.imported and not run.imported.entry_point_found:
        raise ReferenceSolutionError(f"{where}: defines no {program.entry_point!r}")
    values: dict[str, WireValue] = {}
    for result in run.results:
        if result.error is not None:
            raise ReferenceSolutionError(
                f"{where}: call {result.case!r} raised {result.error.type}: {result.error.message}"
            )
        if not isinstance(result.value, (ArrayValue, TreeValue)):
            raise ReferenceSolutionError(f"{where}: call {result.case!r} did not return an array or a tree of them")
        try:
            _decoded(result.value)
        except ValueError as exc:
            raise ReferenceSolutionError(f"{where}: call {result.case!r} returned a tree that is {exc}") from exc
        values[result.case] = result.value
    if list(values) != call_ids:
        stderr = run.stray_stderr.decode("utf-8", "replace")[-2000:]
        message = f"{where}: the run ended early ({run.ending}: {run.detail})\n{stderr}"
        raise ReferenceSolutionError(message, transient=True)  # a timeout or crash: load or a cancel can cause it
    return values


@dataclass(frozen=True)
class VariantOutputs:
    """The outputs of an exercise's variants on a grading's cases (``"variant::case"`` -> tree), or, when
    they could not be run, why (a note for the report: the variants are an optional stage)."""

    outputs: dict[str, Tree]
    failure: str | None = None


def variant_calls(catalog: Catalog, wire_cases: list[dict]) -> list[dict]:
    names = list(dict.fromkeys(name for m in catalog.mistake for name in m.variants))
    return [{**case, "id": f"{name}::{case['id']}", "entry": name} for name in names for case in wire_cases]


def run_variants(
    exercise: Exercise,
    cases: list[Case],
    wire_cases: list[dict],
    *,
    env: dict[str, str],
    cache_dir: Path | None,
    cancel: threading.Event | None = None,
    runner: TrustedRunner | None = None,
) -> VariantOutputs:
    """The catalog's variants run on the grading's cases (a learner pack's: stored). Their failure (a fault
    of the exercise, never the learner's) is kept as a note rather than raised, unless the grading was
    cancelled; stored outputs that do not hold them are a fault of the pack (``SpecError``)."""
    path = exercise.catalog_file(exercise.catalog.variants)
    calls = variant_calls(exercise.catalog, wire_cases)
    if exercise.expected_path is not None and calls:
        stored = load_stored(exercise, cases)
        return VariantOutputs(stored_trees(exercise, stored.variants, [call["id"] for call in calls], "variants"))
    if path is None or not calls:
        return VariantOutputs({})
    program = TrustedProgram("variants", path, calls[0]["entry"])
    try:
        run = run_trusted(exercise, program, cases, calls, env=env, cache_dir=cache_dir, cancel=cancel, runner=runner)
    except (ReferenceSolutionError, SandboxError) as exc:
        if cancel is not None and cancel.is_set():
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return VariantOutputs({}, f"known mistakes were not checked against their variants, which failed: {first}")
    return VariantOutputs(run.outputs)
